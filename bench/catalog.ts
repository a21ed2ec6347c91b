/**
 * A host holding a whole catalog: N distinct konnectors (copies of
 * bench/fixtures/serve-trivial, each with its own slug and sources, so each
 * has its own snapshot) built with one `konnector build --out-dir`, then
 * listed by a worker host's registry (runner/serve/konnectors.ts), which loads
 * each in the background, and run one after the other in this process. The
 * baselines, from the same run: the host's memory with one konnector loaded,
 * and a warm job of that konnector. The first jobs are read over the last ten
 * konnectors and the warm job over 18 (9 before the catalog is loaded, 9
 * after): single jobs swing with the machine's load.
 *
 *   node --import tsx --expose-gc bench/catalog.ts [--konnectors N]
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startEmbeddedCouchDB } from '../host-api/couchdb-server.ts';
import { readArtifact } from '../runner/compile/artifact.ts';
import { buildKonnectors } from '../runner/compile/parallel.ts';
import { runJob } from '../runner/sandbox/job.ts';
import { defaultLimits } from '../runner/limits.ts';
import { loadArtifact } from '../runner/sandbox/load-artifact.ts';
import type { LoadedKonnector } from '../runner/sandbox/loader.ts';
import { KonnectorRegistry } from '../runner/serve/konnectors.ts';

const { values } = parseArgs({ options: { konnectors: { type: 'string', default: '50' } } });
const count = Number(values.konnectors);
if (!Number.isInteger(count) || count < 2) throw new Error(`--konnectors must be a whole number of 2 or more, got ${values.konnectors}`);

const fixture = fileURLToPath(new URL('./fixtures/serve-trivial/', import.meta.url));
const scratch = await mkdtemp(path.join(os.tmpdir(), 'bench-catalog-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const rssMiB = () => {
  globalThis.gc?.();
  return process.memoryUsage().rss / 2 ** 20;
};

try {
  const dirs: string[] = [];
  for (let i = 1; i <= count; i++) {
    const dir = path.join(scratch, 'sources', `catalog-${i}`);
    await cp(fixture, dir, { recursive: true });
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.konnector'), 'utf8'));
    await writeFile(path.join(dir, 'manifest.konnector'), JSON.stringify({ ...manifest, slug: `catalog-${i}`, name: `Catalog konnector ${i}` }));
    const source = await readFile(path.join(dir, 'index.js'), 'utf8');
    await writeFile(path.join(dir, 'index.js'), `${source}\nexport const which = ${i};\n`);
    dirs.push(dir);
  }
  const buildStarted = Date.now();
  const outcomes = await buildKonnectors(dirs, path.join(scratch, 'artifacts'));
  const failed = outcomes.find((outcome) => 'error' in outcome);
  if (failed && 'error' in failed) throw failed.error;
  const buildSeconds = (Date.now() - buildStarted) / 1000;

  const couch = await startEmbeddedCouchDB({ dataDir: path.join(scratch, 'couch') });
  const runOne = async (konnector: LoadedKonnector) => {
    const started = performance.now();
    const report = await runJob(konnector, { accountId: 'bench-account', instance: 'bench.cozy.localhost', fields: {} }, { couchUrl: couch.url, limits: defaultLimits });
    if (report.state !== 'done') throw new Error(`a job of ${konnector.header.manifest.slug} ended ${report.error}`);
    return performance.now() - started;
  };
  const load = async (outcome: (typeof outcomes)[number]) => {
    if (!('result' in outcome)) throw new Error('unreachable: failures were thrown above');
    return loadArtifact(await readArtifact(outcome.result.out), defaultLimits);
  };

  const before = rssMiB();
  const firstStarted = performance.now();
  const first = await load(outcomes[0]!);
  const firstJobMs = performance.now() - firstStarted + (await runOne(first));
  /** Warm jobs of the first konnector, one after the other: 9 before the catalog is loaded and 9 after. */
  const warm: number[] = [];
  const warmUp = async () => {
    for (let i = 0; i < 9; i++) warm.push(await runOne(first));
  };
  await warmUp();
  const withOne = rssMiB() - before;
  // The host with the catalog, as `konnector serve` holds it: its registry lists the artifacts and loads each in the background.
  const registry = new KonnectorRegistry(path.join(scratch, 'artifacts'), defaultLimits, { preload: true });
  const preloadStarted = performance.now();
  await registry.scan();
  await registry.whenPreloaded();
  const loadMs = (performance.now() - preloadStarted) / count;
  const firstJobs: number[] = [];
  for (const outcome of outcomes.slice(1)) {
    if (!('result' in outcome)) throw new Error('unreachable: failures were thrown above');
    const started = performance.now();
    const konnector = await registry.get(outcome.result.slug);
    if (!konnector) throw new Error(`the registry does not list ${outcome.result.slug}`);
    firstJobs.push(performance.now() - started + (await runOne(konnector)));
  }
  const withAll = rssMiB() - before;
  await warmUp();
  await couch.stop();

  // One job is one sample: the last ten konnectors' first jobs and the 18 warm jobs are read as medians.
  const last = firstJobs.at(-1)!;
  const lastTen = median(firstJobs.slice(-10));
  console.log(`${os.cpus().length} CPUs (${os.cpus()[0]?.model}), Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; ${count} konnectors built with --out-dir in ${buildSeconds.toFixed(1)} s`);
  console.log('| measure | value | baseline | ratio | target |');
  console.log('|---|---|---|---|---|');
  console.log(`| host RSS growth, ${count} konnectors loaded and run vs 1 (MiB) | ${withAll.toFixed(0)} | ${withOne.toFixed(0)} | ${(withAll / withOne).toFixed(2)}x | <= 2x |`);
  console.log(`| first job of each of the last 10 konnectors, loaded by the host beforehand, median (ms) vs a warm job (median of 18) | ${lastTen.toFixed(1)} | ${median(warm).toFixed(1)} | ${(lastTen / median(warm)).toFixed(2)}x | <= 2x |`);
  console.log(`| first job of the ${count}th konnector alone (ms) vs the same warm job | ${last.toFixed(1)} | ${median(warm).toFixed(1)} | ${(last / median(warm)).toFixed(2)}x | - |`);
  console.log(`| loading one konnector: the host's background load of all ${count}, per konnector (ms); + a first job, vs a warm job | ${loadMs.toFixed(1)} | ${median(warm).toFixed(1)} | ${((loadMs + lastTen) / median(warm)).toFixed(2)}x | - |`);
  console.log(`| first job of the 1st konnector, load (transpile, compile) + run (ms) | ${firstJobMs.toFixed(0)} | - | - | - |`);
} finally {
  await rm(scratch, { recursive: true, force: true });
}
