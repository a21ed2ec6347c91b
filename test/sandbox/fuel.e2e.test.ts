import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../../runner/sandbox/job.ts';
import { LimitsSchema, type Limits } from '../../runner/limits.ts';
import { buildOnce, fixtureDir, loadOnce } from '../support/artifacts.ts';
import { konnectorCli, lastJsonLine } from '../support/cli.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';

const probe = fixtureDir('sandbox-probe');
const limits: Limits = LimitsSchema.parse({ fuel: 2_000_000_000, wallClockMs: 120_000 });
let couch: TestCouch;

beforeAll(async () => {
  couch = await startTestCouch();
});

afterAll(async () => {
  await couch?.stop();
});

async function runProbe(fields: Record<string, unknown>) {
  return runJob(
    await loadOnce(probe, limits),
    { accountId: 'fuel-account', instance: 'fuel.cozy.localhost', fields },
    { couchUrl: couch.url, limits },
  );
}

describe('fuel metering in the sandbox', () => {
  it('stops a konnector spinning forever with a fuel error, long before the wall clock; a bounded twin succeeds', async () => {
    const spinner = await runProbe({ mode: 'spin', quiet: true });
    expect(spinner).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.FUEL', fuelLimit: limits.fuel });
    expect(spinner.fuelUsed).toBeGreaterThanOrEqual(limits.fuel);
    expect(spinner.message).toMatch(/exceeded its FUEL budget \(limit 2000000000, used \d+\)/);
    expect(spinner.durationMs).toBeLessThan(limits.wallClockMs);

    const twin = await runProbe({ mode: 'spin', iterations: 100_000, quiet: true });
    expect(twin).toMatchObject({ state: 'done', error: null });
    expect(twin.fuelUsed).toBeGreaterThan(100_000);
    expect(twin.fuelUsed).toBeLessThan(limits.fuel);
    expect(twin.budgets.fuel).toEqual({ used: twin.fuelUsed, limit: limits.fuel });
  });

  it('counts the same fuel for the same job on the same input, run after run', async () => {
    const used = [];
    for (let i = 0; i < 3; i++) used.push((await runProbe({ mode: 'spin', iterations: 50_000, quiet: true })).fuelUsed);
    expect(used[0]).toBeGreaterThan(0);
    expect(new Set(used).size).toBe(1);
    // More work, more fuel: the count measures the guest, not the clock.
    const more = await runProbe({ mode: 'spin', iterations: 100_000, quiet: true });
    expect(more.fuelUsed!).toBeGreaterThan(used[0]!);
  });

  it('counts the same fuel in separate processes', async () => {
    const artifact = await buildOnce(probe);
    const fields = JSON.stringify({ mode: 'spin', iterations: 50_000, quiet: true });
    const runs = await Promise.all(
      [1, 2].map(() =>
        konnectorCli(['run', artifact, '--fields', fields, '--couchdb', couch.url, '--account', 'fuel-account', '--instance', 'fuel.cozy.localhost', '--json']),
      ),
    );
    const [first, second] = runs.map((run) => lastJsonLine(run.stdout));
    expect(first).toMatchObject({ state: 'done' });
    expect(first!.fuelUsed).toEqual(second!.fuelUsed);
    // The same job in this process: the same input, environment included (run by hand, the CLI's default limits).
    const cliLimits = LimitsSchema.parse({});
    const inProcess = await runJob(
      await loadOnce(probe, cliLimits),
      { accountId: 'fuel-account', instance: 'fuel.cozy.localhost', fields: JSON.parse(fields), manual: true },
      { couchUrl: couch.url, limits: cliLimits },
    );
    expect(first!.fuelUsed).toEqual(inProcess.fuelUsed);
  });

  it('refuses an unmetered artifact unless the operator allows it', async () => {
    const unmetered = await buildOnce(probe, { unmetered: true });
    const fields = JSON.stringify({ mode: 'spin', iterations: 1000, quiet: true });
    const refused = await konnectorCli(['run', unmetered, '--fields', fields, '--couchdb', couch.url, '--json']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('the component is not fuel-metered (built with --unmetered)');

    const allowed = await konnectorCli(['run', unmetered, '--fields', fields, '--couchdb', couch.url, '--json', '--allow-unmetered']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(lastJsonLine(allowed.stdout)).toMatchObject({ state: 'done', fuelUsed: null, fuelLimit: null });

    const inspected = await konnectorCli(['inspect', unmetered, '--json']);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ metering: null });
  });
});
