/**
 * The two engines side by side (docs/engines.md): example-bills jobs on each, interleaved, through the
 * runner's one job path (runJob) against its vendor site and the embedded CouchDB, a fresh Cozy instance per
 * job so that every job saves everything. componentize-js, the default engine, is the baseline; each row
 * gives QuickJS's figure against it, with issue 16's target where it sets one.
 * Then the guest's CPU on each engine, metered, as jobs run it: bench/fixtures/cpu-heavy (JSON, regexes, strings,
 * sorting) and cheerio-bills (cheerio parsing and querying a page of bills), the same interleaving. Each job
 * starts 100 ms after the one before it has ended.
 *   node --import tsx bench/engines.ts [--rounds 5] [--evaluate] [--cpu-rounds 1000] [--rows 1000]
 * --evaluate runs QuickJS without its snapshot: the engine evaluates the whole bundle in every job.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { startVendorSite } from '../konnectors/examples/example-bills/vendor-site.mts';
import { isQuickjsArtifact, readArtifact } from '../runner/compile/artifact.ts';
import { buildKonnector } from '../runner/compile/index.ts';
import { defaultLimits } from '../runner/limits.ts';
import { loadQuickjsArtifact } from '../runner/quickjs/job.ts';
import { runJob, type JobReport } from '../runner/sandbox/job.ts';
import { loadArtifact } from '../runner/sandbox/load-artifact.ts';
import type { LoadedKonnector } from '../runner/sandbox/loader.ts';
import { buildOnce, exampleDir } from '../test/support/artifacts.ts';
import { startTestCouch } from '../test/support/couch.ts';
import { quantile } from './quantile.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    evaluate: { type: 'boolean', default: false },
    'cpu-rounds': { type: 'string', default: '1000' },
    rows: { type: 'string', default: '1000' },
  },
});
const positive = (name: string, text: string | undefined) => {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, got ${text}`);
  return value;
};
const rounds = positive('rounds', values.rounds);
const workloads = [
  { name: 'cpu-heavy', fields: { rounds: positive('cpu-rounds', values['cpu-rounds']) } },
  { name: 'cheerio-bills', fields: { rows: positive('rows', values.rows) } },
];
const MiB = 1024 * 1024;
const dir = exampleDir('example-bills');
const benchDir = path.dirname(fileURLToPath(import.meta.url));
const [site, couch] = await Promise.all([startVendorSite(), startTestCouch()]);
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bench-engines-'));

const timed = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
  const started = performance.now();
  return [await work(), performance.now() - started];
};

try {
  const artifactPath = await buildOnce(dir);
  const quickjsPath = path.join(dataDir, 'example-bills-quickjs.kwasm');
  await buildKonnector(dir, quickjsPath, { engine: 'quickjs' });
  const [quickjs, quickjsReadyMs] = await timed(async () => {
    const artifact = await readArtifact(quickjsPath);
    if (!isQuickjsArtifact(artifact)) throw new Error(`${quickjsPath} is not a QuickJS artifact`);
    return loadQuickjsArtifact(artifact, defaultLimits, { snapshot: !values.evaluate });
  });
  const [component, componentReadyMs] = await timed(async () => loadArtifact(await readArtifact(artifactPath), defaultLimits));
  // The loaded konnector (runner/quickjs/snapshot.ts) each job starts from, unless --evaluate.
  const snapshot = quickjs.snapshots.engine;
  if (snapshot) {
    const gzipped = gzipSync(snapshot.data).length;
    console.log(`QuickJS snapshot: ${(snapshot.data.length / MiB).toFixed(2)} MiB of memory image (${(gzipped / MiB).toFixed(2)} MiB gzip), ${snapshot.memory.pages} pages; bytecode ${(quickjs.bytecode.length / MiB).toFixed(2)} MiB (${(gzipSync(quickjs.bytecode).length / MiB).toFixed(2)} MiB gzip)`);
  }
  type Engines = Record<'quickjs' | 'componentize-js', LoadedKonnector>;
  let job = 0;
  /** One job each first (worker start, the engine's compilation), then rounds, interleaved; each engine's reports. */
  const interleaved = async (name: string, engines: Engines, fields: Record<string, unknown>) => {
    const reports: Record<keyof Engines, (JobReport & { startMs: number })[]> = { quickjs: [], 'componentize-js': [] };
    for (let round = -1; round < rounds; round++) {
      for (const [engine, konnector] of Object.entries(engines) as [keyof Engines, LoadedKonnector][]) {
        // After a pause, as the serve bench does: a worker makes its next instance once a job ends, and a job
        // started at once would run beside that work (on 2 cores, the other engine's) and time it.
        await sleep(100);
        const started = performance.now();
        let firstLine: number | undefined;
        const report = await runJob(konnector, { accountId: 'account', instance: `bench${job++}.cozy.example`, fields }, {
          onLog: () => (firstLine ??= performance.now()),
          couchUrl: couch.url,
          limits: defaultLimits,
          filesDir: path.join(dataDir, 'files'),
          connectTo: [{ host: 'energy.example', port: 80, toAddress: '127.0.0.1', toPort: site.port }],
        });
        if (report.state !== 'done') throw new Error(`${name} on ${engine} ended ${report.state} ${report.error}: ${report.message}`);
        if (round >= 0) reports[engine].push({ ...report, startMs: (firstLine ?? NaN) - started });
      }
    }
    return reports;
  };
  const reports = await interleaved('example-bills', { quickjs, 'componentize-js': component }, site.credentials);
  const of = (engine: keyof Engines, pick: (report: JobReport & { startMs: number }) => number) => quantile(reports[engine].map(pick), 0.5);
  const rows: [string, number, number, string][] = [
    ['the konnector\'s own artifact file (MiB)', (await stat(quickjsPath)).size / MiB, (await stat(artifactPath)).size / MiB, '<= 1.5 MB'],
    ['ready to run: its artifact read and loaded, first in the process (ms)', quickjsReadyMs, componentReadyMs, '-'],
    ['job start: runJob to the konnector\'s first log line, median (ms)', of('quickjs', (r) => r.startMs), of('componentize-js', (r) => r.startMs), '-'],
    ['example-bills job, median (ms)', of('quickjs', (r) => r.durationMs), of('componentize-js', (r) => r.durationMs), '-'],
    ['linear memory peak per job, median (MiB)', of('quickjs', (r) => r.memoryPeakBytes) / MiB, of('componentize-js', (r) => r.memoryPeakBytes) / MiB, '<= 3 MiB'],
    ['fuel per job, median (billion)', of('quickjs', (r) => r.fuelUsed ?? 0) / 1e9, of('componentize-js', (r) => r.fuelUsed ?? 0) / 1e9, '-'],
  ];
  // The guest's CPU: the same fixture built for each engine, metered jobs.
  for (const { name, fields } of workloads) {
    const fixture = path.join(benchDir, 'fixtures', name);
    const load = async (engine: 'quickjs' | 'componentize-js') => {
      const out = path.join(dataDir, `${name}-${engine}.kwasm`);
      await buildKonnector(fixture, out, { engine });
      return loadArtifact(await readArtifact(out), defaultLimits);
    };
    const cpu = await interleaved(name, { quickjs: await load('quickjs'), 'componentize-js': await load('componentize-js') }, fields);
    const median = (engine: keyof Engines) => quantile(cpu[engine].map((r) => r.durationMs), 0.5);
    rows.push([`${name} ${JSON.stringify(fields)} job, metered, median (ms)`, median('quickjs'), median('componentize-js'), 'within 1.2x']);
  }
  console.log(`${os.cpus().length} CPUs (${os.cpus()[0]?.model}), Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; ${rounds} jobs per engine and konnector after one each, interleaved`);
  console.log('| measure | quickjs | componentize-js (baseline) | quickjs / baseline | target (quickjs) |');
  console.log('|---|---|---|---|---|');
  for (const [measure, q, c, target] of rows) console.log(`| ${measure} | ${q.toFixed(2)} | ${c.toFixed(2)} | ${(q / c).toFixed(2)}x | ${target} |`);
  const saved = new Set(Object.values(reports).flat().map((r) => JSON.stringify(r.saved)));
  if (saved.size !== 1) throw new Error(`the engines saved different documents: ${[...saved].join(' / ')}`);
} finally {
  await site.stop();
  await couch.stop();
  await rm(dataDir, { recursive: true, force: true });
}
process.exit(0);
