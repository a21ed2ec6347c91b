/**
 * The QuickJS engine's figures for docs/engines.md: sizes, compile and
 * instantiate time, memory per instance, and cpu-heavy's run time
 * against Node (the same bundle, the same checksum).
 *   node --import tsx runner/quickjs/measure.ts [--runs 3] [--rounds 300]
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { applySnapshot, instrumentFuel } from '../wasm/index.ts';
import { bundleForQuickjs, compileToBytecode } from './bundle.ts';
import { compileEngine, compileEngineBytes, readEngine } from './engine.ts';
import { runInEngine, runLoadedInEngine } from './instance.ts';
import { snapshotKonnector } from './snapshot.ts';
import { runScriptOnNode, standaloneHost } from './standalone.ts';
import { sandboxWasi } from './sandbox-wasi.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, rounds: { type: 'string', default: '300' } } });
const runs = Number(values.runs);
const MiB = 1024 * 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const timed = <T>(f: () => T): [T, number] => {
  const started = performance.now();
  const value = f();
  return [value, performance.now() - started];
};

const bytes = await readEngine();
console.log(`engine.wasm: ${(bytes.length / MiB).toFixed(2)} MiB, metered ${(instrumentFuel(bytes).length / MiB).toFixed(2)} MiB`);
const compileMs: number[] = [];
for (let i = 0; i < 5; i++) compileMs.push((await timed(() => WebAssembly.compile(bytes)))[1]);
const plain = await compileEngine();
const metered = await compileEngine({ fuel: true, maxMemoryPages: 4096 });
const konnector = { log() {}, clock_now: () => 0, random_fill() {}, call: () => 0 };
const instantiate = () => {
  const wasi = sandboxWasi(() => {});
  const instance = new WebAssembly.Instance(plain, { konnector, wasi_snapshot_preview1: wasi.imports });
  wasi.initialize(instance);
  return instance;
};
const instantiateMs = Array.from({ length: 21 }, () => timed(instantiate)[1]);
console.log(`compile (WebAssembly.compile, median of 5): ${median(compileMs).toFixed(1)} ms; instantiate + _initialize (median of 21): ${median(instantiateMs).toFixed(2)} ms`);

const kept: WebAssembly.Instance[] = [];
globalThis.gc?.();
const rssBefore = process.memoryUsage().rss;
for (let i = 0; i < 50; i++) kept.push(instantiate());
console.log(`RSS per fresh instance (50 kept): ${((process.memoryUsage().rss - rssBefore) / 50 / MiB).toFixed(2)} MiB; linear memory ${(((kept[0]!.exports.memory as WebAssembly.Memory).buffer.byteLength) / MiB).toFixed(2)} MiB`);
const trivial = runInEngine(plain, { code: 'var konnector = { run() {} };', job: {} }, standaloneHost());
console.log(`linear memory after a trivial job: ${(trivial.memoryBytes! / MiB).toFixed(2)} MiB`);

// A konnector loaded at build time (snapshot.ts): example-bills, the SDK and its dependencies loaded.
{
  const script = await bundleForQuickjs(fileURLToPath(new URL('../../konnectors/examples/example-bills/', import.meta.url)));
  const bytecode = compileToBytecode(plain, script);
  const [loaded, snapshotMs] = await (async () => {
    const started = performance.now();
    const value = await snapshotKonnector(bytecode);
    return [value, performance.now() - started] as const;
  })();
  const { snapshot } = loaded;
  console.log(`example-bills: bytecode ${(bytecode.length / MiB).toFixed(2)} MiB (${(gzipSync(bytecode).length / MiB).toFixed(2)} MiB gzip); snapshot ${(snapshot.data.length / MiB).toFixed(2)} MiB in ${snapshot.segments.length / 2} segments (${(gzipSync(snapshot.data).length / MiB).toFixed(2)} MiB gzip), memory ${snapshot.memory.pages} pages (${(snapshot.memory.pages / 16).toFixed(2)} MiB); taken in ${snapshotMs.toFixed(0)} ms`);
  const shared = await compileEngineBytes(loaded.engine, { fuel: true, maxMemoryPages: 4096 });
  const fromSnapshot = () => {
    const wasi = sandboxWasi(() => {});
    const instance = new WebAssembly.Instance(shared, { konnector, wasi_snapshot_preview1: wasi.imports });
    applySnapshot(instance, snapshot);
    wasi.initialize(instance);
    return instance;
  };
  const snapshotMsList = Array.from({ length: 21 }, () => timed(fromSnapshot)[1]);
  console.log(`instantiate the shared engine + write the snapshot (median of 21): ${median(snapshotMsList).toFixed(2)} ms`);
  const held: WebAssembly.Instance[] = [];
  globalThis.gc?.();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 20; i++) held.push(fromSnapshot());
  console.log(`RSS per instance started from the snapshot (20 kept): ${((process.memoryUsage().rss - before) / 20 / MiB).toFixed(2)} MiB`);
  held.length = 0;
}

// cheerio-bills: the SDK-free fixture parsing HTML with cheerio, as the benchmarks run it.
for (const { name, fields } of [{ name: 'cpu-heavy', fields: { rounds: Number(values.rounds) } }, { name: 'cheerio-bills', fields: { rows: 3000 } }]) {
  const script = await bundleForQuickjs(fileURLToPath(new URL(`../../bench/fixtures/${name}/`, import.meta.url)));
  const bytecode = compileToBytecode(plain, script);
  // A WIT job, as runJob hands one to the engine.
  const job = { jobId: 'job', accountId: 'account', fields: JSON.stringify(fields), parameters: '{}', manifest: '{}', environment: [], maxResponseBytes: MiB };
  type Result = { text: string; consumed?: bigint; memoryBytes?: number };
  type Run = () => Promise<Result>;
  const onNode: Run = async () => {
    const lines: string[] = [];
    await runScriptOnNode(script, job, (line) => lines.push(line.message));
    return { text: lines.join('\n') };
  };
  const inEngine = (module: WebAssembly.Module, budget?: bigint): Run => async () => {
    const lines: string[] = [];
    const result = runInEngine(module, { code: bytecode, job }, { budget, ...standaloneHost((line) => lines.push(line.message)) });
    if (result.outcome !== 'returned') throw new Error(`${name}: ${result.outcome}: ${result.error}`);
    return { text: lines.join('\n'), consumed: result.consumed, memoryBytes: result.memoryBytes! };
  };
  const loaded = await snapshotKonnector(bytecode);
  const shared = await compileEngineBytes(loaded.engine, { fuel: true, maxMemoryPages: 4096 });
  const fromSnapshot: Run = async () => {
    const lines: string[] = [];
    const result = runLoadedInEngine(shared, loaded.snapshot, job, { budget: 1n << 62n, ...standaloneHost((line) => lines.push(line.message)) });
    if (result.outcome !== 'returned') throw new Error(`${name}: ${result.outcome}: ${result.error}`);
    return { text: lines.join('\n'), consumed: result.consumed, memoryBytes: result.memoryBytes! };
  };
  const ways = { unmetered: inEngine(plain), metered: inEngine(metered, 1n << 62n), snapshot: fromSnapshot, node: onNode };
  const wall: Record<string, number[]> = { unmetered: [], metered: [], snapshot: [], node: [] };
  let fromSnapshotLast: Result | undefined;
  const outputs = new Set<string>();
  let last: Result | undefined;
  for (let i = 0; i < runs; i++) {
    for (const [way, run] of Object.entries(ways)) {
      const started = performance.now();
      const out = await run();
      const ms = performance.now() - started;
      wall[way]!.push(ms);
      outputs.add(out.text);
      if (way === 'metered') last = out;
      if (way === 'snapshot') fromSnapshotLast = out;
    }
  }
  if (outputs.size !== 1) throw new Error(`${name}: different results: ${[...outputs].join(' / ')}`);
  console.log(`${name} ${JSON.stringify(fields)}: bundle ${(script.length / 1024).toFixed(1)} KiB, bytecode ${(bytecode.length / 1024).toFixed(1)} KiB; median of ${runs}: unmetered ${median(wall.unmetered!).toFixed(0)} ms, metered ${median(wall.metered!).toFixed(0)} ms, metered from its snapshot ${median(wall.snapshot!).toFixed(0)} ms, Node ${median(wall.node!).toFixed(0)} ms; fuel ${last!.consumed}, linear memory ${(last!.memoryBytes! / MiB).toFixed(1)} MiB; from its snapshot: fuel ${fromSnapshotLast!.consumed}, linear memory ${(fromSnapshotLast!.memoryBytes! / MiB).toFixed(1)} MiB; ${[...outputs][0]}`);
}
