/**
 * The top-level names of cozy-konnector-libs 5.13 in the guest SDK: retry,
 * Document, manifest, the deprecated aliases, wrapIfSentrySetUp, and the names
 * that cannot work in the sandbox, run as guest code (see guest-harness.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../../support/http-server.ts';
import { createTestHost, loadGuest, startFileServer } from '../guest-harness.ts';

/** Every name cozy-konnector-libs 5.13.0's src/index.js exports. */
const UPSTREAM_NAMES = [
  'BaseKonnector', 'CookieKonnector', 'cozyClient', 'errors', 'log', 'saveFiles', 'saveBills', 'saveIdentity',
  'linkBankOperations', 'addData', 'hydrateAndFilter', 'htmlToPDF', 'createCozyPDFDocument', 'filterData',
  'updateOrCreate', 'request', 'requestFactory', 'retry', 'wrapIfSentrySetUp', 'Document', 'signin', 'submitForm',
  'scrape', 'mkdirp', 'normalizeFilename', 'utils', 'solveCaptcha', 'createCategorizer', 'categorize', 'manifest',
];
const UNSUPPORTED = ['linkBankOperations', 'htmlToPDF', 'createCozyPDFDocument', 'mkdirp', 'solveCaptcha', 'createCategorizer', 'categorize'];

const GUEST = `
import * as libs from 'cozy-konnector-libs';
export { libs };
// Built in the guest, so that the dates are the guest's own Date.
export const date = (iso) => new Date(iso);
export class Simpson extends libs.Document {
  static version = 2;
}
export class Checked extends libs.Document {
  validate(attrs) {
    if (!attrs.name) throw new Error('a name is required');
  }
}
/**
 * A function failing \`failures\` times (with an Error of the guest's realm, \`#n\` in its message the try's
 * number; a retry.StopError with \`stop\`), recording when it was called.
 */
export function flaky(failures, { message = 'vendor busy', code, stop = false } = {}) {
  const calls = [];
  const fn = async function (...args) {
    calls.push({ at: Date.now(), self: this, args });
    if (calls.length > failures) return 'done after ' + calls.length;
    const error = Object.assign(new Error(message.replace('#n', '#' + calls.length)), code ? { code } : {});
    throw stop ? new libs.retry.StopError(error) : error;
  };
  return { fn, calls };
}
`;

type Fn = (...args: any[]) => any;
interface Exports {
  libs: Record<string, any>;
  date(iso: string): Date;
  Simpson: new (attrs: Record<string, unknown>) => any;
  Checked: new (attrs: Record<string, unknown>) => any;
  flaky(failures: number, failure?: { message?: string; code?: string; stop?: boolean }): { fn: Fn; calls: Array<{ at: number; self: unknown; args: unknown[] }> };
}

let fileServer: TestServer;

beforeAll(async () => {
  fileServer = await startFileServer();
});

afterAll(async () => {
  await fileServer?.stop();
});

async function guest() {
  const host = createTestHost({ http: { connectTo: { 'files.example:80': fileServer.port } } });
  const loaded = await loadGuest({ code: GUEST }, host);
  return { ...(loaded.exports as unknown as Exports), logs: host.logs, run: loaded.run };
}

describe('the names of cozy-konnector-libs 5.13', () => {
  it('are all exported, and the ones the sandbox cannot provide throw an UnsupportedError naming them when called', async () => {
    const { libs } = await guest();
    expect(UPSTREAM_NAMES.filter((name) => libs[name] === undefined)).toEqual([]);
    for (const name of UNSUPPORTED) {
      expect(() => libs[name]()).toThrow(expect.objectContaining({
        name: 'UnsupportedError', message: expect.stringMatching(new RegExp(`^${name} is not supported by the WebAssembly konnector runner: `)),
      }));
    }
  });

  it('keep submitForm, filterData and request as the deprecated names upstream gives them', async () => {
    const { libs, logs } = await guest();
    expect(libs.submitForm).toBe(libs.signin);
    // It is hydrateAndFilter: it reads the stored bills, which this host refuses.
    await expect(libs.filterData([{ vendorRef: 'R1' }], 'io.cozy.bills', { keys: ['vendorRef'] })).rejects.toMatchObject({
      name: 'HostError', interface: 'documents', kind: 'forbidden',
    });
    expect(logs).toContainEqual({ level: 'warning', message: 'Use hydrateAndFilter now. filterData will be removed in cozy-konnector-libs@4' });
    const rq = libs.request({ encoding: null });
    expect(logs.at(-1)).toEqual({ level: 'warning', message: 'Use requestFactory instead of request. It will be removed in cozy-konnector-libs@4' });
    const body = await rq('http://files.example/deprecated.pdf');
    expect(new TextDecoder().decode(body)).toContain('% deprecated.pdf');
  });

  it('wrapIfSentrySetUp leaves the method as it is (no Sentry in the sandbox) and names a bad argument', async () => {
    const { libs } = await guest();
    const konnector = { fetch: () => 'fetched' };
    const before = konnector.fetch;
    libs.wrapIfSentrySetUp(konnector, 'fetch');
    expect(konnector.fetch).toBe(before);
    expect(() => libs.wrapIfSentrySetUp(konnector, 'fecth')).toThrow('wrapIfSentrySetUp(obj, method): obj["fecth"] must be a function');
  });
});

describe('retry', () => {
  it('calls again after each failure, waiting the interval times the backoff, with the given this and args', async () => {
    const { libs, flaky } = await guest();
    const { fn, calls } = flaky(2);
    const context = { name: 'konnector' };
    expect(await libs.retry(fn, { interval: 40, backoff: 2, context, args: ['a', 1] })).toBe('done after 3');
    expect(calls.map((call) => [call.self, call.args])).toEqual([[context, ['a', 1]], [context, ['a', 1]], [context, ['a', 1]]]);
    // 40 ms, then 80 ms, counted from each try's start: lower bounds, give or take the clocks' whole milliseconds.
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(40 - 3);
    expect(calls[2]!.at - calls[1]!.at).toBeGreaterThanOrEqual(80 - 3);
  });

  it('gives up after max_tries with an ETIMEDOUT error carrying the last failure, or that failure with throw_original', async () => {
    const { libs, flaky } = await guest();
    const failing = flaky(10, { message: 'vendor busy #n' });
    const gaveUp = await libs.retry(failing.fn, { interval: 0, max_tries: 3 }).catch((error: Error) => error);
    expect(gaveUp).toMatchObject({ code: 'ETIMEDOUT', failure: { message: 'vendor busy #3' } });
    expect(gaveUp.message).toMatch(/^operation timed out after \d+ ms, 3 tries with error: vendor busy #3$/);
    expect(failing.calls).toHaveLength(3);

    const original = flaky(10);
    await expect(libs.retry(original.fn, { interval: 0, max_tries: 2, throw_original: true })).rejects.toMatchObject({ message: 'vendor busy' });
    // Five tries when neither max_tries nor timeout is given, as bluebird-retry.
    const byDefault = flaky(10);
    await expect(libs.retry(byDefault.fn, { interval: 0 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(byDefault.calls).toHaveLength(5);
  });

  it('retries only the errors the predicate matches, and stops at once on a StopError', async () => {
    const { libs, flaky } = await guest();
    const loginRefused = flaky(1, { message: 'LOGIN_FAILED' });
    const onlyVendorDown = (error: Error) => error.message === 'VENDOR_DOWN';
    await expect(libs.retry(loginRefused.fn, { interval: 0, predicate: onlyVendorDown })).rejects.toMatchObject({ message: 'LOGIN_FAILED' });
    expect(loginRefused.calls).toHaveLength(1);
    // The benign twin: the error the predicate matches is retried.
    const vendorDown = flaky(1, { message: 'VENDOR_DOWN' });
    expect(await libs.retry(vendorDown.fn, { interval: 0, predicate: onlyVendorDown })).toBe('done after 2');
    expect(await libs.retry(flaky(1, { code: 'EBUSY' }).fn, { interval: 0, predicate: { code: 'EBUSY' } }))
      .toBe('done after 2');

    const stopped = flaky(5, { message: 'account closed', stop: true });
    await expect(libs.retry(stopped.fn, { interval: 0 })).rejects.toMatchObject({ message: 'account closed' });
    expect(stopped.calls).toHaveLength(1);
  });

  it('names a bad argument', async () => {
    const { libs } = await guest();
    await expect(libs.retry('not a function')).rejects.toThrow('retry: the first argument must be the function to retry, got string');
    await expect(libs.retry(() => 1, { maxTries: 3 })).rejects.toThrow(/^retry: unknown option `maxTries`: use max_tries, timeout/);
    await expect(libs.retry(() => 1, { interval: -1 })).rejects.toThrow('retry: `interval` must be a number of at least 0, got -1');
    expect(await libs.retry(() => 1, { max_tries: 3 })).toBe(1);
  });
});

describe('Document', () => {
  it('compares documents deeply without _id and _rev, a Date equal to its ISO string unless strict', async () => {
    const { Simpson, date } = await guest();
    const lisa = new Simpson({ firstName: 'Lisa', born: date('1981-05-09T00:00:00.000Z'), _id: 'abc', _rev: '3-x', tags: ['sax'] });
    expect(lisa.metadata).toEqual({ version: 2 });
    expect(lisa.isEqual(new Simpson({ firstName: 'Lisa', born: date('1981-05-09T00:00:00.000Z'), tags: ['sax'] }))).toBe(true);
    expect(lisa.isEqual({ firstName: 'Lisa', born: '1981-05-09T00:00:00.000Z', tags: ['sax'], metadata: { version: 2 } })).toBe(true);
    expect(lisa.isEqual({ firstName: 'Lisa', born: '1981-05-09T00:00:00.000Z', tags: ['sax'], metadata: { version: 2 } }, ['_id', '_rev'], true))
      .toBe(false);
    expect(lisa.isEqual(new Simpson({ firstName: 'Bart', born: date('1981-05-09T00:00:00.000Z'), tags: ['sax'] }))).toBe(false);
    expect(lisa.isEqual(new Simpson({ firstName: 'Lisa', born: date('1981-05-09T00:00:00.000Z'), tags: ['sax', 'tuba'] }))).toBe(false);
    expect(lisa.isEqual(new Simpson({ firstName: 'Lisa', born: date('1981-05-09T00:00:00.000Z'), tags: ['sax'] }), ['_id'])).toBe(false);
    expect(lisa.toJSON()).toBe(lisa);
  });

  it("runs the subclass's validate before copying the attributes", async () => {
    const { Checked } = await guest();
    expect(() => new Checked({})).toThrow('a name is required');
    expect(new Checked({ name: 'ok' })).toMatchObject({ name: 'ok', metadata: { version: undefined } });
  });
});

describe('manifest', () => {
  const KONNECTOR = `
    const { BaseKonnector, log, manifest } = require('cozy-konnector-libs')
    module.exports = new BaseKonnector(async function start() {
      log('info', JSON.stringify({ data: manifest.data, metadata: manifest.getCozyMetadata({ sourceAccount: 'acc' }) }))
    })`;

  it("is the job's manifest, whose slug and version make the cozyMetadata", async () => {
    const host = createTestHost();
    const loaded = await loadGuest({ code: KONNECTOR }, host);
    const manifest = { slug: 'example-bills', version: '1.2.0', banksTransactionRegExp: 'EXAMPLE' };
    await loaded.run({ manifest });
    const line = host.logs.find((log) => log.message.startsWith('{"data"'))!;
    const { data, metadata } = JSON.parse(line.message);
    expect(data).toEqual(manifest);
    expect(metadata).toMatchObject({
      doctypeVersion: 1, metadataVersion: 1, createdByApp: 'example-bills', createdByAppVersion: '1.2.0', sourceAccount: 'acc',
      updatedByApps: [{ slug: 'example-bills', version: '1.2.0', date: metadata.createdAt }],
    });
  });

  it('fails the job with a clear error when the manifest is not a JSON object', async () => {
    const loaded = await loadGuest({ code: KONNECTOR }, createTestHost());
    await expect(loaded.run({ manifest: '[]' })).rejects.toEqual({ code: 'unknown-error', message: "the job's manifest must be a JSON object, got []" });
    await expect(loaded.run({ manifest: '{' })).rejects.toMatchObject({ message: expect.stringMatching(/^the job's manifest is not valid JSON/) });
  });

  it('setManifest (or assigning data) replaces it, and refuses what is not an object', async () => {
    const { libs } = await guest();
    libs.manifest.setManifest({ slug: 'testapp', version: '0.0.1' });
    expect(libs.manifest.data).toEqual({ slug: 'testapp', version: '0.0.1' });
    const metadata = libs.manifest.getCozyMetadata({ updatedByApps: [{ slug: 'other' }, { slug: 'testapp', version: '0.0.0' }] });
    expect(metadata.updatedByApps).toEqual([{ slug: 'other' }, { slug: 'testapp', version: '0.0.1', date: metadata.updatedAt }]);
    expect(() => libs.manifest.setManifest('testapp')).toThrow('manifest.setManifest: the manifest must be an object, got "testapp"');
    // Assigning data, as upstream's own tests do, is setManifest.
    libs.manifest.data = { slug: 'assigned' };
    expect(libs.manifest.getCozyMetadata().createdByApp).toBe('assigned');
    expect(() => { libs.manifest.data = null; }).toThrow('manifest.setManifest: the manifest must be an object, got null');
  });
});
