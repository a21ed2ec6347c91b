/**
 * The corner-shop konnector (a CookieKonnector signing in through a CSRF-protected form, then walking paginated
 * orders), built with the real build and run in the sandbox against its vendor site.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitsSchema } from '../../../runner/limits.ts';
import { startShopSite, type ShopSite } from '../../../konnectors/examples/corner-shop/vendor-site.mts';
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

const KONNECTOR = exampleDir('corner-shop');
const ACCOUNT = 'shop-account-1';
const FOLDER = '/Administrative/Corner Shop/jane@example.org';

let env: PortedEnv;

beforeAll(async () => {
  env = await startPortedEnv();
});

afterAll(async () => {
  await env?.stop();
});

async function post(site: ShopSite, path: string, form: Record<string, string>, cookie = ''): Promise<number> {
  const response = await fetch(new URL(path, site.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams(form),
    redirect: 'manual',
  });
  await response.arrayBuffer();
  return response.status;
}

describe('the Corner Shop vendor site', () => {
  let site: ShopSite;
  beforeAll(async () => {
    site = await startShopSite();
  });
  afterAll(async () => {
    await site?.stop();
  });

  it('refuses a sign-in without its CSRF token, or with the token of another visitor', async () => {
    const credentials = { email: site.credentials.login, password: site.credentials.password };
    expect(await post(site, '/account/login', credentials)).toBe(403);
    const form = await fetch(new URL('/account/login', site.url));
    const token = /name="_csrf" value="([0-9a-f]+)"/.exec(await form.text())![1]!;
    expect(await post(site, '/account/login', { ...credentials, _csrf: token }, 'cs_pre=0123456789abcdef0123456789abcdef')).toBe(403);
    // The benign twin: the visitor's own cookie and token.
    const cookie = form.headers.get('set-cookie')!.split(';')[0]!;
    expect(await post(site, '/account/login', { ...credentials, _csrf: token }, cookie)).toBe(303);
    expect(site.csrfRejections).toBe(2);
  });
});

describe.each(ENGINES)('corner-shop, ported unmodified, on %s', (engine) => {
  const INSTANCE = instanceOn(engine, 'jane.cozy.example');
  /** Each engine's own site: its counts of sign-ins are that engine's jobs'. */
  const site = siteOfEachEngine(startShopSite);

  beforeAll(async () => {
    await createAccount(env, INSTANCE, { _id: ACCOUNT, account_type: 'corner-shop', state: 'RESET_SESSION' });
  });

  const run = (instance: string, fields: Record<string, unknown>, limits?: object) =>
    runPorted(env, engine, KONNECTOR, {
      instance, accountId: ACCOUNT, fields, vendor: { host: 'shop.example', port: site().port },
      limits: limits && LimitsSchema.parse(limits),
    });

  it('signs in through the CSRF-protected form, walks the order pages and saves every invoice', async () => {
    const loginsBefore = site().logins;
    const rejectionsBefore = site().csrfRejections;
    const { report, messages } = await run(INSTANCE, site().credentials);
    expect(report, messages.join('\n')).toMatchObject({ state: 'done', error: null });
    const invoiced = site().orders.filter((o) => o.status !== 'Cancelled');
    expect(report.saved).toEqual({
      'io.cozy.bills': invoiced.length,
      'io.cozy.files': invoiced.length,
      // The account's RESET_SESSION state, cleared.
      'io.cozy.accounts': 1,
    });
    expect(site().logins - loginsBefore).toBe(1);
    expect(site().csrfRejections).toBe(rejectionsBefore);
    expect(messages).toEqual(expect.arrayContaining(['Found 10 orders', 'CookieKonnector: RESET_SESSION state found']));

    const files = await storedFiles(env, INSTANCE);
    const bills = await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.bills');
    expect(files.size).toBe(invoiced.length);
    expect(bills.map((b) => b.vendorRef).sort()).toEqual(invoiced.map((o) => o.number).sort());
    for (const order of invoiced) {
      const cozyPath = `${FOLDER}/${order.date}_CornerShop_${order.number}.pdf`;
      const file = files.get(cozyPath);
      expect(file, `${cozyPath} in ${[...files.keys()].join(', ')}`).toBeDefined();
      const content = await readStored(env, INSTANCE, cozyPath);
      expect(content).toEqual(site().invoiceOf(order.number));
      expect(file).toMatchObject({
        md5sum: md5(content),
        size: String(content.length),
        mime: 'application/pdf',
        metadata: { qualification: { label: 'grocery_invoice', purpose: 'invoice', sourceCategory: 'shopping' } },
      });
      expect(bills.find((b) => b.vendorRef === order.number)).toMatchObject({
        vendor: 'Corner Shop',
        date: `${order.date}T00:00:00.000Z`,
        amount: order.total,
        currency: 'EUR',
        invoice: `io.cozy.files:${file!._id}`,
        cozyMetadata: { createdByApp: 'corner-shop', sourceAccount: ACCOUNT, sourceAccountIdentifier: site().credentials.login },
      });
    }
    const [account] = await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.accounts');
    expect(account!.state).toBeNull();
  });

  it('saves nothing twice on the next run, which resumes the account\'s vendor session instead of signing in', async () => {
    const loginsBefore = site().logins;
    const billsBefore = await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.bills');
    const filesBefore = await storedFiles(env, INSTANCE);
    const { report } = await run(INSTANCE, site().credentials);
    expect(report).toMatchObject({ state: 'done', saved: {} });
    expect(report.budgets.files.used).toBe(0);
    expect(site().logins - loginsBefore).toBe(0);
    const revs = (docs: Iterable<Record<string, any>>) => [...docs].map((d) => `${d._id}@${d._rev}`).sort();
    expect(revs(await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.bills'))).toEqual(revs(billsBefore));
    expect(revs((await storedFiles(env, INSTANCE)).values())).toEqual(revs(filesBefore.values()));
  });

  it('keeps sessions per account: another account of the same konnector signs in on its own', async () => {
    const loginsBefore = site().logins;
    const { report } = await runPorted(env, engine, KONNECTOR, {
      instance: INSTANCE,
      accountId: 'shop-account-2',
      // Its own folder: the first account's files in a shared one are not this account's to replace (docs/security.md).
      fields: { ...site().credentials, accountName: 'second shop account' },
      vendor: { host: 'shop.example', port: site().port },
    });
    expect(report.state).toBe('done');
    expect(site().logins - loginsBefore).toBe(1);
  });

  it('ends with LOGIN_FAILED on a wrong password, logging the shop\'s message, saving nothing', async () => {
    const instance = instanceOn(engine, 'wrong-password.cozy.example');
    const { report, messages } = await run(instance, { ...site().credentials, password: 'wrong' });
    expect(report).toMatchObject({ state: 'errored', error: 'LOGIN_FAILED', saved: {} });
    expect(messages).toContain('Invalid email or password.');
    expect(await storedDocs(env.couchUrl, instance, 'io.cozy.bills')).toEqual([]);
    expect(await storedDocs(env.couchUrl, instance, 'io.cozy.files')).toEqual([]);
  });

  it.each([
    ['number of files', { maxFiles: 3 }, 'LIMIT_EXCEEDED.FILES'],
    ['bytes of files', { maxTotalBytes: 2000 }, 'LIMIT_EXCEEDED.FILES_BYTES'],
  ])('ends with %s exceeded when the budget is too small for the shop\'s invoices', async (_name, files, code) => {
    const instance = instanceOn(engine, `budget-${code.toLowerCase().replace(/[._]/g, '-')}.cozy.example`);
    const { report } = await run(instance, site().credentials, { files });
    expect(report).toMatchObject({ state: 'errored', error: code });
    expect(report.message).toMatch(/budget \(limit \d+, used \d+\)/);
    // What was saved before the budget ran out stays consistent: every file has its content.
    for (const [cozyPath, file] of await storedFiles(env, instance)) {
      expect(md5(await readStored(env, instance, cozyPath))).toBe(file.md5sum);
    }
  });
});
