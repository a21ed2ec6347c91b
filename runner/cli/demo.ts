import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nano from 'nano';
import { startVendorSite } from '../../konnectors/examples/example-bills/vendor-site.mts';
import { startEmbeddedCouchDB } from '../../host-api/couchdb-server.ts';
import { databaseName } from '../../host-api/documents.ts';
import { readArtifact } from '../compile/artifact.ts';
import { buildKonnector } from '../compile/index.ts';
import { runJob } from '../sandbox/job.ts';
import { defaultLimits } from '../limits.ts';
import { loadArtifact } from '../sandbox/load-artifact.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The README's first command: build the example konnector, start its vendor
 * site, run one job on an embedded CouchDB, show the report and the bills.
 */
export async function runDemo(): Promise<number> {
  const say = (text: string) => process.stdout.write(`${text}\n`);
  const out = path.join(repoRoot, 'build/example-bills.kwasm');
  await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(out), { recursive: true }));
  const built = await buildKonnector(path.join(repoRoot, 'konnectors/examples/example-bills'), out, { progress: (step) => say(`build: ${step}...`) });
  say(`built ${path.relative(repoRoot, built.out)}: ${built.bytes} bytes, sha256 ${built.sha256}`);

  const site = await startVendorSite();
  const couch = await startEmbeddedCouchDB({ dataDir: path.join(repoRoot, '.data/demo-couchdb') });
  try {
    say(`vendor site on 127.0.0.1:${site.port} (reached as energy.example), embedded CouchDB at ${new URL(couch.url).host}`);
    const konnector = await loadArtifact(await readArtifact(out), defaultLimits);
    const instance = 'demo.cozy.localhost';
    const report = await runJob(
      konnector,
      { accountId: 'example-bills-demo', instance, fields: site.credentials },
      {
        couchUrl: couch.url,
        limits: defaultLimits,
        connectTo: [{ host: 'energy.example', port: 80, toAddress: '127.0.0.1', toPort: site.port }],
        filesDir: path.join(repoRoot, '.data/demo-files'),
        onLog: (line) => say(`  ${line.level.padEnd(8)} ${line.message}`),
      },
    );
    say(`report: ${JSON.stringify(report)}`);
    const bills = await nano(couch.url)
      .use<{ date: string; amount: number; currency: string; vendor: string; vendorRef?: string }>(
        decodeURIComponent(databaseName(instance, 'io.cozy.bills')),
      )
      .list({ include_docs: true });
    const docs = bills.rows.flatMap(({ doc }) => (doc && !doc._id.startsWith('_design/') ? [doc] : []));
    say(`io.cozy.bills in ${instance} (${docs.length}; a second demo run adds none):`);
    for (const doc of docs.sort((a, b) => a.date.localeCompare(b.date))) {
      say(`  ${doc.date.slice(0, 10)}  ${doc.amount.toFixed(2).padStart(8)} ${doc.currency}  ${doc.vendor}  ${doc.vendorRef ?? ''}`);
    }
    return report.state === 'done' ? 0 : 1;
  } finally {
    await couch.stop();
    await site.stop();
  }
}
