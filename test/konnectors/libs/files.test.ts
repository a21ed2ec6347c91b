/**
 * saveFiles, and saveBills' file handling, run as guest code against the runner's files and documents hosts
 * (a real directory, a CouchDB-API server) and a vendor's file server on 127.0.0.1 (see guest-harness.ts).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCouch, storedDocs, type TestCouch } from '../../support/couch.ts';
import type { TestServer } from '../../support/http-server.ts';
import { pdf } from '../../support/pdf.ts';
import { createTestDocuments, createTestFiles, createTestHost, loadGuest, startFileServer } from '../guest-harness.ts';

const GUEST = `
import { saveFiles, saveBills, requestFactory } from 'cozy-konnector-libs';
export { saveFiles, saveBills, requestFactory };
// The tests' PDF, made in the guest's realm as a konnector makes its bytes.
export { pdf as guestPdf } from './test/support/pdf.ts';
export const day = (n) => new Date(Date.UTC(2024, 0, n));
`;

const ACCOUNT = 'account-1';
const FOLDER = '/Administrative/Example Energy/jane';
const URL_BASE = 'http://files.example';
const PERMISSIONS = { bills: { type: 'io.cozy.bills' }, files: { type: 'io.cozy.files' } };

let couch: TestCouch;
let server: TestServer;
let filesDir: string;
let counter = 0;

beforeAll(async () => {
  filesDir = await mkdtemp(path.join(os.tmpdir(), 'sdk-files-'));
  [couch, server] = await Promise.all([startTestCouch(), startFileServer()]);
});

afterAll(async () => {
  await Promise.all([couch?.stop(), server?.stop()]);
  await rm(filesDir, { recursive: true, force: true });
});

interface Exports {
  saveFiles: ((entries: unknown[], fields: unknown, options?: unknown) => Promise<any[]>) & { sanitizeFileName(name: string): string };
  requestFactory(options: unknown): unknown;
  saveBills(entries: unknown[], fields: unknown, options?: unknown): Promise<any[]>;
  guestPdf(text: string): Uint8Array;
  day(n: number): Date;
}

interface GuestOptions {
  permissions?: Record<string, { type: string }>;
  folderPath?: string | undefined;
  maxFileBytes?: number;
}

/** A fresh instance (own databases and directory) with the guest SDK loaded. */
async function guest(opts: GuestOptions = {}) {
  counter += 1;
  const instance = `files${counter}.cozy.test`;
  const { host: documentsHost, documents } = createTestDocuments({
    couchUrl: couch.url, instance, accountId: ACCOUNT, permissions: opts.permissions ?? PERMISSIONS,
  });
  const { host: filesHost } = createTestFiles({
    couchUrl: couch.url, instance, accountId: ACCOUNT, folderPath: 'folderPath' in opts ? opts.folderPath : FOLDER, filesDir,
    limits: { maxFileBytes: opts.maxFileBytes ?? 1024 * 1024, maxTotalBytes: 16 * 1024 * 1024, maxFiles: 100 },
  });
  const host = createTestHost({
    documents: documentsHost, files: filesHost, http: { connectTo: { 'files.example:80': server.port } },
  });
  const loaded = await loadGuest({ code: GUEST }, host);
  const messages = () => host.logs.map((line) => line.message);
  return { ...(loaded.exports as unknown as Exports), instance, documents, messages, host };
}

const stored = (instance: string, doctype: string) => storedDocs(couch.url, instance, doctype);

const storedFiles = async (instance: string) => (await stored(instance, 'io.cozy.files')).filter((doc) => doc.type === 'file');
const onDisk = (instance: string, relative: string) => readFile(path.join(filesDir, instance, ...FOLDER.split('/').slice(1), ...relative.split('/')));
const md5 = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('base64');
const downloads = (name: string) => server.requests.filter((r) => r.url === `/${name}`).length;

describe('saveFiles', () => {
  it('saves each entry from its URL, fetchFile or filestream, under its subPath, and gives it its fileDocument', async () => {
    const { saveFiles, guestPdf, instance, messages } = await guest();
    const entries = await saveFiles([
      { fileurl: `${URL_BASE}/jan.pdf`, filename: 'january.pdf' },
      { fileurl: `${URL_BASE}/named-by-url.pdf` },
      { fetchFile: async () => guestPdf('fetched'), filename: 'fetched.pdf', subPath: 'extra/2024' },
      { filestream: guestPdf('streamed'), filename: 'streamed.pdf' },
      { vendorRef: 'no file at all' },
    ], {}, { sourceAccountIdentifier: 'jane' });

    expect(entries).toHaveLength(5);
    const files = await storedFiles(instance);
    expect(files.map((f) => f.name).sort()).toEqual(['fetched.pdf', 'january.pdf', 'named-by-url.pdf', 'streamed.pdf']);
    for (const [relative, expected] of [
      ['january.pdf', pdf('jan.pdf')],
      ['named-by-url.pdf', pdf('named-by-url.pdf')],
      ['extra/2024/fetched.pdf', pdf('fetched')],
    ] as const) {
      const content = await onDisk(instance, relative);
      expect(content).toEqual(Buffer.from(expected));
      const doc = files.find((f) => f.name === path.basename(relative))!;
      expect(doc).toMatchObject({ md5sum: md5(content), size: String(content.length), mime: 'application/pdf' });
    }
    for (const entry of entries.slice(0, 4)) {
      expect(entry.fileDocument).toEqual(files.find((f) => f._id === entry.fileDocument._id));
      expect(entry.fetchFile).toBeUndefined();
      expect(entry.filestream).toBeUndefined();
    }
    expect(entries[4].fileDocument).toBeUndefined();
    expect(messages()).toContain('saveFiles: saveFiles created 4 files for 5 entries');
  });

  it("names files as cozy-konnector-libs does: a relative fileurl's last segment, left percent-encoded, without control characters", async () => {
    const { saveFiles, requestFactory, instance } = await guest();
    const requestInstance = requestFactory({ baseUrl: URL_BASE });
    const entries = await saveFiles([
      { fileurl: '/bills/march%20bill.pdf' },
      { fileurl: `${URL_BASE}/control.pdf`, filename: 'tab\tbill\u0001.pdf' },
    ], {}, { requestInstance });
    expect(entries.map((entry) => entry.fileDocument?.name)).toEqual(['march%20bill.pdf', 'tabbill.pdf']);
    expect((await storedFiles(instance)).map((f) => f.name).sort()).toEqual(['march%20bill.pdf', 'tabbill.pdf']);
    expect(server.requests.map((r) => r.url)).toContain('/bills/march%20bill.pdf');
    expect(saveFiles.sanitizeFileName('AAA\u0000BBB\nCCC.pdf')).toBe('AAABBBCCC.pdf');
    expect(saveFiles.sanitizeFileName('..')).toBe('');
  });

  it('keeps a file already there: a second run downloads nothing and links the same document', async () => {
    const { saveFiles, instance } = await guest();
    const first = await saveFiles([{ fileurl: `${URL_BASE}/kept-1.pdf`, filename: 'kept.pdf' }], {});
    const again = await saveFiles([{ fileurl: `${URL_BASE}/kept-1.pdf`, filename: 'kept.pdf' }], {});
    expect(downloads('kept-1.pdf')).toBe(1);
    expect(again[0].fileDocument).toEqual(first[0].fileDocument);
    expect(await storedFiles(instance)).toHaveLength(1);
  });

  it('replaces a file when shouldReplaceFile says so, or when the stored one is not valid, keeping its id', async () => {
    const { saveFiles, guestPdf, instance } = await guest();
    const [first] = await saveFiles([{ fetchFile: () => guestPdf('v1'), filename: 'bill.pdf' }], {});
    const [replaced] = await saveFiles([{
      fetchFile: () => guestPdf('v2'), filename: 'bill.pdf', shouldReplaceFile: (file: any) => file.md5sum === first.fileDocument.md5sum,
    }], {});
    expect(replaced.fileDocument._id).toBe(first.fileDocument._id);
    expect(await onDisk(instance, 'bill.pdf')).toEqual(Buffer.from(pdf('v2')));

    const [revalidated] = await saveFiles([{ fetchFile: () => guestPdf('v3'), filename: 'bill.pdf' }], {}, {
      validateFile: (file: any) => file.md5sum !== replaced.fileDocument.md5sum,
    });
    expect(revalidated.fileDocument).toMatchObject({ _id: first.fileDocument._id, md5sum: md5(await onDisk(instance, 'bill.pdf')) });
    expect(await onDisk(instance, 'bill.pdf')).toEqual(Buffer.from(pdf('v3')));
    expect(await storedFiles(instance)).toHaveLength(1);
  });

  it('skips what the vendor got wrong (404, an HTML page as a PDF, an empty file, a file too large) and saves the rest', async () => {
    const { saveFiles, instance, messages } = await guest({ maxFileBytes: 200 });
    const entries = await saveFiles([
      { fileurl: `${URL_BASE}/missing.pdf` },
      { fileurl: `${URL_BASE}/login-page.pdf` },
      { fileurl: `${URL_BASE}/empty.pdf` },
      { fileurl: `${URL_BASE}/${'x'.repeat(300)}.pdf`, filename: 'huge.pdf' },
      { fileurl: `${URL_BASE}/good.pdf` },
    ], {});
    expect(entries.map((entry) => entry.fileDocument?.name)).toEqual([undefined, undefined, undefined, undefined, 'good.pdf']);
    expect(messages()).toEqual(expect.arrayContaining([
      'saveFiles: SAVE_FILE_FAILED',
      expect.stringMatching(/^saveFiles: 404 - <9 bytes> \(Error caught while trying to save the file http:\/\/files\.example\/missing\.pdf\)$/),
      'saveFiles: login-page.pdf and text/html do not correspond',
      'saveFiles: BAD_MIME_TYPE',
      'saveFiles: empty.pdf is empty',
      expect.stringMatching(/huge\.pdf.*more than the limit of 200 bytes per file/),
    ]));
    // The HTML page was saved (the host has no delete) but is linked to nothing; the empty file was never written.
    expect((await storedFiles(instance)).map((f) => f.name).sort()).toEqual(['good.pdf', 'login-page.pdf']);
  });

  it('ends the job with NOT_EXISTING_DIRECTORY when the manifest grants no folder, or a path leaves it', async () => {
    const noFolder = await guest({ folderPath: undefined });
    await expect(noFolder.saveFiles([{ fileurl: `${URL_BASE}/a.pdf` }], {})).rejects.toThrow(/^NOT_EXISTING_DIRECTORY$/);
    expect(noFolder.messages()).toContainEqual(expect.stringMatching(/its manifest must grant one in "folders"/));

    const escape = await guest();
    await expect(escape.saveFiles([{ fileurl: `${URL_BASE}/a.pdf`, subPath: '../other' }], {})).rejects.toThrow(/^NOT_EXISTING_DIRECTORY$/);
    expect(await readdir(path.join(filesDir, escape.instance, 'Administrative', 'Example Energy')).catch(() => [])).not.toContain('other');
    expect(await storedFiles(escape.instance)).toEqual([]);
    // The benign twin: a nested subPath inside the folder.
    const [saved] = await escape.saveFiles([{ fileurl: `${URL_BASE}/a.pdf`, subPath: 'Home/2024' }], {});
    expect(saved.fileDocument.name).toBe('a.pdf');
    expect(await onDisk(escape.instance, 'Home/2024/a.pdf')).toEqual(Buffer.from(pdf('a.pdf')));
  });

  it('writes fileAttributes metadata and the fileIdAttributes key on the file, and finds it by that key', async () => {
    const { saveFiles, instance, documents } = await guest();
    const qualification = { label: 'energy_invoice', purpose: 'invoice', sourceCategory: 'energy' };
    const entry = (filename: string) => ({
      fileurl: `${URL_BASE}/by-key.pdf`, filename, vendorRef: 'EE-1', fileAttributes: { metadata: { qualification, carbonCopy: true } },
    });
    const [first] = await saveFiles([entry('2024-01_bill.pdf')], {}, { fileIdAttributes: ['vendorRef'], sourceAccountIdentifier: 'jane' });
    expect(first.fileDocument).toMatchObject({
      name: '2024-01_bill.pdf',
      metadata: { qualification, carbonCopy: true, fileIdAttributes: 'EE-1' },
      cozyMetadata: { sourceAccountIdentifier: 'jane', createdByApp: 'example-bills' },
    });
    // Renamed by a new version of the konnector: the key still finds it, nothing is downloaded again.
    const [again] = await saveFiles([entry('EE-1.pdf')], {}, { fileIdAttributes: ['vendorRef'], sourceAccountIdentifier: 'jane' });
    expect(again.fileDocument._id).toBe(first.fileDocument._id);
    expect(downloads('by-key.pdf')).toBe(1);
    expect(documents.saved).toEqual({ 'io.cozy.files': 1 });
    expect(await storedFiles(instance)).toHaveLength(1);
  });

  it('saves files without their metadata, and says why, when the manifest does not grant io.cozy.files', async () => {
    const { saveFiles, instance, messages } = await guest({ permissions: { bills: { type: 'io.cozy.bills' } } });
    const [saved] = await saveFiles([
      { fileurl: `${URL_BASE}/plain.pdf`, fileAttributes: { metadata: { carbonCopy: true } } },
    ], {});
    expect(saved.fileDocument.name).toBe('plain.pdf');
    expect((await storedFiles(instance))[0].metadata).toBeUndefined();
    expect(messages()).toContainEqual(expect.stringMatching(/^saveFiles: file metadata and fileIdAttributes need io\.cozy\.files in the manifest's permissions/));
  });
});

describe('saveBills with files', () => {
  it('saves only the bills whose file was saved, each linked to it, and files contract bills in their contract folder', async () => {
    const { saveBills, day, instance, messages } = await guest();
    const bill = (n: number, extra: object) => ({ date: day(n), amount: n, vendor: 'Example Energy', ...extra });
    const saved = await saveBills([
      bill(1, { fileurl: `${URL_BASE}/b1.pdf`, filename: 'b1.pdf' }),
      bill(2, { fileurl: `${URL_BASE}/missing.pdf`, filename: 'b2.pdf' }),
      bill(3, { filename: 'b3.pdf' }),
      bill(4, { fileurl: `${URL_BASE}/b4.pdf`, filename: 'b4.pdf', contractId: 'C-42', contractLabel: 'Home' }),
    ], { login: 'jane' });
    const files = await storedFiles(instance);
    expect(saved.map((b) => [b.amount, b.invoice])).toEqual([
      [1, `io.cozy.files:${files.find((f) => f.name === 'b1.pdf')!._id}`],
      [4, `io.cozy.files:${files.find((f) => f.name === 'b4.pdf')!._id}`],
    ]);
    expect(await onDisk(instance, 'Home/b4.pdf')).toEqual(Buffer.from(pdf('b4.pdf')));
    expect(messages()).toContain('saveBills: 2 bill(s) without a saved file are not saved (as cozy-konnector-libs 5.x)');
    const bills = await stored(instance, 'io.cozy.bills');
    expect(bills.map((b) => b.amount).sort()).toEqual([1, 4]);
    for (const b of bills) expect(b.fileDocument ?? b.fileAttributes ?? b.subPath).toBeUndefined();
  });
});
