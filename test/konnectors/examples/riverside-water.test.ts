/**
 * The riverside-water konnector (a JSON API behind a bearer token, written as community konnectors are: CommonJS,
 * a BaseKonnector subclass, the token kept in the account's data), built with the real build and run in
 * the sandbox against its vendor site.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWaterSite, type WaterSite } from '../../../konnectors/examples/riverside-water/vendor-site.mts';
import { exampleDir } from '../../support/artifacts.ts';
import { storedDocs } from '../../support/couch.ts';
import { ENGINES, instanceOn, siteOfEachEngine } from '../../support/engines.ts';
import {
  createAccount,
  md5,
  readStored,
  runPorted,
  startPortedEnv,
  storedFiles,
  type PortedEnv,
} from '../ported.ts';

const KONNECTOR = exampleDir('riverside-water');
const ACCOUNT = 'water-account-1';
const FOLDER = '/Administrative/Riverside Water/jane.doe@example.org';

let env: PortedEnv;

beforeAll(async () => {
  env = await startPortedEnv();
});

afterAll(async () => {
  await env?.stop();
});

const fileName = (invoice: WaterSite['invoices'][number]) =>
  `${invoice.issuedOn}_Riverside Water_${(invoice.amountCents / 100).toFixed(2)}EUR_${invoice.number}.pdf`;

describe.each(ENGINES)('riverside-water, ported unmodified, on %s', (engine) => {
  const INSTANCE = instanceOn(engine, 'jane.cozy.example');
  /** Each engine's own site: its tokens, counted and revoked, are that engine's jobs'. */
  const site = siteOfEachEngine(startWaterSite);

  beforeAll(async () => {
    await createAccount(env, INSTANCE, { _id: ACCOUNT, account_type: 'riverside-water' });
  });

  const run = (instance: string, fields: Record<string, unknown>) =>
    runPorted(env, engine, KONNECTOR, { instance, accountId: ACCOUNT, fields, vendor: { host: 'water.example', port: site().port } });

  it('logs in with a token, saves the identity and every invoice of both contracts with its PDF', async () => {
    const { report, messages } = await run(INSTANCE, site().credentials);
    expect(report, messages.join('\n')).toMatchObject({ state: 'done', error: null });
    const billed = site().invoices.filter((i) => i.status !== 'cancelled');
    expect(report.saved).toEqual({
      'io.cozy.bills': billed.length,
      // Each PDF's document gets its qualification and fileIdAttributes key.
      'io.cozy.files': billed.length,
      'io.cozy.identities': 1,
      'io.cozy.accounts': 1,
    });
    expect(site().tokenRequests).toBe(1);

    const files = await storedFiles(env, INSTANCE);
    const bills = await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.bills');
    expect(bills).toHaveLength(billed.length);
    expect(files.size).toBe(billed.length);
    for (const invoice of billed) {
      const contract = site().contracts.find((c) => c.id === invoice.contractId)!;
      const cozyPath = `${FOLDER}/${contract.label}/${fileName(invoice)}`;
      const file = files.get(cozyPath);
      expect(file, `${cozyPath} in ${[...files.keys()].join(', ')}`).toBeDefined();
      const content = await readStored(env, INSTANCE, cozyPath);
      expect(content).toEqual(site().pdfOf(invoice.number));
      expect(file).toMatchObject({
        md5sum: md5(content),
        size: String(content.length),
        mime: 'application/pdf',
        metadata: {
          contentAuthor: 'riverside-water',
          issueDate: `${invoice.issuedOn}T00:00:00.000Z`,
          carbonCopy: true,
          fileIdAttributes: invoice.number,
          qualification: { label: 'water_invoice', purpose: 'invoice', sourceCategory: 'water' },
        },
      });
      const bill = bills.find((b) => b.vendorRef === invoice.number);
      expect(bill).toMatchObject({
        vendor: 'Riverside Water',
        date: `${invoice.issuedOn}T00:00:00.000Z`,
        amount: invoice.amountCents / 100,
        currency: 'EUR',
        isRefund: false,
        contractId: contract.id,
        contractLabel: contract.label,
        invoice: `io.cozy.files:${file!._id}`,
        fileurl: `http://water.example/api/v1/invoices/${invoice.number}.pdf`,
        cozyMetadata: { createdByApp: 'riverside-water', sourceAccount: ACCOUNT, sourceAccountIdentifier: site().credentials.login },
      });
      // The bearer token given to the download is not kept in the bill.
      expect(bill!.requestOptions).toBeUndefined();
    }

    const [identity, ...others] = await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.identities');
    expect(others).toEqual([]);
    expect(identity).toMatchObject({
      identifier: site().credentials.login,
      contact: {
        name: { givenName: 'Jane', familyName: 'Doe' },
        email: [{ address: 'jane.doe@example.org' }],
        // Kept to digits and `+`, as cozy-konnector-libs formats identity phones.
        phone: [{ number: '+33612345678' }],
        address: [{ street: '12 quai des Tanneurs', postcode: '69001', city: 'Lyon', country: 'France', formattedAddress: '12 quai des Tanneurs 69001 Lyon France' }],
      },
      cozyMetadata: { createdByApp: 'riverside-water', sourceAccount: ACCOUNT },
    });
    const [account] = await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.accounts');
    expect(account!.data).toEqual({ token: expect.stringMatching(/^[0-9a-f]{48}$/), expiresAt: expect.any(String) });
  });

  it('reuses the saved token on the next run, and saves no bill or file twice', async () => {
    const billsBefore = await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.bills');
    const filesBefore = await storedFiles(env, INSTANCE);
    const { report, messages } = await run(INSTANCE, site().credentials);
    expect(report).toMatchObject({ state: 'done' });
    expect(messages).toContain('Reusing the saved API token');
    expect(site().tokenRequests).toBe(1);
    // The identity is updated in place, as cozy-konnector-libs' updateOrCreate does; nothing else is written.
    expect(report.saved).toEqual({ 'io.cozy.identities': 1 });
    expect(report.budgets.files.used).toBe(0);
    const revs = (docs: Iterable<Record<string, any>>) => [...docs].map((d) => `${d._id}@${d._rev}`).sort();
    expect(revs(await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.bills'))).toEqual(revs(billsBefore));
    expect(revs((await storedFiles(env, INSTANCE)).values())).toEqual(revs(filesBefore.values()));
    expect(await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.identities')).toHaveLength(1);
  });

  it('logs in again when the API refuses the saved token', async () => {
    site().revokeTokens();
    const { report, messages } = await run(INSTANCE, site().credentials);
    expect(report).toMatchObject({ state: 'done' });
    expect(messages).toContain('The saved token was refused, logging in again');
    expect(site().tokenRequests).toBe(2);
    expect(await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.bills')).toHaveLength(site().invoices.filter((i) => i.status !== 'cancelled').length);
  });

  it('ends with LOGIN_FAILED when the API refuses the credentials, saving nothing', async () => {
    const instance = instanceOn(engine, 'wrong-password.cozy.example');
    const { report, messages } = await run(instance, { ...site().credentials, password: 'dry' });
    expect(report).toMatchObject({ state: 'errored', error: 'LOGIN_FAILED', saved: {} });
    expect(messages).toContain('Invalid email or password');
    expect(await storedDocs(env.couchUrl, instance, 'io.cozy.bills')).toEqual([]);
    expect(await storedDocs(env.couchUrl, instance, 'io.cozy.files')).toEqual([]);
  });
});
