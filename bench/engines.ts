/**
 * The two engines side by side (docs/engines.md): example-bills jobs on each, interleaved, through the
 * runner's one job path (runJob) against its vendor site and the embedded CouchDB, a fresh Cozy instance per
 * job so that every job saves everything. componentize-js, the default engine, is the baseline; each row
 * gives QuickJS's figure against it, with issue 16's target where it sets one.
 *   node --import tsx bench/engines.ts [--rounds 5] [--evaluate]
 * --evaluate runs QuickJS without its snapshot: the engine evaluates the whole bundle in every job.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
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

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, evaluate: { type: 'boolean', default: false } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
const MiB = 1024 * 1024;
const dir = exampleDir('example-bills');
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
  const engines = { quickjs, 'componentize-js': component } satisfies Record<string, LoadedKonnector>;
  const reports: Record<keyof typeof engines, JobReport[]> = { quickjs: [], 'componentize-js': [] };
  let job = 0;
  // One job each first (worker start, the engine's compilation), then rounds, interleaved.
  for (let round = -1; round < rounds; round++) {
    for (const [engine, konnector] of Object.entries(engines) as [keyof typeof engines, LoadedKonnector][]) {
      const report = await runJob(konnector, { accountId: 'account', instance: `bench${job++}.cozy.example`, fields: site.credentials }, {
        couchUrl: couch.url,
        limits: defaultLimits,
        filesDir: path.join(dataDir, 'files'),
        connectTo: [{ host: 'energy.example', port: 80, toAddress: '127.0.0.1', toPort: site.port }],
      });
      if (report.state !== 'done') throw new Error(`example-bills on ${engine} ended ${report.state} ${report.error}: ${report.message}`);
      if (round >= 0) reports[engine].push(report);
    }
  }
  const of = (engine: keyof typeof engines, pick: (report: JobReport) => number) => quantile(reports[engine].map(pick), 0.5);
  const rows: [string, number, number, string][] = [
    ['the konnector\'s own artifact file (MiB)', (await stat(quickjsPath)).size / MiB, (await stat(artifactPath)).size / MiB, '<= 1.5 MB'],
    ['ready to run: its artifact read and loaded, first in the process (ms)', quickjsReadyMs, componentReadyMs, '-'],
    ['example-bills job, median (ms)', of('quickjs', (r) => r.durationMs), of('componentize-js', (r) => r.durationMs), '-'],
    ['linear memory peak per job, median (MiB)', of('quickjs', (r) => r.memoryPeakBytes) / MiB, of('componentize-js', (r) => r.memoryPeakBytes) / MiB, '<= 3 MiB'],
    ['fuel per job, median (billion)', of('quickjs', (r) => r.fuelUsed ?? 0) / 1e9, of('componentize-js', (r) => r.fuelUsed ?? 0) / 1e9, '-'],
  ];
  console.log(`${os.cpus().length} CPUs (${os.cpus()[0]?.model}), Node ${process.version}, example-bills, ${rounds} jobs per engine after one each, interleaved`);
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
