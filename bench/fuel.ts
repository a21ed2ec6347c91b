/**
 * Fuel metering and guest CPU benchmark. For each compute-only konnector of
 * bench/fixtures (cpu-heavy: JSON, regexes, strings, arrays; cheerio-bills:
 * cheerio parsing and querying a 1 MB bills page), builds it with
 * `konnector build`, meters a copy of its component, and runs it four ways in
 * this process, interleaved, after a warm-up (V8 compiles wasm lazily and
 * tiers up): unmetered, a second unmetered copy (the noise check: two
 * instances of the same code, whose ratio should be 1), metered, and the same
 * code run by Node itself, the baseline for guest CPU speed. Every run must
 * log the same checksum. Prints the run-time ratios (medians, min-max shown),
 * the instrumentation time and the size growth. Wall-clock time is what the
 * ratios are about; process CPU time is printed too, as it is less disturbed
 * when the machine is shared.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { artifactComponent } from '../runner/compile/artifact.ts';
import { buildKonnector } from '../runner/compile/index.ts';
import { readComponentArtifact } from '../test/support/artifacts.ts';
import { FUEL_INSTRUMENTER_VERSION, instrumentComponentFuel, mapCoreModules } from '../runner/wasm/index.ts';
import { prepareGuest, runGuest, type PreparedGuest } from '../test/wasm/fuel-guest.ts';

const HELP = `Usage: node --import tsx bench/fuel.ts [options]

Builds the compute-only fixtures, meters a copy, and runs each unmetered (twice: the noise check),
metered and on Node, interleaved; prints the fuel overhead and the guest CPU against Node.

  --workload NAME  cpu-heavy or cheerio-bills (default: both)
  --runs N         measured runs of each way (default 11)
  --warmup N       runs of each way before measuring (default 3)
  --rounds N       cpu-heavy's rounds per run (default 5000, about 2 s)
  --rows N         cheerio-bills' table rows (default 3000, about 6 s)
  --markdown       tables for docs/fuel.md and docs/benchmarks.md
  --help           this text`;

const WORKLOADS = ['cpu-heavy', 'cheerio-bills'];
const { values } = parseArgs({
  options: {
    workload: { type: 'string' },
    runs: { type: 'string', default: '11' },
    rounds: { type: 'string', default: '5000' },
    rows: { type: 'string', default: '3000' },
    warmup: { type: 'string', default: '3' },
    markdown: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
if (values.workload !== undefined && !WORKLOADS.includes(values.workload)) {
  throw new Error(`--workload takes one of ${WORKLOADS.join(', ')}`);
}
const [runs, rounds, rows, warmup] = [values.runs, values.rounds, values.rows, values.warmup].map(Number) as [number, number, number, number];
if (![runs, rounds, rows, warmup].every((n) => Number.isInteger(n) && n >= 0) || runs < 1) {
  throw new Error('--runs, --rounds, --rows and --warmup take whole numbers (--runs at least 1)');
}

const MiB = 1024 * 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => x.toFixed(0);
const range = (xs: number[]) => `${ms(Math.min(...xs))}-${ms(Math.max(...xs))}`;

interface Run {
  elapsed: number;
  cpu: number;
  checksum: string;
  consumed?: bigint;
}

/** Times one synchronous run: wall clock and this process's CPU. */
function timed(body: () => string, consumed?: () => bigint): Run {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const checksum = body();
  const elapsed = performance.now() - started;
  const { user, system } = process.cpuUsage(cpu);
  return { elapsed, cpu: (user + system) / 1000, checksum, consumed: consumed?.() };
}

/** The fixture's code as Node runs it, its log import answered in this process. */
async function loadOnNode(fixture: string): Promise<(fields: string) => string> {
  const bundled = await build({
    entryPoints: [path.join(fixture, 'index.js')],
    bundle: true,
    write: false,
    format: 'cjs',
    platform: 'node',
    plugins: [{
      name: 'log-import',
      setup(on) {
        on.onResolve({ filter: /^cozy:konnector\/log@/ }, () => ({ path: 'log', namespace: 'host' }));
        on.onLoad({ filter: /.*/, namespace: 'host' }, () => ({ contents: 'export const write = (level, message) => globalThis.__benchLog(message);' }));
      },
    }],
  });
  const logs: string[] = [];
  (globalThis as { __benchLog?: (line: string) => void }).__benchLog = (line) => logs.push(line);
  // CommonJS, so the bundle's own require() of Node built-ins (cheerio brings undici) works.
  const module = { exports: {} as { run(job: { fields: string }): void } };
  new Function('module', 'exports', 'require', bundled.outputFiles[0]!.text)(module, module.exports, createRequire(import.meta.url));
  const konnector = module.exports;
  return (fields) => {
    logs.length = 0;
    konnector.run({ fields });
    return logs.join('\n');
  };
}

function inSandbox(guest: PreparedGuest, fields: string, budget?: bigint): Run {
  let consumed = 0n;
  return timed(() => {
    const run = runGuest(guest, JSON.parse(fields) as Record<string, unknown>, budget === undefined ? {} : { budget });
    if (run.outcome !== 'returned') throw new Error(`the ${budget === undefined ? 'unmetered' : 'metered'} run ${run.outcome}: ${String(run.error)}`);
    consumed = run.consumed;
    return run.logs.join('\n');
  }, () => consumed);
}

const largestModule = (bytes: Uint8Array) => {
  let size = 0;
  mapCoreModules(bytes, (module) => ((size = Math.max(size, module.length)), module));
  return size;
};

const loadAverage = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const loadAtStart = loadAverage();
const env = `Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} x${os.cpus().length}, ${os.platform()} ${os.release()}; instrumenter v${FUEL_INSTRUMENTER_VERSION}; ${warmup} warm-up + ${runs} measured runs each`;
const tables: { title: string; rows: string[][]; facts: string[][] }[] = [];
const dir = await mkdtemp(path.join(os.tmpdir(), 'fuel-bench-'));
try {
  const workloads = [
    { name: 'cpu-heavy', fields: { rounds } },
    { name: 'cheerio-bills', fields: { rows } },
  ].filter((workload) => values.workload === undefined || workload.name === values.workload);
  for (const [index, workload] of workloads.entries()) {
    const fixture = fileURLToPath(new URL(`./fixtures/${workload.name}/`, import.meta.url));
    const fields = JSON.stringify(workload.fields);
    console.error(`building the ${workload.name} konnector...`);
    const component = artifactComponent(await readComponentArtifact((await buildKonnector(fixture, path.join(dir, `${workload.name}.kwasm`), { unmetered: true })).out));
    const instrumentMs: number[] = [];
    let metered: Uint8Array = component;
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      metered = instrumentComponentFuel(component);
      instrumentMs.push(performance.now() - started);
    }
    const plain = await prepareGuest(component);
    const plainCopy = await prepareGuest(component);
    const fueled = await prepareGuest(metered);
    const onNode = await loadOnNode(fixture);
    const budget = 1n << 62n;
    const ways = {
      unmetered: () => inSandbox(plain, fields),
      'unmetered-2': () => inSandbox(plainCopy, fields),
      metered: () => inSandbox(fueled, fields, budget),
      node: () => timed(() => onNode(fields)),
    };
    type Way = keyof typeof ways;

    console.error(`${workload.name}: warming up (${warmup} runs each)...`);
    for (let i = 0; i < warmup; i++) for (const way of Object.values(ways)) way();
    console.error(`${workload.name}: measuring (${runs} runs each, interleaved)...`);
    const results: Record<Way, Run[]> = { unmetered: [], 'unmetered-2': [], metered: [], node: [] };
    const names = Object.keys(ways) as Way[];
    for (let i = 0; i < runs; i++) {
      // Rotate which goes first, so none always runs right after a GC of another.
      for (let k = 0; k < names.length; k++) {
        const way = names[(i + k) % names.length]!;
        results[way].push(ways[way]());
      }
    }
    const checksums = new Set(names.flatMap((way) => results[way].map((run) => run.checksum)));
    if (checksums.size !== 1) throw new Error(`${workload.name}: the runs computed different results: ${[...checksums].join(' / ')}`);
    const consumed = new Set(results.metered.map((run) => run.consumed));
    if (consumed.size !== 1) throw new Error(`${workload.name}: the same job consumed different fuel across runs: ${[...consumed].join(', ')}`);

    const wall = (way: Way) => results[way].map((run) => run.elapsed);
    const cpu = (way: Way) => median(results[way].map((run) => run.cpu));
    const fuel = [...consumed][0]!;
    const ratio = (way: Way) => (median(wall(way)) / median(wall('unmetered'))).toFixed(3);
    const facts = [
      ['noise check (median unmetered-2 / median unmetered)', `${ratio('unmetered-2')} (CPU ${(cpu('unmetered-2') / cpu('unmetered')).toFixed(3)})`],
      ['fuel overhead (median metered / median unmetered)', `${ratio('metered')} (min/min ${(Math.min(...wall('metered')) / Math.min(...wall('unmetered'))).toFixed(3)}, CPU ${(cpu('metered') / cpu('unmetered')).toFixed(3)})`],
      ['guest CPU against Node (median metered / median node)', `${(median(wall('metered')) / median(wall('node'))).toFixed(2)}x slower (unmetered ${(median(wall('unmetered')) / median(wall('node'))).toFixed(2)}x)`],
      ['fuel per run (identical in every run)', `${fuel} units (${(Number(fuel) / median(wall('metered')) / 1000).toFixed(0)} M units/s)`],
    ];
    if (index === 0) {
      facts.push(
        ['instrumentation time (component, 3 runs)', `${ms(median(instrumentMs))} ms (${range(instrumentMs)})`],
        ['component size', `${(component.length / MiB).toFixed(2)} MiB -> ${(metered.length / MiB).toFixed(2)} MiB (+${((metered.length / component.length - 1) * 100).toFixed(1)}%)`],
        ['engine core module', `${(largestModule(component) / MiB).toFixed(2)} MiB -> ${(largestModule(metered) / MiB).toFixed(2)} MiB (+${((largestModule(metered) / largestModule(component) - 1) * 100).toFixed(1)}%)`],
      );
    }
    tables.push({
      title: `${workload.name} ${fields}`,
      rows: names.map((way) => [way, ms(median(wall(way))), range(wall(way)), ms(cpu(way))]),
      facts,
    });
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

console.log(env);
console.log(`load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadAverage()} at the end`);
for (const table of tables) {
  if (values.markdown) {
    console.log(`\n### ${table.title}\n\n| run | median ms | min-max ms | median CPU ms |\n| --- | --- | --- | --- |`);
    for (const row of table.rows) console.log(`| ${row.join(' | ')} |`);
    console.log('\n| measure | value |\n| --- | --- |');
    for (const row of table.facts) console.log(`| ${row.join(' | ')} |`);
  } else {
    console.log(`\n${table.title}`);
    for (const [name, wall, spread, cpu] of table.rows) console.log(`${name!.padEnd(12)} median ${wall} ms  (min-max ${spread} ms), CPU ${cpu} ms`);
    for (const [name, value] of table.facts) console.log(`${name}: ${value}`);
  }
}
