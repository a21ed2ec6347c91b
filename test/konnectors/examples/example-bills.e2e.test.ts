/**
 * The example konnector end to end: built with the real build, run by the
 * `konnector run` command against its vendor site and the embedded CouchDB,
 * with the operator's options, on both engines (`build --engine`, test/support/engines.ts). As guest code in
 * plain Node: example-bills.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVendorSite, type VendorSite } from '../../../konnectors/examples/example-bills/vendor-site.mts';
import { buildOnce, exampleDir } from '../../support/artifacts.ts';
import { konnectorCli, lastJsonLine } from '../../support/cli.ts';
import { startTestCouch, storedDocs, type TestCouch } from '../../support/couch.ts';
import { ENGINES, instanceOn } from '../../support/engines.ts';

const ACCOUNT = 'energy-account-1';

interface SavedBill {
  _id: string;
  date: string;
  amount: number;
  currency: string;
  vendor: string;
  vendorRef?: string;
  filename: string;
  invoice: string;
  matchingCriterias?: { labelRegex: string };
  cozyMetadata: { createdByApp: string; sourceAccount: string };
}

let site: VendorSite;
let couch: TestCouch;
/** The files directory of the runs. */
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'example-bills-'));
  [site, couch] = await Promise.all([startVendorSite(), startTestCouch()]);
});

afterAll(async () => {
  await site?.stop();
  await couch?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe.each(ENGINES)('the example konnector, built and run in the sandbox, on %s', (engine) => {
  const INSTANCE = instanceOn(engine, 'jane.cozy.example');
  /** The artifact `konnector build --engine <engine>` writes, built once. */
  const artifact = () => buildOnce(exampleDir('example-bills'), { engine });

  async function runExample(fields: Record<string, unknown>, extra: string[] = []) {
    return konnectorCli([
      'run',
      await artifact(),
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
      '--files-dir',
      path.join(dataDir, 'files'),
      '--json',
      ...extra,
    ]);
  }

  async function savedFiles(): Promise<Array<Record<string, any>>> {
    return (await storedDocs(couch.url, INSTANCE, 'io.cozy.files')).filter((doc) => doc.type === 'file');
  }

  async function savedBills(): Promise<SavedBill[]> {
    return (await storedDocs(couch.url, INSTANCE, 'io.cozy.bills')) as SavedBill[];
  }

  it('logs in, scrapes the bills page and saves exactly the vendor bills, each with its PDF', async () => {
    const result = await runExample(site.credentials);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const report = lastJsonLine(result.stdout);
    expect(report).toMatchObject({
      state: 'done', error: null, saved: { 'io.cozy.bills': site.bills.length }, budgets: { files: { used: site.bills.length } },
    });
    // Log-in page, form post, its redirect, the bills page, then one download per bill.
    expect(report.requests).toBe(4 + site.bills.length);
    expect(report.bytesIn).toBeGreaterThan(0);
    expect(report.bytesOut).toBeGreaterThan(0);

    const bills = await savedBills();
    const comparable = bills
      .map((b) => ({ date: b.date.slice(0, 10), amount: b.amount, currency: b.currency, vendor: b.vendor, vendorRef: b.vendorRef }))
      .sort((a, b) => a.date.localeCompare(b.date));
    expect(comparable).toEqual(
      site.bills.map((b) => ({ date: b.date, amount: b.amount, currency: b.currency, vendor: 'Example Energy', vendorRef: b.vendorRef })),
    );
    const files = await savedFiles();
    expect(files).toHaveLength(site.bills.length);
    for (const bill of bills) {
      expect(bill.cozyMetadata).toMatchObject({ createdByApp: 'example-bills', sourceAccount: ACCOUNT });
      // From the manifest the artifact carries, which the runner hands the guest with the job.
      expect(bill.matchingCriterias).toEqual({ labelRegex: '\\bexample energy\\b' });
      const file = files.find((f) => `io.cozy.files:${f._id}` === bill.invoice)!;
      expect(file.name).toBe(bill.filename);
      // The account's login names its folder, as cozy-home names it.
      const content = await readFile(path.join(dataDir, 'files', INSTANCE, 'Administrative', 'Example Energy', site.credentials.login, bill.filename));
      expect(file).toMatchObject({ md5sum: createHash('md5').update(content).digest('base64'), size: String(content.length), mime: 'application/pdf' });
      expect(content.toString('latin1')).toContain(`Example Energy bill ${bill.vendorRef}`);
    }
  });

  it('saves nothing twice when run again', async () => {
    const before = await savedBills();
    const result = await runExample(site.credentials);
    expect(result.code, result.stderr).toBe(0);
    const report = lastJsonLine(result.stdout);
    expect(report).toMatchObject({ state: 'done', saved: {}, requests: 4, budgets: { files: { used: 0 } } });
    const after = await savedBills();
    expect(after.map((b) => b._id).sort()).toEqual(before.map((b) => b._id).sort());
    expect(await savedFiles()).toHaveLength(site.bills.length);
  });

  it('ends LOGIN_FAILED with a wrong password, and saves nothing', async () => {
    const before = await savedBills();
    const result = await runExample({ ...site.credentials, password: 'wrong' });
    expect(result.code).toBe(1);
    expect(lastJsonLine(result.stdout)).toMatchObject({ state: 'errored', error: 'LOGIN_FAILED' });
    expect((await savedBills()).length).toBe(before.length);
  });

  it("cannot reach its vendor when the operator's --allow-host leaves it out; listed, it can", async () => {
    const refused = await runExample(site.credentials, ['--allow-host', 'https://*.other.example']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/http:\/\/energy\.example is not in the operator's allowedHosts/);
    expect(lastJsonLine(refused.stdout)).toMatchObject({ state: 'errored', requests: 0 });

    const allowed = await runExample(site.credentials, ['--allow-host', 'energy.example']);
    expect(allowed.code, allowed.stderr).toBe(0);
  });

  it("follows the operator's per-konnector --allow-host: another konnector's list does not open its vendor; its own does", async () => {
    const refused = await runExample(site.credentials, ['--allow-host', 'riverside-water=energy.example']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/http:\/\/energy\.example is not in the operator's allowedHosts \(none\)/);

    const allowed = await runExample(site.credentials, ['--allow-host', 'example-bills=energy.example']);
    expect(allowed.code, allowed.stderr).toBe(0);
  });

  it('cannot reach its vendor without the operator mapping the host name', async () => {
    const result = await konnectorCli(['run', await artifact(), '--fields', JSON.stringify(site.credentials), '--couchdb', couch.url, '--json']);
    expect(result.code).toBe(1);
    const report = lastJsonLine(result.stdout);
    expect(report.state).toBe('errored');
    expect(report.saved).toEqual({});
  });
});
