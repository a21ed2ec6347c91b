/**
 * The worker host runs a QuickJS artifact from its konnectors directory as it runs a component: the registry
 * reads the header and loadArtifact (runner/sandbox/load-artifact.ts) picks the engine.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVendorSite, type VendorSite } from '../../konnectors/examples/example-bills/vendor-site.mts';
import { parseConnectTo } from '../../host-api/http/index.ts';
import { buildKonnector } from '../../runner/compile/index.ts';
import type { ServeHost } from '../../runner/serve/host.ts';
import { exampleDir } from '../support/artifacts.ts';
import { storedDocs } from '../support/couch.ts';
import { apiClient, settledJob, startTestHost, type Api } from './support.ts';

const SLUG = 'example-bills';
const INSTANCE = 'quickjs.cozy.example';

let dir: string;
let site: VendorSite;
let host: ServeHost;
let api: Api;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'serve-quickjs-'));
  const [, vendor] = await Promise.all([buildKonnector(exampleDir(SLUG), path.join(dir, `${SLUG}.kwasm`), { engine: 'quickjs' }), startVendorSite()]);
  site = vendor;
  host = await startTestHost({ konnectorsDir: dir, connectTo: [parseConnectTo(`energy.example:80:127.0.0.1:${site.port}`)] });
  api = apiClient(host.url);
}, 120_000);

afterAll(async () => {
  await host?.drain(0);
  await site?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('a QuickJS-built konnector in the konnectors directory', () => {
  it('is listed, and POST /jobs runs it to done with the documents it saves', async () => {
    expect((await api('GET', '/konnectors')).body.konnectors).toEqual([expect.objectContaining({ slug: SLUG, version: '1.0.0' })]);
    const account = await api('POST', '/accounts', { account_type: SLUG, instance: INSTANCE, auth: site.credentials });
    expect(account.status, JSON.stringify(account.body)).toBe(201);
    const created = await api('POST', '/jobs', { account: account.body._id });
    expect(created.status).toBe(201);
    const job = await settledJob(api, created.body._id);
    expect(job, JSON.stringify(job)).toMatchObject({ state: 'done', error: null, report: { state: 'done', slug: SLUG, saved: { 'io.cozy.bills': 6, 'io.cozy.files': 6 } } });
    expect(job.report.fuelUsed).toBeGreaterThan(0);
    const bills = await storedDocs(host.couchUrl, INSTANCE, 'io.cozy.bills');
    expect(bills).toHaveLength(6);
    expect(bills.every((bill) => bill.cozyMetadata?.sourceAccount === account.body._id)).toBe(true);
  });
});
