import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nano from 'nano';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVendorSite, type VendorSite } from '../konnectors/example-bills/vendor-site.ts';
import { startEmbeddedCouchDB, type CouchServer } from '../host-api/couchdb-server.ts';
import { databaseName } from '../host-api/documents.ts';
import { buildOnce, repoRoot } from './support/artifacts.ts';
import { konnectorCli, lastJsonLine } from './support/cli.ts';

const INSTANCE = 'jane.cozy.example';
const ACCOUNT = 'energy-account-1';

interface SavedBill {
  _id: string;
  date: string;
  amount: number;
  currency: string;
  vendor: string;
  vendorRef?: string;
  cozyMetadata: { createdByApp: string; sourceAccount: string };
}

let site: VendorSite;
let couch: CouchServer;
let dataDir: string;
let artifact: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'example-bills-'));
  [site, couch, artifact] = await Promise.all([
    startVendorSite(),
    startEmbeddedCouchDB({ dataDir }),
    buildOnce(path.join(repoRoot, 'konnectors/example-bills')),
  ]);
});

afterAll(async () => {
  await site?.stop();
  await couch?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

function runExample(fields: Record<string, unknown>) {
  return konnectorCli([
    'run',
    artifact,
    '--fields',
    JSON.stringify(fields),
    '--couchdb',
    couch.url,
    '--instance',
    INSTANCE,
    '--account',
    ACCOUNT,
    '--connect-to',
    `energy.example:80:127.0.0.1:${site.port}`,
    '--json',
  ]);
}

async function savedBills(): Promise<SavedBill[]> {
  const db = nano(couch.url).use<SavedBill>(decodeURIComponent(databaseName(INSTANCE, 'io.cozy.bills')));
  const { rows } = await db.list({ include_docs: true });
  return rows.map((row) => row.doc!).filter((doc) => !doc._id.startsWith('_design/'));
}

describe('the example konnector, built and run in the sandbox', () => {
  it('logs in, scrapes the bills page and saves exactly the vendor bills', async () => {
    const result = await runExample(site.credentials);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const report = lastJsonLine(result.stdout);
    expect(report).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.bills': site.bills.length } });
    expect(report.requests).toBeGreaterThanOrEqual(3);
    expect(report.bytesIn).toBeGreaterThan(0);
    expect(report.bytesOut).toBeGreaterThan(0);

    const bills = await savedBills();
    const comparable = bills
      .map((b) => ({ date: b.date.slice(0, 10), amount: b.amount, currency: b.currency, vendor: b.vendor, vendorRef: b.vendorRef }))
      .sort((a, b) => a.date.localeCompare(b.date));
    expect(comparable).toEqual(
      site.bills.map((b) => ({ date: b.date, amount: b.amount, currency: b.currency, vendor: 'Example Energy', vendorRef: b.vendorRef })),
    );
    for (const bill of bills) {
      expect(bill.cozyMetadata).toMatchObject({ createdByApp: 'example-bills', sourceAccount: ACCOUNT });
    }
  });

  it('saves nothing twice when run again', async () => {
    const before = await savedBills();
    const result = await runExample(site.credentials);
    expect(result.code, result.stderr).toBe(0);
    expect(lastJsonLine(result.stdout)).toMatchObject({ state: 'done', saved: {} });
    const after = await savedBills();
    expect(after.map((b) => b._id).sort()).toEqual(before.map((b) => b._id).sort());
  });

  it('ends LOGIN_FAILED with a wrong password, and saves nothing', async () => {
    const before = await savedBills();
    const result = await runExample({ ...site.credentials, password: 'wrong' });
    expect(result.code).toBe(1);
    expect(lastJsonLine(result.stdout)).toMatchObject({ state: 'errored', error: 'LOGIN_FAILED' });
    expect((await savedBills()).length).toBe(before.length);
  });

  it('cannot reach its vendor without the operator mapping the host name', async () => {
    const result = await konnectorCli(['run', artifact, '--fields', JSON.stringify(site.credentials), '--couchdb', couch.url, '--json']);
    expect(result.code).toBe(1);
    const report = lastJsonLine(result.stdout);
    expect(report.state).toBe('errored');
    expect(report.saved).toEqual({});
  });
});
