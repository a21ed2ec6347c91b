import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { componentize } from '@bytecodealliance/componentize-js';
import { transpileBytes } from '@bytecodealliance/jco-transpile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * componentize-js with `wizerBin` pointing at the deterministic
 * pre-initializer, on a real konnector-world guest: the same source must give
 * the same component bytes, and the component must run.
 */

const witPath = fileURLToPath(new URL('../../wit/', import.meta.url));
const wizerBin = fileURLToPath(new URL('../../runner/compile/preinit/bin.mjs', import.meta.url));
// componentize-js names its work directory from Math.random; a fresh seed per test run avoids
// colliding with a directory a killed run left behind, while both builds below share it.
const workDirSeed = 1 + Math.floor(Math.random() * 2 ** 30);
// The source's directory is visible to the engine, so every build uses the same one.
const sourceDir = mkdtempSync(join(tmpdir(), 'preinit-guest-'));
afterAll(() => rmSync(sourceDir, { recursive: true, force: true }));

/** Builds with the wall clock and Math.random of this process pinned, as `konnector build` does. */
async function build(source: string): Promise<Uint8Array> {
  const realNow = Date.now;
  const realRandom = Math.random;
  let state = workDirSeed;
  Date.now = () => 1_700_000_000_000;
  Math.random = () => (state = (state * 16807) % 2147483647) / 2147483647;
  const sourcePath = join(sourceDir, 'guest.js');
  writeFileSync(sourcePath, source);
  try {
    const { component } = await componentize({
      sourcePath,
      witPath,
      worldName: 'konnector',
      disableFeatures: ['stdio', 'clocks', 'http', 'fetch-event'],
      wizerBin,
    });
    return component;
  } finally {
    Date.now = realNow;
    Math.random = realRandom;
  }
}

async function buildError(source: string): Promise<string> {
  try {
    await build(source);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the build to fail');
}

const guest = `
import { write } from 'cozy:konnector/log@0.1.0';
import { now } from 'cozy:konnector/clock@0.1.0';
import { save } from 'cozy:konnector/documents@0.1.0';

// State computed while pre-initializing: it must be in the snapshot.
const squares = new Map();
for (let i = 0; i < 50; i++) squares.set('k' + i, i * i);

export async function run(job) {
  await Promise.resolve();
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  write('info', JSON.stringify({ job: job.jobId, random: Math.random(), bytes: Array.from(bytes), now: Number(now()), k7: squares.get('k7') }));
  save('io.cozy.bills', JSON.stringify({ amount: squares.get('k3') }));
}
`;

interface Instance {
  run(job: { jobId: string; accountId: string; fields: string; parameters: string; manifest: string; environment: [string, string][]; maxResponseBytes: bigint }): unknown;
}

interface Transpiled {
  instantiate(getCoreModule: (path: string) => WebAssembly.Module, imports: Record<string, Record<string, unknown>>): Instance;
}

/** A host random source: a SplitMix64 stream, so two instances can be given the same or different streams. */
function hostRandom(seed: bigint) {
  let state = seed;
  const next = () => {
    state = BigInt.asUintN(64, state + 0x9e3779b97f4a7c15n);
    let z = state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  };
  return {
    getRandomU64: next,
    getRandomBytes: (length: bigint) => Uint8Array.from({ length: Number(length) }, () => Number(next() & 0xffn)),
  };
}

describe('componentize-js with the deterministic pre-initializer', () => {
  let first: Uint8Array;
  let second: Uint8Array;

  beforeAll(async () => {
    first = await build(guest);
    second = await build(guest);
  });

  it('builds byte-identical components from the same source', () => {
    expect(first.length).toBeGreaterThan(1_000_000);
    const digest = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    expect(digest(second)).toBe(digest(first));
  });

  describe('the component', () => {
    let transpiled: Transpiled;
    let cores: Map<string, WebAssembly.Module>;

    beforeAll(async () => {
      const { files } = await transpileBytes(first, { name: 'guest', instantiation: 'sync', wasiShim: false, noComponentErrorWrapping: true });
      cores = new Map(Object.entries(files).filter(([path]) => path.endsWith('.wasm')).map(([path, bytes]) => [path, new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>)]));
      const js = Buffer.from(files['guest.js']!).toString('base64');
      transpiled = (await import(/* @vite-ignore */ `data:text/javascript;base64,${js}`)) as Transpiled;
    });

    function runJob(randomSeed: bigint) {
      const logs: { level: string; message: string }[] = [];
      const saved: { doctype: string; doc: string }[] = [];
      const instance = transpiled.instantiate((path) => cores.get(path)!, {
        'cozy:konnector/http': {
          send: () => {
            throw { payload: { kind: 'denied', message: 'no network in this test' } };
          },
          keepSession: () => {},
        },
        'cozy:konnector/documents': {
          save: (doctype: string, doc: string) => {
            saved.push({ doctype, doc });
            return JSON.stringify({ ...JSON.parse(doc), _id: 'id1', _rev: '1-a' });
          },
          find: () => '[]',
        },
        'cozy:konnector/files': {
          save: () => {
            throw { payload: { kind: 'forbidden', message: 'no files in this test' } };
          },
          stat: () => undefined,
        },
        'cozy:konnector/log': { write: (level: string, message: string) => logs.push({ level, message }) },
        'cozy:konnector/clock': { now: () => 1_750_000_000_123n, sleep: () => {} },
        'wasi:random/random': hostRandom(randomSeed),
      });
      const result = instance.run({ jobId: 'job-1', accountId: 'acc-1', fields: '{}', parameters: '{}', manifest: '{}', environment: [], maxResponseBytes: 0n });
      expect(logs).toHaveLength(1);
      return { result, saved, level: logs[0]!.level, report: JSON.parse(logs[0]!.message) as { job: string; random: number; bytes: number[]; now: number; k7: number } };
    }

    it('runs with the state its initialization built', () => {
      const { result, saved, level, report } = runJob(1n);
      expect(result).toBeUndefined(); // ok(())
      expect(level).toBe('info');
      expect(report).toMatchObject({ job: 'job-1', now: 1_750_000_000_123, k7: 49 });
      expect(saved).toEqual([{ doctype: 'io.cozy.bills', doc: '{"amount":9}' }]);
    });

    it('draws Math.random and crypto.getRandomValues from the host at run time, not from the snapshot', () => {
      const a = runJob(1n).report;
      const b = runJob(2n).report;
      const again = runJob(1n).report;
      expect(b.random).not.toBe(a.random);
      expect(b.bytes).not.toEqual(a.bytes);
      // The same host stream gives the same values: they come from the host, not from the build.
      expect(again.random).toBe(a.random);
      expect(again.bytes).toEqual(a.bytes);
    });
  });

  it('reports a konnector that throws while loading with its own error, not the exit status', async () => {
    const message = await buildError(`throw new Error('cannot load: missing config');\nexport function run() {}\n`);
    expect(message).toMatch(/^Failed to initialize component \(wizer \(.*preinit\/bin\.mjs\)\)/);
    expect(message).toMatch(/guest\.js:1:7 Error: cannot load: missing config/);
    expect(message).not.toMatch(/Exited with i32 exit status|ExperimentalWarning/);
  });

  it('fails the build of a konnector that asks for randomness while loading, as Wizer does', async () => {
    const message = await buildError(`export const id = Math.random();\nexport function run() {}\n`);
    expect(message).toMatch(/the `componentize\.wizer` function trapped/);
    expect(message).toMatch(/unknown imported function: 'wasi:random\/random@0\.2\.\d+' 'get-random-u64'/);
  });
});
