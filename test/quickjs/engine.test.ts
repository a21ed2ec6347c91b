import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { bundleForQuickjs, compileToBytecode } from '../../runner/quickjs/bundle.ts';
import { compileEngine, ENGINE_URL, expectedEngineSha256, sha256 } from '../../runner/quickjs/engine.ts';
import { compileEngineBytes } from '../../runner/quickjs/engine.ts';
import { runInEngine, runLoadedInEngine } from '../../runner/quickjs/instance.ts';
import { snapshotKonnector } from '../../runner/quickjs/snapshot.ts';
import { runJob } from '../../runner/quickjs/run-job.ts';
import { HOST_MODULES } from '../../runner/quickjs/bundle.ts';
import { runScriptOnNode, standaloneHost } from '../../runner/quickjs/standalone.ts';
import { WORLD_IMPORTS } from '../../runner/sandbox/capabilities.ts';

const cpuHeavy = fileURLToPath(new URL('../../bench/fixtures/cpu-heavy/', import.meta.url));
/** A WIT job (wit/konnector.wit) for cpu-heavy, as runJob hands one to the engine. */
const cpuJob = (rounds: number) => ({
  jobId: 'job-1', accountId: 'account-1', fields: JSON.stringify({ rounds }), parameters: '{}', manifest: '{}', environment: [], maxResponseBytes: 1 << 20,
});

/** The same bundled script run by V8 (standalone.ts). */
async function runOnNode(script: string, job: unknown): Promise<string[]> {
  const lines: string[] = [];
  await runScriptOnNode(script, job, (line) => lines.push(line.message));
  return lines;
}

const messages = (result: { logs: { message: string }[] }) => result.logs.map((line) => line.message);

function expectReturned(result: { outcome: string; error?: string }): void {
  expect(result.outcome === 'returned' ? 'returned' : `${result.outcome}: ${result.error}`).toBe('returned');
}

let plain: WebAssembly.Module;
let metered: WebAssembly.Module;
let script: string;
let bytecode: Uint8Array;

beforeAll(async () => {
  plain = await compileEngine();
  metered = await compileEngine({ fuel: true, maxMemoryPages: 1024 });
  script = await bundleForQuickjs(cpuHeavy);
  bytecode = compileToBytecode(plain, script);
});

describe('the QuickJS engine', () => {
  it('is the committed engine.wasm, with the imports reviewed for the sandbox', async () => {
    expect(sha256(await readFile(ENGINE_URL))).toBe(await expectedEngineSha256());
    const imports = WebAssembly.Module.imports(plain).map(({ module, name }) => `${module}.${name}`);
    expect(imports.sort()).toEqual([
      'konnector.call',
      'konnector.clock_now',
      'konnector.log',
      'konnector.random_fill',
      'wasi_snapshot_preview1.clock_time_get',
      'wasi_snapshot_preview1.fd_close',
      'wasi_snapshot_preview1.fd_fdstat_get',
      // engine_init reads the konnector's bytecode from stdin under the pre-initializer; a job's is refused.
      'wasi_snapshot_preview1.fd_read',
      'wasi_snapshot_preview1.fd_seek',
      'wasi_snapshot_preview1.fd_write',
    ]);
  });

  it("compiles cpu-heavy's bundle to bytecode that computes Node's checksum, in a worker thread", async () => {
    expect(bytecode.length).toBeGreaterThan(0);
    const job = cpuJob(60);
    const onNode = await runOnNode(script, job);
    expect(onNode).toEqual([expect.stringMatching(/^cpu-heavy: 60 rounds, checksum -?\d+$/)]);
    const result = await runJob({ engine: metered, code: bytecode, job, budget: 10n ** 12n }, { wallClockMs: 60_000 });
    expectReturned(result);
    expect(messages(result)).toEqual(onNode);
    // The source, evaluated instead of its bytecode, computes the same.
    const logs: string[] = [];
    expectReturned(runInEngine(plain, { code: script, job }, standaloneHost((line) => logs.push(line.message))));
    expect(logs).toEqual(onNode);
  });

  it('counts the same fuel on every run, and a budget one unit short ends the run', () => {
    const job = cpuJob(10);
    // The clock is an input like any other (the SDK reads it when a job starts): held still, counts are exact.
    vi.spyOn(Date, 'now').mockReturnValue(Date.UTC(2026, 0, 1));
    onTestFinished(() => {
      vi.restoreAllMocks();
    });
    const runs = [1, 2].map(() => runInEngine(metered, { code: bytecode, job }, { budget: 10n ** 12n, ...standaloneHost() }));
    for (const run of runs) expectReturned(run);
    const consumed = runs[0]!.consumed!;
    expect(consumed).toBeGreaterThan(0n);
    expect(runs[1]!.consumed).toBe(consumed);
    expectReturned(runInEngine(metered, { code: bytecode, job }, { budget: consumed, ...standaloneHost() }));
    const short = runInEngine(metered, { code: bytecode, job }, { budget: consumed - 1n, ...standaloneHost() });
    expect(short.outcome).toBe('out-of-fuel');
  });

  it('starts a job from a snapshot of the loaded konnector: same checksum, same shared engine, less fuel, exact counts', async () => {
    const job = cpuJob(10);
    const onNode = await runOnNode(script, job);
    const loaded = await snapshotKonnector(bytecode);
    const other = await snapshotKonnector(compileToBytecode(plain, 'var konnector = { run() { __host.log("info", "other"); } };'));
    // Every konnector brings only its snapshot: the engine part is the same bytes.
    expect(sha256(other.engine)).toBe(sha256(loaded.engine));
    const engine = await compileEngineBytes(loaded.engine, { fuel: true, maxMemoryPages: 1024 });
    // The clock is an input like any other (the SDK reads it when a job starts): held still, counts are exact.
    vi.spyOn(Date, 'now').mockReturnValue(Date.UTC(2026, 0, 1));
    onTestFinished(() => {
      vi.restoreAllMocks();
    });
    const runs = [1, 2].map(() => {
      const logs: string[] = [];
      const result = runLoadedInEngine(engine, loaded.snapshot, job, { budget: 10n ** 12n, ...standaloneHost((line) => logs.push(line.message)) });
      expectReturned(result);
      expect(logs).toEqual(onNode);
      return result.consumed!;
    });
    expect(runs[1]).toBe(runs[0]);
    // The bundle's top level is no longer evaluated per job.
    const evaluated = runInEngine(metered, { code: bytecode, job }, { budget: 10n ** 12n, ...standaloneHost() });
    expectReturned(evaluated);
    expect(runs[0]!).toBeLessThan(evaluated.consumed!);
    expectReturned(runLoadedInEngine(engine, loaded.snapshot, job, { budget: runs[0]!, ...standaloneHost() }));
    expect(runLoadedInEngine(engine, loaded.snapshot, job, { budget: runs[0]! - 1n, ...standaloneHost() }).outcome).toBe('out-of-fuel');
    const logs: string[] = [];
    expectReturned(runLoadedInEngine(engine, other.snapshot, {}, { budget: 10n ** 12n, ...standaloneHost((line) => logs.push(line.message)) }));
    expect(logs).toEqual(['other']);
  });

  it('refuses a konnector whose top level calls the host or throws, at load time', async () => {
    const load = (top: string) => snapshotKonnector(compileToBytecode(plain, `${top}; var konnector = { run() {} };`));
    for (const top of ['__host.log("info", "loading")', 'Math.random()', '__host.now()', '__host.call("{}")']) {
      await expect(load(top), top).rejects.toThrow(/top level calls the host/);
    }
    await expect(load('throw new TypeError("broken top level")')).rejects.toThrow(/cannot load the konnector: TypeError: broken top level/);
    // Date from QuickJS itself reads the WASI clock: at load time the pre-initializer's scripted one, not the host's.
    await expect(load('var loadedAt = Date.now()')).resolves.toBeDefined();
  });

  it('holds the memory cap: an allocation past it fails inside the guest, below it succeeds', async () => {
    const allocate = 'var konnector = { run(job) { const kept = []; for (let i = 0; i < job.mib; i++) kept.push("x".repeat(1 << 20) + i); __host.log("info", "kept " + kept.length); } };';
    const small = await compileEngine({ fuel: true, maxMemoryPages: 64 });
    const budget = 10n ** 12n;
    const over = runInEngine(small, { code: allocate, job: { mib: 8 } }, { budget });
    expect(over.outcome === 'failed' && over.error).toMatch(/^InternalError: out of memory/);
    expect(over.memoryBytes).toBeLessThanOrEqual(64 * 65_536);
    expectReturned(runInEngine(small, { code: allocate, job: { mib: 1 } }, { budget }));
    expectReturned(runInEngine(metered, { code: allocate, job: { mib: 8 } }, { budget }));
  });

  it('stops a worker that runs past the wall clock', async () => {
    const result = await runJob({ engine: plain, code: 'var konnector = { run() { __host.log("info", "started"); for (;;); } };', job: {} }, { wallClockMs: 500 });
    expect(result.outcome).toBe('timeout');
    expect(messages(result)).toEqual(['started']);
  });

  it('reports what a konnector throws, and a script without konnector.run', () => {
    const thrown = runInEngine(plain, { code: 'var konnector = { async run(job) { throw new TypeError("no bills for " + job.who); } };', job: { who: 'EDF' } });
    expect(thrown.outcome === 'failed' && thrown.error).toMatch(/^TypeError: no bills for EDF\n/);
    const missing = runInEngine(plain, { code: 'var other = 1;', job: {} });
    expect(missing).toMatchObject({ outcome: 'failed', error: 'the script defines no global konnector.run function' });
    const syntax = runInEngine(plain, { code: 'var konnector = {', job: {} });
    expect(syntax.outcome === 'failed' && syntax.error).toMatch(/^SyntaxError/);
  });

  it('ends a runaway recursion as a trap, while a 1000-deep one returns', () => {
    const recurse = 'var konnector = { run(job) { function f(n) { return n === 0 ? 0 : 1 + f(n - 1); } __host.log("info", String(f(job.depth))); } };';
    const logs: string[] = [];
    expectReturned(runInEngine(plain, { code: recurse, job: { depth: 1000 } }, { onLog: (line) => logs.push(line.message) }));
    expect(logs).toEqual(['1000']);
    expect(runInEngine(plain, { code: recurse, job: { depth: 1e6 } }).outcome).toBe('trapped');
  });

  it("bundles every interface of the world from the descriptors, and refuses others at build time by name", async () => {
    expect(Object.keys(HOST_MODULES)).toEqual(WORLD_IMPORTS);
    expect(HOST_MODULES['cozy:konnector/http@0.1.0']).toMatch(/export const send = \(\.\.\.args\) => hostCall\("http\.send", args\);/);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'quickjs-bundle-'));
    try {
      await writeFile(path.join(dir, 'index.js'), [
        "import { write } from 'cozy:konnector/log@0.1.0';",
        "import { now } from 'cozy:konnector/clock@0.1.0';",
        "import { send } from 'cozy:konnector/http@0.1.0';",
        'export function run() {',
        "  write('info', typeof now());",
        "  try { send({ method: 'GET', url: 'http://vendor.example/', headers: [], followRedirects: true }); } catch (error) { write('info', `${error.name}: ${error.message}`); }",
        "  write('info', __host.call('{\"op\":\"http.send\",\"args\":[{\"$bytes\":[0,9]}]}')[0]);",
        '}',
      ].join('\n'));
      const logs: string[] = [];
      const code = compileToBytecode(plain, await bundleForQuickjs(dir));
      expectReturned(runInEngine(plain, { code, job: cpuJob(0) }, standaloneHost((line) => logs.push(line.message))));
      // Outside a job, http has nobody to answer it: the guest is told so, as a TypeError.
      expect(logs).toEqual([
        'bigint',
        'TypeError: http.send needs a job: run the konnector with runJob (runner/quickjs/job.ts)',
        // The raw import, given bytes it does not have: answered `invalid`, never read past its buffer.
        '{"invalid":"a byte array refers to bytes [0,9] of a 0-byte buffer"}',
      ]);
      await writeFile(path.join(dir, 'index.js'), "import { send } from 'cozy:konnector/nope@0.1.0';\nexport const run = () => send;\n");
      await expect(bundleForQuickjs(dir)).rejects.toThrow(/"cozy:konnector\/nope@0\.1\.0" is not an interface of the konnector world; it provides cozy:konnector\/http@0\.1\.0/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
