/**
 * The example konnector as guest code: bundled as `konnector build` bundles
 * it, run in plain Node against its vendor site and a CouchDB-API server (see
 * guest-harness.ts). Built and run through the CLI: example-bills.e2e.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVendorSite, type VendorSite } from '../../../konnectors/examples/example-bills/vendor-site.mts';
import type { HttpRequest } from '../../../host-api/http/index.ts';
import { readManifest, type Manifest } from '../../../runner/compile/manifest.ts';
import { exampleDir } from '../../support/artifacts.ts';
import { startTestCouch, storedDocs, type TestCouch } from '../../support/couch.ts';
import { createTestDocuments, createTestFiles, createTestHost, loadGuest } from '../guest-harness.ts';

const konnectorDir = exampleDir('example-bills');
const ACCOUNT = 'account-energy-1';

let site: VendorSite;
let couch: TestCouch;
let manifest: Manifest;
let filesDir: string;
const FOLDER = '/Administrative/Example Energy/jane.doe@example.org';

beforeAll(async () => {
  filesDir = await mkdtemp(path.join(os.tmpdir(), 'example-bills-files-'));
  [site, couch, manifest] = await Promise.all([startVendorSite(), startTestCouch(), readManifest(konnectorDir)]);
});

afterAll(async () => {
  await Promise.all([site?.stop(), couch?.stop()]);
  await rm(filesDir, { recursive: true, force: true });
});

interface StoredBill {
  _id: string;
  _rev: string;
  date: string;
  amount: number;
  currency: string;
  vendor: string;
  vendorRef: string;
  fileurl: string;
  filename: string;
  invoice?: string;
  cozyMetadata: Record<string, unknown>;
}

/** One job, as the runner gives it: a fresh host (and cookie jar), the manifest's permissions. */
async function runJob(instance: string, fields: Record<string, unknown>) {
  const { host: documentsHost, documents } = createTestDocuments({
    couchUrl: couch.url, instance, accountId: ACCOUNT, permissions: manifest.permissions,
  });
  const { host: filesHost } = createTestFiles({ couchUrl: couch.url, instance, accountId: ACCOUNT, folderPath: FOLDER, filesDir });
  const sent: HttpRequest[] = [];
  const host = createTestHost({
    http: { connectTo: { 'energy.example:80': site.port }, sent }, documents: documentsHost, files: filesHost,
  });
  const guest = await loadGuest({ file: path.join(konnectorDir, 'index.js') }, host);
  const outcome = await guest.run({ accountId: ACCOUNT, fields }).then(() => 'ok' as const, (failure: unknown) => failure);
  return { outcome, logs: host.logs, sent, saved: documents.saved };
}

async function storedFiles(instance: string): Promise<Array<Record<string, any>>> {
  return (await storedDocs(couch.url, instance, 'io.cozy.files')).filter((doc) => doc.type === 'file');
}

async function storedBills(instance: string): Promise<StoredBill[]> {
  return ((await storedDocs(couch.url, instance, 'io.cozy.bills')) as StoredBill[]).sort((a, b) => a.date.localeCompare(b.date));
}

describe('example-bills konnector', () => {
  it('has a manifest the runner accepts, granting what the konnector uses', () => {
    expect(manifest.slug).toBe('example-bills');
    expect(manifest.type).toBe('konnector');
    expect(Object.keys(manifest.fields)).toEqual(['login', 'password']);
    expect(Object.values(manifest.permissions).map((p) => p.type).sort()).toEqual(['io.cozy.accounts', 'io.cozy.bills', 'io.cozy.files']);
    expect(manifest.folders).toEqual([{ defaultDir: '$administrative/$konnector/$account' }]);
  });

  it('logs in, scrapes the six bills and saves them in io.cozy.bills, each linked to its PDF', async () => {
    const instance = 'first-run.cozy.test';
    const { outcome, logs, sent, saved } = await runJob(instance, site.credentials);
    expect(outcome).toBe('ok');
    // The files' documents are written once more by the SDK, to add their qualification.
    expect(saved).toEqual({ 'io.cozy.bills': 6, 'io.cozy.files': 6 });
    expect(sent.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET http://energy.example/login',
      'POST http://energy.example/login',
      'GET http://energy.example/bills',
      ...site.bills.map((bill) => `GET http://energy.example/bills/${bill.vendorRef}.pdf`),
    ]);

    const bills = await storedBills(instance);
    const files = await storedFiles(instance);
    expect(files).toHaveLength(6);
    expect(bills.map(({ date, amount, currency, vendorRef }) => ({ date, amount, currency, vendorRef }))).toEqual(
      site.bills.map((bill) => ({ ...bill, date: `${bill.date}T00:00:00.000Z` })),
    );
    for (const bill of bills) {
      expect(bill.vendor).toBe('Example Energy');
      expect(bill.fileurl).toBe(`http://energy.example/bills/${bill.vendorRef}.pdf`);
      expect(bill.filename).toBe(`${bill.date.slice(0, 10)}_Example-Energy_${bill.vendorRef}.pdf`);
      const file = files.find((f) => f.name === bill.filename)!;
      expect(bill.invoice).toBe(`io.cozy.files:${file._id}`);
      const content = await readFile(path.join(filesDir, instance, ...FOLDER.split('/').slice(1), bill.filename));
      expect(content.subarray(0, 5).toString()).toBe('%PDF-');
      expect(content.toString('latin1')).toContain(`Example Energy bill ${bill.vendorRef}`);
      expect(file).toMatchObject({
        size: String(content.length),
        md5sum: createHash('md5').update(content).digest('base64'),
        mime: 'application/pdf',
        class: 'pdf',
        metadata: {
          contentAuthor: 'energy.example',
          issueDate: bill.date,
          carbonCopy: true,
          qualification: { label: 'energy_invoice', purpose: 'invoice', sourceCategory: 'energy' },
        },
        cozyMetadata: { createdByApp: 'example-bills', sourceAccount: ACCOUNT, sourceAccountIdentifier: site.credentials.login },
      });
      expect(bill.cozyMetadata).toMatchObject({
        createdByApp: 'example-bills',
        sourceAccount: ACCOUNT,
        sourceAccountIdentifier: site.credentials.login,
      });
    }
    expect(logs).toContainEqual({ level: 'info', message: 'Found 6 bills' });
    expect(logs).toContainEqual({ level: 'info', message: 'BaseKonnector: The connector has been run' });
  });

  it('saves nothing new when run again: the bills are deduplicated against the database', async () => {
    const instance = 'second-run.cozy.test';
    expect((await runJob(instance, site.credentials)).outcome).toBe('ok');
    const before = await storedBills(instance);
    const filesBefore = await storedFiles(instance);

    const again = await runJob(instance, site.credentials);
    expect(again.outcome).toBe('ok');
    expect(again.saved).toEqual({});
    expect(again.logs).toContainEqual({ level: 'info', message: 'saveBills: 0 of 6 bill(s) to save' });
    // The files are there already: none is downloaded again.
    expect(again.sent.filter((r) => r.url.endsWith('.pdf'))).toEqual([]);
    const after = await storedBills(instance);
    expect(after.map((b) => [b._id, b._rev])).toEqual(before.map((b) => [b._id, b._rev]));
    expect((await storedFiles(instance)).map((f) => [f._id, f._rev])).toEqual(filesBefore.map((f) => [f._id, f._rev]));
  });

  it('ends with login-failed on a wrong password, and saves nothing', async () => {
    const instance = 'wrong-password.cozy.test';
    const { outcome, logs, saved } = await runJob(instance, { ...site.credentials, password: 'not the password' });
    expect(outcome).toEqual({ code: 'login-failed', message: 'LOGIN_FAILED' });
    expect(saved).toEqual({});
    expect(await storedBills(instance)).toEqual([]);
    // The vendor's own message reaches the job's log.
    expect(logs).toContainEqual({ level: 'error', message: 'Wrong email or password.' });
    expect(logs).toContainEqual({ level: 'critical', message: 'BaseKonnector: LOGIN_FAILED' });
  });

  it('ends with login-failed without contacting the vendor when the account has no password', async () => {
    const { outcome, sent } = await runJob('no-password.cozy.test', { login: site.credentials.login });
    expect(outcome).toEqual({ code: 'login-failed', message: 'LOGIN_FAILED' });
    expect(sent).toEqual([]);
  });
});
