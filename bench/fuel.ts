/**
 * Fuel metering benchmark: builds the CPU-heavy konnector of
 * bench/fixtures/cpu-heavy with `konnector build`, meters a copy of its
 * component, and runs both in this process, interleaved, after a warm-up
 * (V8 compiles wasm lazily and tiers up), with the same konnector code run by
 * Node itself as the baseline for guest CPU speed. Prints the run-time ratios
 * (median of the runs, min-max shown), the instrumentation time and the size
 * growth.
 * Wall-clock time is what the ratio is about; process CPU time is printed
 * too, as it is less disturbed when the machine is shared.
 *
 *   node --import tsx bench/fuel.ts [--runs 11] [--rounds 5000] [--warmup 3] [--markdown]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { readArtifact } from '../runner/artifact.ts';
import { buildKonnector } from '../runner/build/index.ts';
import { mapCoreModules } from '../runner/wasm/module.ts';
import { FUEL_INSTRUMENTER_VERSION, instrumentComponentFuel } from '../runner/wasm/fuel.ts';
import { prepareGuest, runGuest, type PreparedGuest } from '../test/wasm/fuel-guest.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '11' },
    rounds: { type: 'string', default: '5000' },
    warmup: { type: 'string', default: '3' },
    markdown: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const rounds = Number(values.rounds);
const warmup = Number(values.warmup);
if (![runs, rounds, warmup].every((n) => Number.isInteger(n) && n >= 0) || runs < 1) {
  throw new Error('--runs, --rounds and --warmup take whole numbers (--runs at least 1)');
}

const fixture = fileURLToPath(new URL('./fixtures/cpu-heavy/', import.meta.url));
const MiB = 1024 * 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => x.toFixed(0);

interface NodeKonnector {
  run(job: { fields: string }): void;
}

/** The fixture's code as Node runs it, its log import answered in this process. */
async function loadOnNode(logs: string[]): Promise<NodeKonnector> {
  const bundled = await build({
    entryPoints: [path.join(fixture, 'index.js')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    plugins: [{
      name: 'log-import',
      setup(on) {
        on.onResolve({ filter: /^cozy:konnector\/log@/ }, () => ({ path: 'log', namespace: 'host' }));
        on.onLoad({ filter: /.*/, namespace: 'host' }, () => ({ contents: 'export const write = (level, message) => globalThis.__benchLog(message);' }));
      },
    }],
  });
  (globalThis as { __benchLog?: (line: string) => void }).__benchLog = (line) => logs.push(line);
  const source = Buffer.from(bundled.outputFiles[0]!.contents).toString('base64');
  return (await import(`data:text/javascript;base64,${source}`)) as NodeKonnector;
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'fuel-bench-'));
try {
  console.error('building the cpu-heavy konnector...');
  const { component } = await readArtifact((await buildKonnector(fixture, path.join(dir, 'cpu-heavy.kwasm'), { unmetered: true })).out);

  const instrumentMs: number[] = [];
  let metered: Uint8Array = component;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    metered = instrumentComponentFuel(component);
    instrumentMs.push(performance.now() - started);
  }
  const largestModule = (bytes: Uint8Array) => {
    let size = 0;
    mapCoreModules(bytes, (module) => ((size = Math.max(size, module.length)), module));
    return size;
  };

  const plain = await prepareGuest(component);
  const fueled = await prepareGuest(metered);
  const nodeLogs: string[] = [];
  const onNode = await loadOnNode(nodeLogs);
  const budget = 1n << 62n;
  const job = { rounds };
  const onceOnNode = () => {
    nodeLogs.length = 0;
    const cpu = process.cpuUsage();
    const started = performance.now();
    onNode.run({ fields: JSON.stringify(job) });
    const elapsed = performance.now() - started;
    const { user, system } = process.cpuUsage(cpu);
    return { elapsed, cpu: (user + system) / 1000, checksum: nodeLogs.join('\n') };
  };
  const once = (guest: PreparedGuest, meteredRun: boolean) => {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const run = runGuest(guest, job, meteredRun ? { budget } : {});
    const elapsed = performance.now() - started;
    const { user, system } = process.cpuUsage(cpu);
    if (run.outcome !== 'returned') throw new Error(`the ${meteredRun ? 'metered' : 'unmetered'} run ${run.outcome}: ${String(run.error)}`);
    return { elapsed, cpu: (user + system) / 1000, checksum: run.logs.join('\n'), consumed: run.consumed };
  };

  console.error(`warming up (${warmup} runs each)...`);
  for (let i = 0; i < warmup; i++) {
    once(plain, false);
    once(fueled, true);
    onceOnNode();
  }
  console.error(`measuring (${runs} runs each, interleaved)...`);
  const times = { plain: [] as number[], fueled: [] as number[], node: [] as number[] };
  const cpuTimes = { plain: [] as number[], fueled: [] as number[], node: [] as number[] };
  const consumed = new Set<bigint>();
  const checksums = new Set<string>();
  for (let i = 0; i < runs; i++) {
    // Alternate which goes first, so neither always runs right after a GC of the other.
    const order = i % 2 === 0 ? [false, true] : [true, false];
    for (const meteredRun of order) {
      const result = once(meteredRun ? fueled : plain, meteredRun);
      (meteredRun ? times.fueled : times.plain).push(result.elapsed);
      (meteredRun ? cpuTimes.fueled : cpuTimes.plain).push(result.cpu);
      checksums.add(result.checksum);
      if (meteredRun) consumed.add(result.consumed);
    }
    const native = onceOnNode();
    times.node.push(native.elapsed);
    cpuTimes.node.push(native.cpu);
    checksums.add(native.checksum);
  }
  if (checksums.size !== 1) throw new Error(`metered, unmetered and Node runs computed different results: ${[...checksums].join(' / ')}`);
  if (consumed.size !== 1) throw new Error(`the same job consumed different fuel across runs: ${[...consumed].join(', ')}`);

  const ratio = median(times.fueled) / median(times.plain);
  const fuel = [...consumed][0]!;
  const range = (xs: number[]) => `${ms(Math.min(...xs))}-${ms(Math.max(...xs))}`;
  const rows = [
    ['unmetered', ms(median(times.plain)), range(times.plain), ms(median(cpuTimes.plain))],
    ['metered', ms(median(times.fueled)), range(times.fueled), ms(median(cpuTimes.fueled))],
    ['node', ms(median(times.node)), range(times.node), ms(median(cpuTimes.node))],
  ];
  const facts = [
    ['run-time ratio (median metered / median unmetered)', `${ratio.toFixed(3)} (min/min ${(Math.min(...times.fueled) / Math.min(...times.plain)).toFixed(3)})`],
    ['CPU-time ratio (medians)', (median(cpuTimes.fueled) / median(cpuTimes.plain)).toFixed(3)],
    ['guest CPU against Node (median metered / median node)', `${(median(times.fueled) / median(times.node)).toFixed(2)}x slower (unmetered ${(median(times.plain) / median(times.node)).toFixed(2)}x)`],
    ['fuel per run (identical in every run)', `${fuel} units (${(Number(fuel) / median(times.fueled) / 1000).toFixed(0)} M units/s)`],
    ['instrumentation time (component, 3 runs)', `${ms(median(instrumentMs))} ms (${ms(Math.min(...instrumentMs))}-${ms(Math.max(...instrumentMs))})`],
    ['component size', `${(component.length / MiB).toFixed(2)} MiB -> ${(metered.length / MiB).toFixed(2)} MiB (+${((metered.length / component.length - 1) * 100).toFixed(1)}%)`],
    ['engine core module', `${(largestModule(component) / MiB).toFixed(2)} MiB -> ${(largestModule(metered) / MiB).toFixed(2)} MiB (+${((largestModule(metered) / largestModule(component) - 1) * 100).toFixed(1)}%)`],
  ];
  const env = `Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} x${os.cpus().length}, ${os.platform()} ${os.release()}; instrumenter v${FUEL_INSTRUMENTER_VERSION}; ${rounds} rounds, ${warmup} warm-up + ${runs} measured runs each`;
  if (values.markdown) {
    console.log(`${env}\n\n| build | median ms | min-max ms | median CPU ms |\n| --- | --- | --- | --- |`);
    for (const row of rows) console.log(`| ${row.join(' | ')} |`);
    console.log('\n| measure | value |\n| --- | --- |');
    for (const row of facts) console.log(`| ${row.join(' | ')} |`);
  } else {
    console.log(env);
    for (const [name, wall, spread, cpu] of rows) console.log(`${name.padEnd(10)} median ${wall} ms  (min-max ${spread} ms), CPU ${cpu} ms`);
    for (const [name, value] of facts) console.log(`${name}: ${value}`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
