import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { artifactComponent, type ComponentArtifact } from '../../runner/compile/artifact.ts';
import { instrumentComponentFuel, isFuelInstrumented } from '../../runner/wasm/fuel.ts';
import { mapCoreModules } from '../../runner/wasm/module.ts';
import { buildOnce, readComponentArtifact } from '../support/artifacts.ts';
import { prepareGuest, runGuest, type PreparedGuest } from './fuel-guest.ts';

/**
 * Fuel metering on a real componentize-js component: the CPU-heavy
 * benchmark konnector, built unmetered and metered here, run in this thread
 * where the counter is in reach. (Metered jobs in the sandbox: test/sandbox/fuel.e2e.test.ts.)
 */

const cpuHeavy = fileURLToPath(new URL('../../bench/fixtures/cpu-heavy/', import.meta.url));
const ROUNDS = 20;

let artifact: ComponentArtifact;
let metered: Uint8Array;
let plain: PreparedGuest;
let fueled: PreparedGuest;

beforeAll(async () => {
  artifact = await readComponentArtifact(await buildOnce(cpuHeavy, { unmetered: true }));
  metered = instrumentComponentFuel(artifactComponent(artifact));
  [plain, fueled] = await Promise.all([prepareGuest(artifactComponent(artifact)), prepareGuest(metered)]);
});

describe('a metered konnector component', () => {
  it('meters the engine module and leaves the generated stubs alone, deterministically', () => {
    expect(isFuelInstrumented(metered)).toBe(true);
    const meteredModules: boolean[] = [];
    mapCoreModules(metered, (module) => (meteredModules.push(isFuelInstrumented(module)), module));
    expect(meteredModules.filter(Boolean)).toHaveLength(1);
    expect(meteredModules.length).toBeGreaterThan(1);
    expect(Buffer.compare(instrumentComponentFuel(artifactComponent(artifact)), metered)).toBe(0);
  });

  it('computes what the unmetered build computes, for the same fuel on every run', () => {
    const reference = runGuest(plain, { rounds: ROUNDS });
    expect(reference.outcome).toBe('returned');
    expect(reference.logs).toEqual([expect.stringMatching(new RegExp(`^cpu-heavy: ${ROUNDS} rounds, checksum -?\\d+$`))]);

    const runs = [1, 2, 3].map(() => runGuest(fueled, { rounds: ROUNDS }, { budget: 1n << 40n }));
    for (const run of runs) expect(run).toMatchObject({ outcome: 'returned', logs: reference.logs });
    const consumed = new Set(runs.map((run) => run.consumed));
    expect(consumed.size).toBe(1);
    // Roughly 6.6 M units a round: the count is of instructions, not of calls or loops.
    expect(runs[0]!.consumed).toBeGreaterThan(BigInt(ROUNDS) * 1_000_000n);
    // More work, more fuel.
    expect(runGuest(fueled, { rounds: 2 * ROUNDS }, { budget: 1n << 40n }).consumed).toBeGreaterThan(runs[0]!.consumed);
  });

  it('stops a job at its budget and lets the same job through with enough', () => {
    const needed = runGuest(fueled, { rounds: ROUNDS }, { budget: 1n << 40n }).consumed;
    const starved = runGuest(fueled, { rounds: ROUNDS }, { budget: needed / 2n });
    expect(starved.outcome).toBe('trapped');
    expect(starved.remaining).toBeLessThan(0n);
    expect(starved.logs).toEqual([]);

    const exact = runGuest(fueled, { rounds: ROUNDS }, { budget: needed });
    expect(exact).toMatchObject({ outcome: 'returned', remaining: 0n });
  });

  it('stops an endless job quickly', () => {
    const endless = runGuest(fueled, { rounds: 1e12 }, { budget: 50_000_000n });
    expect(endless.outcome).toBe('trapped');
    expect(endless.remaining).toBeLessThan(0n);
    expect(endless.remaining).toBeGreaterThan(-10_000n);
  });

  it('adds what the host charges for its work to the job’s fuel', () => {
    const free = runGuest(fueled, { rounds: ROUNDS }, { budget: 1n << 40n });
    const charged = runGuest(fueled, { rounds: ROUNDS }, { budget: 1n << 40n, logFuelPerByte: 1000n });
    const loggedBytes = BigInt(Buffer.byteLength(free.logs.join('')));
    expect(charged.consumed - free.consumed).toBe(1000n * loggedBytes);
  });
});
