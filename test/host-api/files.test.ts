/**
 * The `files` capability against a real CouchDB-API server and a real directory: where contents land, what the
 * io.cozy.files documents hold, confinement to the konnector's folder, replace semantics, budgets, atomicity.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nano from 'nano';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocuments, databaseName } from '../../host-api/documents.ts';
import {
  accountName,
  contentTypeOf,
  createFiles,
  FilesError,
  konnectorFolderPath,
  type FilesErrorKind,
  type FilesOptions,
} from '../../host-api/files/index.ts';
import { expectBudgetExceeded } from '../support/budget.ts';
import { startTestCouch, storedDocs, type TestCouch } from '../support/couch.ts';
import { pdf } from '../support/pdf.ts';

const FOLDER = '/Administrative/Example Energy/jane@example.org';
const PDF = pdf('bill');
const PNG = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);

let couch: TestCouch;
/** The tests' files directories. */
let tempRoot: string;
let counter = 0;

beforeAll(async () => {
  tempRoot = await mkdtemp(path.join(os.tmpdir(), 'files-test-'));
  couch = await startTestCouch();
});

afterAll(async () => {
  await couch?.stop();
  await rm(tempRoot, { recursive: true, force: true });
});

/** A fresh instance and files directory per test: tests sharing the server stay apart. */
function setup(overrides: Partial<FilesOptions> = {}) {
  counter += 1;
  const instance = `files${counter}.cozy.test`;
  const filesDir = path.join(tempRoot, `store-${counter}`);
  const options: FilesOptions = {
    couchUrl: couch.url,
    instance,
    slug: 'example-bills',
    appVersion: '1.2.3',
    accountId: 'account-1',
    folderPath: FOLDER,
    filesDir,
    limits: { maxFileBytes: 1024, maxTotalBytes: 4096, maxFiles: 10 },
    ...overrides,
  };
  return {
    files: createFiles(options),
    options,
    instance,
    filesDir,
    disk: (cozyPath: string) => path.join(filesDir, instance, ...cozyPath.split('/').slice(1)),
    docs: () => storedDocs(couch.url, instance, 'io.cozy.files'),
  };
}

async function expectFilesError(promise: Promise<unknown>, kind: FilesErrorKind, pattern: RegExp): Promise<void> {
  const error = await promise.then(
    (value) => { throw new Error(`expected a ${kind} FilesError, got ${String(value)}`); },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FilesError);
  expect(error).toMatchObject({ kind });
  expect((error as FilesError).message).toMatch(pattern);
}

const md5 = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('base64');
const parse = (json: string | undefined) => JSON.parse(json!) as Record<string, any>;

describe('the konnector folder', () => {
  const names = { konnector: 'Example Energy', account: 'jane@example.org' };

  it.each([
    ['$administrative/$konnector/$account', '/Administrative/Example Energy/jane@example.org'],
    ['$photos/$konnector/$account', '/Photos/Example Energy/jane@example.org'],
    ['$administrative', '/Administrative/Example Energy/jane@example.org'],
    ['', '/Administrative/Example Energy/jane@example.org'],
    ['/$konnector//bills/', '/Administrative/Example Energy/bills'],
  ])('renders %j as cozy-client does: %s', (defaultDir, expected) => {
    expect(konnectorFolderPath([{ defaultDir }], names)).toBe(expected);
  });

  it.each([
    ['$administrative/Victim Energy/jane'],
    ['$administrative/Energy/$konnectorName'],
    ['$account'],
    ['$photos/$account/$konnector'],
  ])('cannot name a folder outside its own: %j becomes $konnector/$account', (defaultDir) => {
    const base = defaultDir.startsWith('$photos') ? 'Photos' : 'Administrative';
    expect(konnectorFolderPath([{ defaultDir }], names)).toBe(`/${base}/Example Energy/jane@example.org`);
  });

  it('is absent when the manifest asks for no folder, the default one when it asks without naming one', () => {
    expect(konnectorFolderPath(undefined, names)).toBeUndefined();
    expect(konnectorFolderPath(undefined, names, { login: { type: 'text' } })).toBeUndefined();
    // As cozy-harvest-lib's needsFolder: the legacy field, or a `folders` key even when empty, asks for one.
    const defaultFolder = '/Administrative/Example Energy/jane@example.org';
    expect(konnectorFolderPath(undefined, names, { advancedFields: { folderPath: { advanced: true, isRequired: false } } }))
      .toBe(defaultFolder);
    expect(konnectorFolderPath([], names)).toBe(defaultFolder);
    expect(konnectorFolderPath([{}], names)).toBe(defaultFolder);
  });

  it('cannot be moved elsewhere by an account name or konnector name', () => {
    expect(konnectorFolderPath([{ defaultDir: '$konnector/$account' }], { konnector: '..', account: '../../etc/x' }))
      .toBe('/Administrative/_/..-..-etc-x');
    expect(konnectorFolderPath([{ defaultDir: '$konnector/$account' }], { konnector: 'K', account: 'a\u0000b\nc' })).toBe('/Administrative/K/a-b-c');
  });

  it('names the account as cozy-client does: accountName, login, identifier, email, else its id', () => {
    expect(accountName({ login: 'jane', accountName: 'Home' }, 'acc')).toBe('Home');
    expect(accountName({ login: 'jane', email: 'j@x' }, 'acc')).toBe('jane');
    expect(accountName({ identifier: 'ID-1', email: 'j@x' }, 'acc')).toBe('ID-1');
    expect(accountName({ password: 'secret' }, 'acc')).toBe('acc');
  });
});

describe('content types', () => {
  it.each([
    ['bill.bin', PDF, 'application/pdf', 'pdf'],
    ['cover.jpg', PNG, 'image/png', 'image'],
    ['photo', Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]), 'image/jpeg', 'image'],
    ['anim.gif', new TextEncoder().encode('GIF89a....'), 'image/gif', 'image'],
    ['bill.pdf', new TextEncoder().encode('<!DOCTYPE html><html><body>Log in</body></html>'), 'text/html', 'code'],
    ['report.docx', new TextEncoder().encode('PK\x03\x04rest'), 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'text'],
    ['archive.bin', new TextEncoder().encode('PK\x03\x04rest'), 'application/zip', 'zip'],
    ['orders.csv', new TextEncoder().encode('ref;amount\n1;2\n'), 'text/csv', 'text'],
    ['mystery', Uint8Array.from([1, 2, 3]), 'application/octet-stream', 'files'],
  ])('%s is sniffed as %s (class %s)', (name, bytes, mime, fileClass) => {
    expect(contentTypeOf(name, bytes)).toEqual({ mime, class: fileClass });
  });
});

describe('save and stat', () => {
  it('stores the content under <filesDir>/<instance>/<path> and describes it as cozy-stack does', async () => {
    const { files, disk, docs } = setup();
    const saved = parse(await files.save('2024/bill-01.pdf', PDF, false));

    expect(await readFile(disk(`${FOLDER}/2024/bill-01.pdf`))).toEqual(Buffer.from(PDF));
    expect(saved).toMatchObject({
      type: 'file',
      name: 'bill-01.pdf',
      size: String(PDF.length),
      md5sum: md5(PDF),
      mime: 'application/pdf',
      class: 'pdf',
      trashed: false,
      executable: false,
      tags: [],
      cozyMetadata: {
        createdByApp: 'example-bills',
        createdByAppVersion: '1.2.3',
        sourceAccount: 'account-1',
        uploadedBy: { slug: 'example-bills', version: '1.2.3' },
        updatedByApps: [{ slug: 'example-bills', version: '1.2.3', date: saved.updated_at }],
      },
    });
    expect(saved._id).toMatch(/^[0-9a-f]{32}$/);
    expect(saved._rev).toMatch(/^1-/);

    // One directory document per folder on the way, each pointing at its parent, up to the root.
    const stored = await docs();
    const dirs = new Map(stored.filter((d) => d.type === 'directory').map((d) => [d.path, d]));
    expect([...dirs.keys()].sort()).toEqual(['/', '/Administrative', '/Administrative/Example Energy', FOLDER, `${FOLDER}/2024`]);
    expect(dirs.get('/')!._id).toBe('io.cozy.files.root-dir');
    for (const [cozyPath, dir] of dirs) {
      if (cozyPath === '/') continue;
      expect(dir.name).toBe(path.posix.basename(cozyPath));
      expect(dir.dir_id).toBe(dirs.get(path.posix.dirname(cozyPath))!._id);
      expect(dir.cozyMetadata).toMatchObject({ createdByApp: 'example-bills', sourceAccount: 'account-1' });
    }
    expect(saved.dir_id).toBe(dirs.get(`${FOLDER}/2024`)!._id);
    expect(stored.filter((d) => d.type === 'file')).toEqual([saved]);

    expect(parse(await files.stat('2024/bill-01.pdf'))).toEqual(saved);
    expect(files.usage).toEqual({ files: 1, folders: 1, bytes: PDF.length });
  });

  it('stat answers nothing for a missing file, a folder, or a document whose content is gone', async () => {
    const { files, disk } = setup();
    expect(await files.stat('nothing.pdf')).toBeUndefined();
    await files.save('2024/bill.pdf', PDF, false);
    expect(await files.stat('2024')).toBeUndefined();
    await unlink(disk(`${FOLDER}/2024/bill.pdf`));
    expect(await files.stat('2024/bill.pdf')).toBeUndefined();
  });

  it('refuses to overwrite without replace; with replace keeps the id and updates content, md5 and size', async () => {
    const { files, disk, docs, options } = setup();
    const first = parse(await files.save('bill.pdf', PDF, false));
    await expectFilesError(files.save('bill.pdf', PNG, false), 'exists', /already exists: pass replace=true/);
    expect(await readFile(disk(`${FOLDER}/bill.pdf`))).toEqual(Buffer.from(PDF));

    // Metadata another writer added (the SDK's qualification) survives a replacement.
    const db = nano(couch.url).use<Record<string, any>>(decodeURIComponent(databaseName(options.instance, 'io.cozy.files')));
    await db.insert({ ...first, metadata: { qualification: { label: 'energy_invoice' } } });

    const replaced = parse(await files.save('bill.pdf', PNG, true));
    expect(replaced._id).toBe(first._id);
    expect(replaced._rev).toMatch(/^3-/);
    expect(replaced).toMatchObject({
      size: String(PNG.length), md5sum: md5(PNG), mime: 'image/png', created_at: first.created_at,
      metadata: { qualification: { label: 'energy_invoice' } },
    });
    expect(replaced.cozyMetadata.createdAt).toBe(first.cozyMetadata.createdAt);
    expect(await readFile(disk(`${FOLDER}/bill.pdf`))).toEqual(Buffer.from(PNG));
    expect((await docs()).filter((d) => d.type === 'file')).toHaveLength(1);
    expect(files.usage).toEqual({ files: 2, folders: 0, bytes: PDF.length + PNG.length });
  });

  it('repairs a document whose content is gone, even without replace', async () => {
    const { files, disk } = setup();
    const first = parse(await files.save('bill.pdf', PDF, false));
    await unlink(disk(`${FOLDER}/bill.pdf`));
    const again = parse(await files.save('bill.pdf', PDF, false));
    expect(again._id).toBe(first._id);
    expect(await readFile(disk(`${FOLDER}/bill.pdf`))).toEqual(Buffer.from(PDF));
  });

  it('keeps instances apart: same path, other database and other directory', async () => {
    const a = setup();
    const b = setup({ filesDir: undefined });
    const bFiles = createFiles({ ...b.options, filesDir: a.filesDir });
    await a.files.save('bill.pdf', PDF, false);
    await bFiles.save('bill.pdf', PNG, false);
    expect(await readFile(a.disk(`${FOLDER}/bill.pdf`))).toEqual(Buffer.from(PDF));
    expect(await readFile(path.join(a.filesDir, b.instance, ...FOLDER.split('/').slice(1), 'bill.pdf'))).toEqual(Buffer.from(PNG));
    expect((await a.docs()).find((d) => d.type === 'file')!.md5sum).toBe(md5(PDF));
    expect((await b.docs()).find((d) => d.type === 'file')!.md5sum).toBe(md5(PNG));
  });
});

describe('confinement', () => {
  it.each([
    ['..', 'forbidden', /would leave the konnector's folder/],
    ['../other-konnector/bill.pdf', 'forbidden', /would leave/],
    ['2024/../../../etc/passwd', 'forbidden', /would leave/],
    ['/etc/passwd', 'forbidden', /absolute paths are refused/],
    ['', 'invalid', /the path is empty/],
    ['bill\u0000.pdf', 'invalid', /NUL or control character/],
    ['bill\n.pdf', 'invalid', /NUL or control character/],
    ['2024//bill.pdf', 'invalid', /empty or "\." segment/],
    ['./bill.pdf', 'invalid', /empty or "\." segment/],
    ['2024/', 'invalid', /empty or "\." segment/],
    [`${'é'.repeat(128)}.pdf`, 'invalid', /bytes long, more than 255/],
    [`${'d/'.repeat(40)}bill.pdf`, 'invalid', /levels deep, more than 32/],
    ['bill\ud800.pdf', 'invalid', /not valid Unicode/],
  ] as const)('refuses %j (%s), writing nothing', async (guestPath, kind, pattern) => {
    const { files, filesDir, docs } = setup();
    await expectFilesError(files.save(guestPath, PDF, true), kind, pattern);
    await expectFilesError(files.stat(guestPath), kind, pattern);
    expect(await docs()).toEqual([]);
    expect(await readdir(filesDir).catch(() => [])).toEqual([]);
  });

  it('accepts names that only look odd: dots inside, spaces, unicode, exactly 255 bytes', async () => {
    const { files, disk } = setup();
    const longest = `${'a'.repeat(251)}.pdf`;
    for (const name of ['..bill..pdf', 'Facture n° 12 (copie).pdf', '请求书.pdf', longest, 'a\\b.pdf']) {
      const doc = parse(await files.save(`odd/${name}`, PDF, false));
      expect(doc.name).toBe(name);
      expect(await readFile(disk(`${FOLDER}/odd/${name}`))).toEqual(Buffer.from(PDF));
    }
  });

  it('refuses everything when the manifest grants no folder', async () => {
    const { files } = setup({ folderPath: undefined });
    await expectFilesError(files.save('bill.pdf', PDF, false), 'forbidden', /its manifest must grant one in "folders"/);
    await expectFilesError(files.stat('bill.pdf'), 'forbidden', /no folder/);
  });

  it('is unavailable without a file store, and says how to give it one', async () => {
    const { files } = setup({ filesDir: undefined });
    await expectFilesError(files.save('bill.pdf', PDF, false), 'unavailable', /--files-dir/);
  });

  it('tells a file from a folder', async () => {
    const { files } = setup();
    await files.save('2024/bill.pdf', PDF, false);
    await expectFilesError(files.save('2024', PDF, true), 'invalid', /is a folder/);
    await expectFilesError(files.save('2024/bill.pdf/inner.pdf', PDF, true), 'invalid', /is a file, not a folder/);
  });
});

describe('budgets', () => {
  it('counts sub-folders with files: a deep path ends the job at maxFiles; a shallow one fits', async () => {
    const { files, docs } = setup({ limits: { maxFileBytes: 100, maxTotalBytes: 1000, maxFiles: 5 } });
    const deep = Array.from({ length: 31 }, (_, i) => `d${i}`).join('/');
    await expectBudgetExceeded(files.save(`${deep}/bill.pdf`, PDF, false), 'FILES', 5);
    // The file being saved holds its place in the budget: 4 sub-folders were made.
    expect((await docs()).filter((d) => d.type === 'directory' && d.path.startsWith(`${FOLDER}/`))).toHaveLength(4);
    const twin = setup({ limits: { maxFileBytes: 100, maxTotalBytes: 1000, maxFiles: 5 } });
    await twin.files.save('a/b/bill.pdf', PDF, false);
    expect(twin.files.usage).toEqual({ files: 1, folders: 2, bytes: PDF.length });
  });

  it('ends the job past the number of stats per job', async () => {
    const { files } = setup({ limits: { maxFileBytes: 100, maxTotalBytes: 1000, maxFiles: 5, maxStats: 3 } });
    for (let i = 0; i < 3; i++) expect(await files.stat('missing.pdf')).toBeUndefined();
    await expectBudgetExceeded(files.stat('missing.pdf'), 'FILES_STATS', 3);
  });

  it('refuses a file over the per-file limit, naming the limit; one at the limit is saved', async () => {
    const { files, docs } = setup({ limits: { maxFileBytes: 100, maxTotalBytes: 1000, maxFiles: 10 } });
    await expectFilesError(files.save('big.bin', new Uint8Array(101), false), 'invalid', /101 bytes, more than the limit of 100 bytes per file/);
    expect((await docs()).filter((d) => d.type === 'file')).toEqual([]);
    await files.save('fits.bin', new Uint8Array(100), false);
    expect(files.usage).toEqual({ files: 1, folders: 0, bytes: 100 });
  });

  it('ends the job past the number of files per job (replacements count)', async () => {
    const { files } = setup({ limits: { maxFileBytes: 100, maxTotalBytes: 1000, maxFiles: 2 } });
    await files.save('a.pdf', PDF, false);
    await files.save('a.pdf', PDF, true);
    await expectBudgetExceeded(files.save('b.pdf', PDF, false), 'FILES', 2);
    expect(files.usage.files).toBe(2);
  });

  it('ends the job past the bytes of files per job, counting concurrent saves', async () => {
    const { files, docs } = setup({ limits: { maxFileBytes: 100, maxTotalBytes: 250, maxFiles: 10 } });
    const results = await Promise.allSettled([1, 2, 3].map((n) => files.save(`f${n}.bin`, new Uint8Array(100), false)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    const [refused] = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    await expectBudgetExceeded(Promise.reject(refused!.reason), 'FILES_BYTES', 250);
    expect((await docs()).filter((d) => d.type === 'file')).toHaveLength(2);
    expect(files.usage).toEqual({ files: 2, folders: 0, bytes: 200 });
  });
});

describe('between konnectors and accounts', () => {
  it("refuses to replace or show another account's file; its own are replaced and shown", async () => {
    const { files: victim, options } = setup();
    const original = await victim.save('bill.pdf', PDF, false);
    const attacker = createFiles({ ...options, accountId: 'account-2' });
    await expectFilesError(attacker.save('bill.pdf', PNG, true), 'forbidden', /"\/Administrative\/Example Energy\/jane@example.org\/bill.pdf" was created by another konnector or account/);
    await expectFilesError(attacker.stat('bill.pdf'), 'forbidden', /was created by another konnector or account/);
    expect(parse(await victim.stat('bill.pdf'))._rev).toBe(parse(original)._rev);
    expect(parse(await victim.save('bill.pdf', PNG, true))).toMatchObject({ mime: 'image/png' });
  });

  it("refuses another konnector's folder; another account of the same konnector shares it", async () => {
    const { files: victim, options } = setup();
    await victim.save('2024/bill.pdf', PDF, false);
    const attacker = createFiles({ ...options, slug: 'attacker' });
    await expectFilesError(attacker.save('new.pdf', PDF, false), 'forbidden', /the folder ".*jane@example.org" was created by another konnector/);
    await expectFilesError(attacker.stat('2024/bill.pdf'), 'forbidden', /was created by another konnector/);
    await expectFilesError(attacker.save('2024/new.pdf', PDF, false), 'forbidden', /was created by another konnector/);
    const sameKonnector = createFiles({ ...options, accountId: 'account-2' });
    expect(parse(await sameKonnector.save('2024/other.pdf', PDF, false))).toMatchObject({ name: 'other.pdf' });
  });
});

describe('atomicity and concurrent jobs', () => {
  it('leaves no temporary file behind, and no document when the content cannot be put in place', async () => {
    const { files, filesDir, disk, docs } = setup();
    await files.save('ok.pdf', PDF, false);
    // Something that is not a file blocks the rename: the document is rolled back.
    await mkdir(path.join(disk(`${FOLDER}/blocked.pdf`), 'inside'), { recursive: true });
    await expectFilesError(files.save('blocked.pdf', PDF, false), 'unavailable', /the file store could not write/);
    expect((await docs()).filter((d) => d.type === 'file').map((d) => d.name)).toEqual(['ok.pdf']);
    expect(await readdir(path.join(filesDir, '.tmp'))).toEqual([]);
    expect(files.usage).toEqual({ files: 1, folders: 0, bytes: PDF.length });
  });

  it('two jobs saving the same new file at once make one document: the second is told it exists', async () => {
    const one = setup();
    const other = createFiles(one.options);
    const results = await Promise.allSettled([one.files.save('2024/bill.pdf', PDF, false), other.save('2024/bill.pdf', PNG, false)]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ kind: 'exists' });
    const stored = await one.docs();
    expect(stored.filter((d) => d.type === 'file')).toHaveLength(1);
    expect(stored.filter((d) => d.path === `${FOLDER}/2024`)).toHaveLength(1);
    const winner = stored.find((d) => d.type === 'file')!;
    expect(md5(await readFile(one.disk(`${FOLDER}/2024/bill.pdf`)))).toBe(winner.md5sum);
  });
});

describe('io.cozy.files through the documents interface', () => {
  const documentsAs = (options: FilesOptions, slug: string, accountId: string) =>
    createDocuments({
      couchUrl: options.couchUrl,
      instance: options.instance,
      slug,
      accountId,
      permissions: { files: { type: 'io.cozy.files' } },
      limits: { maxDocuments: 10, maxDocumentBytes: 64 * 1024, maxFindLimit: 10 },
    });

  it("updates only the metadata of the konnector's own files; another konnector, a new file and a delete are refused", async () => {
    const { files, options } = setup();
    const saved = JSON.parse(await files.save('bill.pdf', PDF, false)) as Record<string, any>;

    const own = documentsAs(options, options.slug, options.accountId);
    const updated = JSON.parse(
      await own.save('io.cozy.files', JSON.stringify({ ...saved, metadata: { qualification: 'energy_invoice' }, name: 'renamed.pdf', dir_id: 'elsewhere', md5sum: 'forged' })),
    ) as Record<string, any>;
    expect(updated.metadata).toEqual({ qualification: 'energy_invoice' });
    expect(updated).toMatchObject({ name: saved.name, dir_id: saved.dir_id, md5sum: saved.md5sum, size: saved.size });

    const other = documentsAs(options, 'other-konnector', 'account-9');
    await expect(other.save('io.cozy.files', JSON.stringify({ ...updated, metadata: { qualification: 'x' } }))).rejects.toMatchObject({
      kind: 'forbidden',
      message: expect.stringMatching(/was not created by other-konnector/),
    });
    await expect(own.save('io.cozy.files', JSON.stringify({ type: 'file', name: 'fake.pdf', dir_id: saved.dir_id }))).rejects.toMatchObject({
      kind: 'forbidden',
      message: expect.stringMatching(/created and removed through the files interface/),
    });
    await expect(own.save('io.cozy.files', JSON.stringify({ _id: updated._id, _rev: updated._rev, _deleted: true }))).rejects.toMatchObject({ kind: 'forbidden' });
  });
});
