/**
 * saveBills, hydrateAndFilter, addData, account data, scrape and
 * normalizeFilename of the guest SDK, run as guest code against the runner's
 * documents and files hosts, a CouchDB-API server and a file server on
 * 127.0.0.1 (see guest-harness.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCouch, storedDocs, type TestCouch } from '../../support/couch.ts';
import type { TestServer } from '../../support/http-server.ts';
import { createTestDocuments, createTestFiles, createTestHost, loadGuest, startFileServer } from '../guest-harness.ts';

const GUEST = `
import { saveBills, hydrateAndFilter, addData, scrape, normalizeFilename } from 'cozy-konnector-libs';
import { load } from 'cheerio';
export { saveBills, hydrateAndFilter, addData, scrape, normalizeFilename, load };
// Bills are built in the guest, so that their dates are the guest's own Date. Each has its own file.
export const bill = (day, amount, extra = {}) => ({
  date: new Date(Date.UTC(2024, 0, day)), amount, vendor: 'Example Energy', currency: '€',
  fileurl: 'http://files.example/bill-' + day + '-' + amount + '.pdf', ...extra,
});
`;

const ACCOUNT = 'account-1';
const PERMISSIONS = {
  bills: { type: 'io.cozy.bills' },
  things: { type: 'io.cozy.example.things' },
  accounts: { type: 'io.cozy.accounts' },
};

let couch: TestCouch;
let fileServer: TestServer;
let filesDir: string;

beforeAll(async () => {
  filesDir = await mkdtemp(path.join(os.tmpdir(), 'sdk-data-files-'));
  [couch, fileServer] = await Promise.all([startTestCouch(), startFileServer()]);
});

afterAll(async () => {
  await Promise.all([couch?.stop(), fileServer?.stop()]);
  await rm(filesDir, { recursive: true, force: true });
});

interface Exports {
  saveBills(entries: unknown[], fields: unknown, options?: unknown): Promise<any[]>;
  hydrateAndFilter(documents: unknown[], doctype: string, options?: unknown): Promise<any[]>;
  addData(entries: unknown[], doctype: string, options?: unknown): Promise<any[]>;
  scrape($: unknown, specs: unknown, childSelector?: string): any;
  normalizeFilename(name: string, ext?: string): string;
  load(html: string): unknown;
  bill(day: number, amount: number, extra?: Record<string, unknown>): Record<string, unknown>;
}

async function guest(instance: string, opts: { maxFindLimit?: number; permissions?: typeof PERMISSIONS | Record<string, never>; code?: string } = {}) {
  const { host: documentsHost, documents } = createTestDocuments({
    couchUrl: couch.url, instance, accountId: ACCOUNT, permissions: opts.permissions ?? PERMISSIONS, maxFindLimit: opts.maxFindLimit,
  });
  const { host: filesHost } = createTestFiles({
    couchUrl: couch.url, instance, accountId: ACCOUNT, folderPath: '/Administrative/Example Energy/jane', filesDir,
  });
  const host = createTestHost({
    documents: documentsHost, files: filesHost, http: { connectTo: { 'files.example:80': fileServer.port } },
  });
  const loaded = await loadGuest({ code: opts.code ?? GUEST }, host);
  return { ...(loaded.exports as unknown as Exports), run: loaded.run, documents, logs: host.logs };
}

const stored = (instance: string, doctype = 'io.cozy.bills') => storedDocs(couch.url, instance, doctype);

describe('saveBills', () => {
  it('refuses bills without the required attributes, naming the bill and the attribute', async () => {
    const { saveBills, bill } = await guest('validation.cozy.test');
    await expect(saveBills([bill(1, 10), { ...bill(2, 0), amount: undefined }], {})).rejects.toMatchObject({
      name: 'InvalidArgumentError', message: 'saveBills: bill #1 has no `amount` (a number is required)',
    });
    await expect(saveBills([{ ...bill(1, 10), date: '2024-01-01' }], {})).rejects.toMatchObject({
      message: 'saveBills: bill #0 has a `date` that is not a Date: "2024-01-01"',
    });
    expect(await stored('validation.cozy.test')).toEqual([]);
  });

  it('saves bills linked to their file, with currency normalized, source identifier, and no saveFiles-only attributes', async () => {
    const instance = 'fields.cozy.test';
    const { saveBills, bill } = await guest(instance);
    const saved = await saveBills(
      [bill(1, 10, { filename: 'jan.pdf', requestOptions: { headers: { Authorization: 'secret' } } })],
      { login: 'jane@example.org' },
    );
    expect(saved).toHaveLength(1);
    const [file] = (await stored(instance, 'io.cozy.files')).filter((doc) => doc.type === 'file');
    expect(file).toMatchObject({ name: 'jan.pdf', mime: 'application/pdf' });
    const [doc] = await stored(instance);
    expect(doc).toMatchObject({
      date: '2024-01-01T00:00:00.000Z', amount: 10, vendor: 'Example Energy', currency: 'EUR',
      fileurl: 'http://files.example/bill-1-10.pdf', filename: 'jan.pdf', invoice: `io.cozy.files:${file._id}`,
      cozyMetadata: { sourceAccount: ACCOUNT, sourceAccountIdentifier: 'jane@example.org', createdByApp: 'example-bills' },
    });
    expect(doc.requestOptions).toBeUndefined();
    expect(doc.fileDocument).toBeUndefined();
    expect(fileServer.requests.find((r) => r.url === '/bill-1-10.pdf')!.headers.authorization).toBe('secret');
  });

  it('deduplicates on date, amount and vendor across pages of a capped find', async () => {
    const instance = 'paging.cozy.test';
    // The host answers at most 2 documents per find: the SDK must page to see the 5 stored bills.
    const { saveBills, bill, documents } = await guest(instance, { maxFindLimit: 2 });
    const first = [1, 2, 3, 4, 5].map((day) => bill(day, day * 10));
    expect(await saveBills(first, {})).toHaveLength(5);

    const again = [...[1, 2, 3, 4, 5].map((day) => bill(day, day * 10)), bill(6, 60)];
    const saved = await saveBills(again, {});
    expect(saved.map((doc) => doc.amount)).toEqual([60]);
    expect(documents.saved).toEqual({ 'io.cozy.bills': 6 });
    expect((await stored(instance)).map((doc) => doc.amount).sort((a, b) => a - b)).toEqual([10, 20, 30, 40, 50, 60]);
  });

  it('tells apart bills of other vendors and other contracts', async () => {
    const instance = 'contracts.cozy.test';
    const { saveBills, bill } = await guest(instance);
    await saveBills([bill(1, 10, { vendor: 'Other Vendor' })], {});
    const saved = await saveBills([bill(1, 10, { contractId: 'home' }), bill(1, 10, { contractId: 'office' })], {});
    expect(saved.map((doc) => [doc.vendor, doc.contractId, doc.contractLabel])).toEqual([
      ['Example Energy', 'home', 'home'],
      ['Example Energy', 'office', 'office'],
    ]);
    expect(await saveBills([bill(1, 10, { contractId: 'office' })], {})).toEqual([]);
    expect(await stored(instance)).toHaveLength(3);
  });

  it('updates a stored bill when shouldUpdate says so, keeping its id', async () => {
    const instance = 'update.cozy.test';
    const { saveBills, bill } = await guest(instance);
    const [created] = await saveBills([bill(1, 10, { vendorRef: 'R1' })], {}, { keys: ['vendorRef'] });
    const shouldUpdate = (entry: any, dbEntry: any) => entry.amount !== dbEntry.amount;
    expect(await saveBills([bill(1, 10, { vendorRef: 'R1' })], {}, { keys: ['vendorRef'], shouldUpdate })).toEqual([]);
    const [updated] = await saveBills([bill(1, 12.5, { vendorRef: 'R1' })], {}, { keys: ['vendorRef'], shouldUpdate });
    expect(updated._id).toBe(created._id);
    expect(updated._rev).toMatch(/^2-/);
    const docs = await stored(instance);
    expect(docs.map((doc) => doc.amount)).toEqual([12.5]);
    expect(docs[0].cozyMetadata.createdAt).toBe(created.cozyMetadata.createdAt);
  });
});

describe('saveBills and the manifest', () => {
  const KONNECTOR = `
    const { BaseKonnector, saveBills } = require('cozy-konnector-libs')
    const bill = (day, extra) => ({
      date: new Date(Date.UTC(2024, 1, day)), amount: day, vendor: 'Example Energy',
      fileurl: 'http://files.example/regexp-' + day + '.pdf', ...extra,
    })
    module.exports = new BaseKonnector(async function start(fields) {
      await saveBills([bill(1), bill(2, { matchingCriterias: { labelRegex: 'OWN REGEXP' } })], fields)
    })`;

  async function billsSavedWith(instance: string, manifest: Record<string, unknown>) {
    const { run } = await guest(instance, { code: KONNECTOR });
    await run({ accountId: ACCOUNT, manifest });
    return (await stored(instance)).sort((a, b) => a.amount - b.amount).map((doc) => doc.matchingCriterias);
  }

  it("fills matchingCriterias.labelRegex from the manifest's banksTransactionRegExp, keeping a bill's own", async () => {
    const manifest = { slug: 'example-bills', banksTransactionRegExp: '\\bEXAMPLE ENERGY\\b' };
    expect(await billsSavedWith('regexp.cozy.test', manifest)).toEqual([
      { labelRegex: '\\bEXAMPLE ENERGY\\b' },
      { labelRegex: 'OWN REGEXP' },
    ]);
  });

  it('leaves matchingCriterias alone when the manifest has no banksTransactionRegExp', async () => {
    expect(await billsSavedWith('no-regexp.cozy.test', { slug: 'example-bills' })).toEqual([undefined, { labelRegex: 'OWN REGEXP' }]);
  });
});

describe('hydrateAndFilter and addData', () => {
  it('adds _id and _rev of stored documents, keeps new ones, and honours shouldSave', async () => {
    const instance = 'hydrate.cozy.test';
    const doctype = 'io.cozy.example.things';
    const { hydrateAndFilter, addData } = await guest(instance);
    const [stone] = await addData([{ name: 'stone', weight: 3 }], doctype);
    const things = [{ name: 'stone', weight: 3 }, { name: 'feather', weight: 0 }, { name: 'leaf', weight: 1 }];
    const kept = await hydrateAndFilter(things, doctype, { keys: ['name'], shouldSave: (thing: any) => thing.weight > 0 });
    expect(kept.map((thing) => thing.name)).toEqual(['leaf']);
    expect(things[0]).toMatchObject({ _id: stone._id, _rev: stone._rev });

    const updated = await hydrateAndFilter([{ name: 'stone', weight: 4 }], doctype, { keys: ['name'], shouldUpdate: () => true });
    const [saved] = await addData(updated, doctype);
    expect(saved._id).toBe(stone._id);
    expect((await stored(instance, doctype)).map((doc) => [doc.name, doc.weight])).toEqual([['stone', 4]]);
  });

  it('fails with the host error when the manifest does not grant the doctype', async () => {
    const { hydrateAndFilter } = await guest('forbidden.cozy.test', { permissions: {} });
    await expect(hydrateAndFilter([{ name: 'x' }], 'io.cozy.example.things', { keys: ['name'] })).rejects.toMatchObject({
      name: 'HostError', interface: 'documents', kind: 'forbidden',
    });
  });
});

describe('account data', () => {
  const KONNECTOR = `
    const { BaseKonnector, log } = require('cozy-konnector-libs')
    module.exports = new BaseKonnector(async function start() {
      log('info', 'previous: ' + JSON.stringify(this.getAccountData()))
      await this.saveAccountData({ lastRef: 'EE-' + Object.keys(this.getAccountData()).length })
    })`;

  async function run(instance: string, permissions: typeof PERMISSIONS | Record<string, never>) {
    const { host: documentsHost, documents } = createTestDocuments({ couchUrl: couch.url, instance, accountId: ACCOUNT, permissions });
    const host = createTestHost({ documents: documentsHost });
    const loaded = await loadGuest({ code: KONNECTOR }, host);
    const outcome = await loaded.run({ accountId: ACCOUNT }).then(() => 'ok', (failure: unknown) => failure);
    return { outcome, messages: host.logs.map((line) => line.message), documents };
  }

  it('keeps data in the account document from one job to the next', async () => {
    const instance = 'account.cozy.test';
    const { documents } = createTestDocuments({ couchUrl: couch.url, instance, accountId: ACCOUNT, permissions: PERMISSIONS });
    await documents.save('io.cozy.accounts', JSON.stringify({ _id: ACCOUNT, account_type: 'example-bills' }));

    const first = await run(instance, PERMISSIONS);
    expect(first.outcome).toBe('ok');
    expect(first.messages).toContain('previous: {}');
    const second = await run(instance, PERMISSIONS);
    expect(second.outcome).toBe('ok');
    expect(second.messages).toContain('previous: {"lastRef":"EE-0"}');
    const [account] = await stored(instance, 'io.cozy.accounts');
    expect(account).toMatchObject({ _id: ACCOUNT, account_type: 'example-bills', data: { lastRef: 'EE-1' } });
  });

  it('runs without io.cozy.accounts permission, and explains why account data cannot be saved', async () => {
    const { outcome, messages } = await run('no-account.cozy.test', { bills: PERMISSIONS.bills } as never);
    expect(messages).toContain('previous: {}');
    expect(outcome).toEqual({
      code: 'unknown-error',
      message: expect.stringMatching(/^updateAccountAttributes: the io\.cozy\.accounts document account-1 could not be read/),
    });
  });
});

describe('scrape and normalizeFilename', () => {
  it('scrapes text, attributes, parsed values and functions, for one item or a list', async () => {
    const { scrape, load } = await guest('scrape.cozy.test');
    const $ = load(`<div id="account"><span class="name"> Jane </span><a href="/me">me</a></div>
      <table><tr data-id="1"><td>01/02/2024</td><td>12,50 €</td></tr><tr data-id="2"><td>03/04/2024</td><td>7,00 €</td></tr></table>`);
    expect(scrape($, '#account .name')).toBe('Jane');
    expect(scrape($, { name: '.name', link: { sel: 'a', attr: 'href' } })).toEqual({ name: 'Jane', link: '/me' });
    const rows = scrape($, {
      id: { fn: (node: any) => Number(node.attr('data-id')) },
      date: { sel: 'td', index: 0 },
      amount: { sel: 'td', index: 1, parse: (text: string) => parseFloat(text.replace(',', '.')) },
      broken: { sel: 'td', parse: () => { throw new Error('cannot parse'); } },
    }, 'tbody tr');
    expect(rows).toEqual([{ id: 1, date: '01/02/2024', amount: 12.5 }, { id: 2, date: '03/04/2024', amount: 7 }]);
  });

  it('normalizes file names as cozy-konnector-libs does', async () => {
    const { normalizeFilename } = await guest('names.cozy.test');
    // Spaces, where the SDK once put underscores: the file must get the name it gets on cozy-stack.
    expect(normalizeFilename('*foo/bar: <baz> \\"qux"\t???', '.txt')).toBe('foo bar baz qux.txt');
    expect(normalizeFilename('bill  2024-01\r\n', 'pdf')).toBe('bill 2024-01.pdf');
    expect(normalizeFilename('Facture_2024.01', '')).toBe('Facture_2024.01.');
    expect(() => normalizeFilename('???')).toThrow(/no filename-compatible character in "\?\?\?"/);
    expect(() => normalizeFilename(42 as unknown as string)).toThrow('normalizeFilename: the name must be a string, got number');
  });
});
