/**
 * One example konnector's jobs on both engines, interleaved, through the runner's one job path (runJob):
 * against its vendor site and the embedded CouchDB, a fresh Cozy instance per job so that every job saves
 * everything. Prints what each engine needs before its first job and each job's duration, linear memory peak
 * and fuel: the example-bills table of docs/engines.md.
 *   node --import tsx bench/engines.ts [--rounds 4]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startVendorSite } from '../konnectors/examples/example-bills/vendor-site.mts';
import { readArtifact } from '../runner/compile/artifact.ts';
import { defaultLimits } from '../runner/limits.ts';
import { loadQuickjsKonnector } from '../runner/quickjs/job.ts';
import { runJob } from '../runner/sandbox/job.ts';
import { loadKonnector } from '../runner/sandbox/loader.ts';
import { buildOnce, exampleDir } from '../test/support/artifacts.ts';
import { startTestCouch } from '../test/support/couch.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '4' } } });
const MiB = 1024 * 1024;
const dir = exampleDir('example-bills');
const [site, couch] = await Promise.all([startVendorSite(), startTestCouch()]);
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bench-engines-'));
try {
  let started = performance.now();
  const quickjs = await loadQuickjsKonnector(dir, defaultLimits);
  const quickjsReady = performance.now() - started;
  const artifact = await buildOnce(dir);
  started = performance.now();
  const component = await loadKonnector(await readArtifact(artifact), defaultLimits);
  const componentReady = performance.now() - started;
  console.log(`ready: quickjs bundle + bytecode ${quickjsReady.toFixed(0)} ms (${(quickjs.bytecode.length / MiB).toFixed(2)} MiB of bytecode); componentize-js load of the built artifact ${componentReady.toFixed(0)} ms`);
  let job = 0;
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [engine, konnector] of [['quickjs', quickjs], ['componentize-js', component]] as const) {
      const report = await runJob(konnector, { accountId: 'account', instance: `bench${job++}.cozy.example`, fields: site.credentials }, {
        couchUrl: couch.url,
        limits: defaultLimits,
        filesDir: path.join(dataDir, 'files'),
        connectTo: [{ host: 'energy.example', port: 80, toAddress: '127.0.0.1', toPort: site.port }],
      });
      console.log([engine, `round ${round}`, report.state, report.error ?? '', `${report.durationMs} ms`, `memory ${(report.memoryPeakBytes / MiB).toFixed(1)} MiB`,
        `fuel ${((report.fuelUsed ?? 0) / 1e9).toFixed(2)} billion`, `${report.requests} requests`, JSON.stringify(report.saved)].join('  '));
    }
  }
} finally {
  await site.stop();
  await couch.stop();
  await rm(dataDir, { recursive: true, force: true });
}
process.exit(0);
