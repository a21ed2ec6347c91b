/**
 * The `files` capability: files in the user's Cozy, confined to the konnector's folder.
 *
 * Laid out like cozy-stack's local VFS: the content of `/Administrative/Energy/jane/bill.pdf` of the instance
 * `alice.cozy.example` is the disk file `<filesDir>/alice.cozy.example/Administrative/Energy/jane/bill.pdf`, and
 * its metadata is an io.cozy.files document in that instance's CouchDB database (the one `documents` names with
 * `databaseName`). Each folder on the way has its own `type: 'directory'` document.
 *
 * Documents get deterministic ids (a hash of the Cozy path), so that two jobs creating the same folder or file at
 * the same time meet on one document (CouchDB answers the second with a conflict) instead of making twins.
 *
 * Every input from the guest is untrusted: paths are resolved inside the konnector's folder only, from validated
 * segments; content goes to a temporary file first and is renamed into place once its document is written.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat as statPath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import nano from 'nano';
import { z } from 'zod';
import type * as WitFiles from '../wit/types/interfaces/cozy-konnector-files.js';
import { jobScopeSchema } from './job-scope.ts';
import { BudgetExceeded } from './budget.ts';
import { couchScope, hostCapability } from './capability.ts';
import { databaseName } from './documents.ts';

export type FilesErrorKind = WitFiles.ErrorKind;

export class FilesError extends Error {
  constructor(
    readonly kind: FilesErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'FilesError';
  }
}

export interface Files {
  /** WIT files.save: returns the io.cozy.files document as JSON. */
  save(path: string, content: Uint8Array, replace: boolean): Promise<string>;
  /** WIT files.stat: the io.cozy.files document as JSON, or undefined. */
  stat(path: string): Promise<string | undefined>;
  /** Files written (created or replaced), folders created and the files' bytes, during this job. */
  readonly usage: { files: number; folders: number; bytes: number };
}

export interface FilesOptions {
  couchUrl: string;
  instance: string;
  slug: string;
  accountId: string;
  /** The konnector's version, if known: cozyMetadata.createdByAppVersion and uploadedBy.version. */
  appVersion?: string;
  /**
   * The konnector's folder in the user's Cozy, e.g. "/Administrative/Example Energy/jane" (see
   * `konnectorFolderPath`); undefined when the manifest grants no folder, and then every call is refused.
   */
  folderPath: string | undefined;
  /** Where contents are stored, as `<filesDir>/<instance>/<path in the Cozy>`; undefined: no file storage. */
  filesDir: string | undefined;
  limits: z.input<typeof limitsSchema>;
  now?: () => Date;
  /** Per-request timeout towards CouchDB, after which the call fails as 'unavailable' (default 30 s). */
  requestTimeoutMs?: number;
}

export const FILES_DOCTYPE = 'io.cozy.files';
const ROOT_DIR_ID = 'io.cozy.files.root-dir';
/** Temporary contents live here, outside every instance (an instance is a domain: it never starts with "."). */
const TEMP_DIR = '.tmp';
// cozy-stack refuses longer names; a deeper path than this is no real konnector's.
const MAX_NAME_BYTES = 255;
const MAX_DEPTH = 32;
const MAX_SHOWN_PATH = 200;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Where cozy-client's `buildFolderPath` puts konnector folders ($administrative is localized by the stack). */
const BASE_DIRS: Record<string, string> = { $administrative: 'Administrative', $photos: 'Photos' };
const DEFAULT_DEFAULT_DIR = '$administrative/$konnector/$account';

/**
 * The account's name as cozy-client's `getAccountName` picks it (the job's fields are the account's `auth`):
 * accountName, login, identifier or email, else the account id.
 */
export function accountName(fields: Record<string, unknown>, accountId: string): string {
  for (const key of ['accountName', 'login', 'identifier', 'email']) {
    const value = fields[key];
    if (typeof value === 'string' && value.trim() !== '') return value;
  }
  return accountId;
}

/**
 * The konnector's folder, rendered from the manifest's first `folders[].defaultDir` as cozy-client's
 * `buildFolderPath` does: a leading `$administrative` or `$photos` names the base folder (`$administrative` is
 * added when neither is there), a segment that is exactly `$konnector` or `$account` becomes the konnector's
 * name or the account's name, and an empty rest means `$konnector/$account`. Undefined without `folders`.
 * Characters a folder name may not hold are replaced, so a login cannot move the folder elsewhere.
 *
 * In cozy-stack the user picks the folder, not the konnector; here the manifest only suggests one inside the
 * konnector's own: after the base, a rest that does not start with `$konnector` is replaced by
 * `$konnector/$account`, so a manifest cannot name another konnector's folder (docs/security.md).
 */
export function konnectorFolderPath(
  folders: ReadonlyArray<{ defaultDir?: unknown }> | undefined,
  names: { konnector: string; account: string },
  fields: Record<string, unknown> = {},
): string | undefined {
  // As cozy-harvest-lib's needsFolder: a `folders` key (even empty) or, in older manifests, the legacy
  // `fields.advancedFields.folderPath` asks for a folder; with neither the konnector has none.
  if (folders === undefined && !hasLegacyFolderField(fields)) return undefined;
  const declared = folders?.[0]?.defaultDir;
  const defaultDir = typeof declared === 'string' && declared ? declared : DEFAULT_DEFAULT_DIR;
  const segments = defaultDir.split('/').filter((segment) => segment !== '');
  const base = segments[0] !== undefined && Object.hasOwn(BASE_DIRS, segments[0]) ? BASE_DIRS[segments.shift()!]! : BASE_DIRS.$administrative!;
  const rest = segments[0] === '$konnector' ? segments : ['$konnector', '$account'];
  const rendered = rest.map((segment) =>
    segment === '$konnector' ? names.konnector : segment === '$account' ? names.account.replace(/\//g, '-') : segment);
  return `/${[base, ...rendered].map(safeFolderName).join('/')}`;
}

function hasLegacyFolderField(fields: Record<string, unknown>): boolean {
  const advanced = fields.advancedFields;
  return typeof advanced === 'object' && advanced !== null && 'folderPath' in advanced;
}

/** A name from the manifest or the account made acceptable as one folder name. */
function safeFolderName(name: string): string {
  const cleaned = truncateUtf8(name.replace(new RegExp(LONE_SURROGATE.source, 'g'), '\ufffd').replace(/[\u0000-\u001f\u007f/]/g, '-').trim(), MAX_NAME_BYTES);
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? '_' : cleaned;
}

function truncateUtf8(text: string, maxBytes: number): string {
  let out = text;
  while (Buffer.byteLength(out, 'utf8') > maxBytes) out = [...out].slice(0, -1).join('');
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Content types

/** Content types recognized by their first bytes; each names its class as cozy-stack would. */
const MAGIC: ReadonlyArray<{ mime: string; test: (b: Uint8Array) => boolean }> = [
  { mime: 'application/pdf', test: (b) => startsWith(b, '%PDF-') },
  { mime: 'image/png', test: (b) => startsWith(b, '\x89PNG\r\n\x1a\n') },
  { mime: 'image/jpeg', test: (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff },
  { mime: 'image/gif', test: (b) => startsWith(b, 'GIF87a') || startsWith(b, 'GIF89a') },
  { mime: 'image/webp', test: (b) => startsWith(b, 'RIFF') && startsWith(b, 'WEBP', 8) },
  { mime: 'image/tiff', test: (b) => startsWith(b, 'II*\x00') || startsWith(b, 'MM\x00*') },
  { mime: 'image/heic', test: (b) => startsWith(b, 'ftyp', 4) && ['heic', 'heix', 'mif1'].some((brand) => startsWith(b, brand, 8)) },
  { mime: 'video/mp4', test: (b) => startsWith(b, 'ftyp', 4) && ['isom', 'mp41', 'mp42', 'avc1'].some((brand) => startsWith(b, brand, 8)) },
  { mime: 'application/zip', test: (b) => startsWith(b, 'PK\x03\x04') },
  { mime: 'application/gzip', test: (b) => b[0] === 0x1f && b[1] === 0x8b },
  // The classic konnector bug: a vendor's HTML error or login page saved under a .pdf name.
  { mime: 'text/html', test: (b) => /^(\ufeff)?\s*<(!doctype html|html[\s>])/i.test(latin1Head(b)) },
];

/** By extension, for what has no magic number, and to name the zip-based formats. */
const BY_EXTENSION: Record<string, string> = {
  pdf: 'application/pdf', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif',
  webp: 'image/webp', tif: 'image/tiff', tiff: 'image/tiff', heic: 'image/heic', bmp: 'image/bmp',
  svg: 'image/svg+xml', mp4: 'video/mp4', mp3: 'audio/mpeg', txt: 'text/plain', csv: 'text/csv',
  html: 'text/html', htm: 'text/html', xml: 'text/xml', json: 'application/json', ics: 'text/calendar',
  vcf: 'text/vcard', eml: 'message/rfc822', zip: 'application/zip', gz: 'application/gzip',
  odt: 'application/vnd.oasis.opendocument.text', ods: 'application/vnd.oasis.opendocument.spreadsheet',
  odp: 'application/vnd.oasis.opendocument.presentation',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  doc: 'application/msword', xls: 'application/vnd.ms-excel', ppt: 'application/vnd.ms-powerpoint',
  epub: 'application/epub+zip',
};

const ZIP_BASED = new Set(['odt', 'ods', 'odp', 'docx', 'xlsx', 'pptx', 'epub']);
const OCTET_STREAM = 'application/octet-stream';

/** cozy-stack's classes for the types that do not take the part before "/" (vfs.ExtractMimeAndClass). */
const CLASSES: Record<string, string> = {
  [OCTET_STREAM]: 'files', 'application/pdf': 'pdf', 'text/html': 'code', 'text/css': 'code', 'text/xml': 'code',
  'application/zip': 'zip', 'application/gzip': 'zip', 'application/epub+zip': 'zip',
  'application/vnd.ms-powerpoint': 'slide', 'application/vnd.oasis.opendocument.presentation': 'slide',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'slide',
  'application/vnd.ms-excel': 'spreadsheet', 'application/vnd.oasis.opendocument.spreadsheet': 'spreadsheet',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'spreadsheet',
  'application/msword': 'text', 'application/vnd.oasis.opendocument.text': 'text',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'text',
};

function startsWith(bytes: Uint8Array, text: string, offset = 0): boolean {
  if (bytes.length < offset + text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[offset + i] !== text.charCodeAt(i)) return false;
  return true;
}

function latin1Head(bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, 256)).toString('latin1');
}

/**
 * The content type and cozy class of a file: from its first bytes when they are recognized (a zip archive is
 * named by its extension when that is a zip-based format), else from its extension, else octet-stream.
 */
export function contentTypeOf(name: string, content: Uint8Array): { mime: string; class: string } {
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
  const byExtension = Object.hasOwn(BY_EXTENSION, extension) ? BY_EXTENSION[extension] : undefined;
  let mime = MAGIC.find((signature) => signature.test(content))?.mime;
  if (mime === 'application/zip' && ZIP_BASED.has(extension)) mime = byExtension;
  mime ??= byExtension ?? OCTET_STREAM;
  return { mime, class: CLASSES[mime] ?? mime.slice(0, mime.indexOf('/')) };
}

// ---------------------------------------------------------------------------------------------------------------
// Paths

/** The segments of a guest path, relative to the konnector's folder; throws what is wrong with it. */
function parseGuestPath(guestPath: unknown, operation: string): string[] {
  if (typeof guestPath !== 'string' || guestPath === '') {
    throw new FilesError('invalid', `${operation}: the path is empty: give a file name, e.g. "2024/bill.pdf"`);
  }
  if (LONE_SURROGATE.test(guestPath)) {
    throw new FilesError('invalid', `${operation}: the path is not valid Unicode (a lone surrogate)`);
  }
  if (/[\u0000-\u001f\u007f]/.test(guestPath)) {
    throw new FilesError('invalid', `${operation}: the path holds a NUL or control character: names are printable text`);
  }
  if (guestPath.startsWith('/')) {
    throw new FilesError('forbidden', `${operation}: absolute paths are refused: paths are relative to the ` +
      'konnector\'s folder, e.g. "2024/bill.pdf"');
  }
  const segments = guestPath.split('/');
  if (segments.includes('..')) {
    throw new FilesError('forbidden', `${operation}: ".." would leave the konnector's folder: paths stay inside it`);
  }
  if (segments.length > MAX_DEPTH) {
    throw new FilesError('invalid', `${operation}: the path is ${segments.length} levels deep, more than ${MAX_DEPTH}`);
  }
  for (const segment of segments) {
    if (segment === '' || segment === '.') {
      throw new FilesError('invalid', `${operation}: the path has an empty or "." segment (a doubled, leading or ` +
        'trailing "/"): write it like "2024/bill.pdf"');
    }
    const bytes = Buffer.byteLength(segment, 'utf8');
    if (bytes > MAX_NAME_BYTES) {
      throw new FilesError('invalid', `${operation}: the name ${JSON.stringify(segment.slice(0, 40))}... is ${bytes} ` +
        `bytes long, more than ${MAX_NAME_BYTES}: shorten it`);
    }
  }
  return segments;
}

const folderPathSchema = z
  .string()
  .refine((p) => p.startsWith('/') && p.length > 1, 'must be an absolute path such as "/Administrative/Energy"')
  .refine((p) => p.split('/').slice(1).every((s) => s !== '' && s !== '.' && s !== '..' && !/[\u0000-\u001f\u007f]/.test(s)),
    'must have no empty, ".", ".." or control-character segment');

/** The job's files limits; an operator's limits file overrides the defaults (runner/limits.ts). */
const limitsSchema = z.object({
  maxFileBytes: z.number().int().positive().default(64 * 1024 * 1024),
  /** Bytes of files written per job. */
  maxTotalBytes: z.number().int().nonnegative().default(512 * 1024 * 1024),
  /** Files and folders created or replaced per job. */
  maxFiles: z.number().int().nonnegative().default(1000),
  /** `files.stat` calls per job. */
  maxStats: z.number().int().nonnegative().default(10_000),
});

const optionsSchema = jobScopeSchema.extend({
  folderPath: folderPathSchema.optional(),
  filesDir: z.string().min(1).optional(),
  limits: limitsSchema,
});

// ---------------------------------------------------------------------------------------------------------------
// CouchDB documents

// Read leniently: a document another writer changed keeps working as long as these hold.
const storedNodeSchema = z.object({
  _id: z.string(),
  _rev: z.string(),
  type: z.enum(['file', 'directory']),
  trashed: z.boolean().optional(),
  created_at: z.string().optional(),
  cozyMetadata: z.record(z.unknown()).optional(),
}).passthrough();
type StoredNode = z.infer<typeof storedNodeSchema>;

const writeResultSchema = z.object({ id: z.string(), rev: z.string() }).passthrough();

interface CouchFailure {
  statusCode?: number;
  error?: string;
  reason?: string;
  message?: string;
}

const pathLocks = new Map<string, Promise<void>>();

/** Waits for the saves of `diskPath` before this one; resolves to the function that lets the next one go. */
async function lockPath(diskPath: string): Promise<() => void> {
  const before = pathLocks.get(diskPath) ?? Promise.resolve();
  let unlock!: () => void;
  const mine = new Promise<void>((resolve) => (unlock = resolve));
  const chained = before.then(() => mine);
  pathLocks.set(diskPath, chained);
  await before;
  return () => {
    unlock();
    if (pathLocks.get(diskPath) === chained) pathLocks.delete(diskPath);
  };
}

/** The document id of the folder or file at a Cozy path: 32 hex digits, like cozy-stack's ids. */
function nodeId(cozyPath: string): string {
  return createHash('sha256').update(`${FILES_DOCTYPE}\0${cozyPath}`).digest('hex').slice(0, 32);
}

export function createFiles(opts: FilesOptions): Files {
  const parsed = optionsSchema.safeParse(opts);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new FilesError('invalid', `createFiles: bad options: ${issues}`);
  }
  const { slug, accountId, appVersion, instance, folderPath, limits } = parsed.data;
  const filesDir = parsed.data.filesDir === undefined ? undefined : path.resolve(parsed.data.filesDir);
  const now = opts.now ?? (() => new Date());
  const requestTimeoutMs = parsed.data.requestTimeoutMs ?? 30_000;
  const couch = nano({ url: parsed.data.couchUrl });
  const couchOrigin = new URL(parsed.data.couchUrl).origin; // for messages: no credentials
  const db = decodeURIComponent(databaseName(instance, FILES_DOCTYPE));
  const folderSegments = folderPath === undefined ? [] : folderPath.split('/').slice(1);
  /** Ids of the folders known to exist in this job, by Cozy path. */
  const knownDirs = new Map<string, string>();
  const usage = { files: 0, folders: 0, bytes: 0 };
  let stats = 0;
  // Counted before the work, so that concurrent saves cannot overrun a budget; given back on failure.
  const reserved = { files: 0, bytes: 0 };

  function request(req: { method?: string; path?: string; body?: unknown }): Promise<unknown> {
    const signal = AbortSignal.timeout(requestTimeoutMs);
    return couch.relax({ ...req, db, signal } as nano.RequestOptions);
  }

  function couchError(e: unknown, operation: string): FilesError {
    if (e instanceof FilesError) return e;
    const failure = (e ?? {}) as CouchFailure;
    const reason = failure.reason ?? failure.error ?? failure.message ?? String(e);
    if (typeof failure.statusCode !== 'number') {
      return new FilesError('unavailable', `${operation}: CouchDB at ${couchOrigin} did not answer (${reason}); ` +
        'the job can be retried later');
    }
    return new FilesError('unavailable', `${operation}: CouchDB at ${couchOrigin} failed (HTTP ${failure.statusCode}: ` +
      `${reason}); the job can be retried later`);
  }

  /** Runs a file-store step; its failure is the store's, reported without the host's paths. */
  async function onDisk(operation: string, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (e) {
      const { code, message } = e as NodeJS.ErrnoException;
      throw new FilesError('unavailable', `${operation}: the file store could not write (${code ?? message}); ` +
        'the job can be retried later');
    }
  }

  /** What the guest names by `guestPath`: its Cozy path, its document id, its disk path. */
  function locate(guestPath: unknown, call: 'save' | 'stat') {
    const shown = typeof guestPath === 'string' ? JSON.stringify(guestPath.slice(0, MAX_SHOWN_PATH)) : String(guestPath);
    const operation = `files.${call}(${shown})`;
    if (folderPath === undefined) {
      throw new FilesError('forbidden', `${operation}: the konnector has no folder: its manifest must grant one in ` +
        '"folders", e.g. [{"defaultDir": "$administrative/$konnector/$account"}]');
    }
    if (filesDir === undefined) {
      throw new FilesError('unavailable', `${operation}: this runner has no file store: start it with a files ` +
        'directory (konnector run --files-dir <dir>)');
    }
    const segments = [...folderSegments, ...parseGuestPath(guestPath, operation)];
    const cozyPath = `/${segments.join('/')}`;
    const diskPath = path.join(filesDir, instance, ...segments);
    // Defence in depth: validated segments cannot leave the instance's tree.
    if (!diskPath.startsWith(path.join(filesDir, instance) + path.sep)) {
      throw new FilesError('forbidden', `${operation}: the path leaves the konnector's folder`);
    }
    return { operation, segments, cozyPath, id: nodeId(cozyPath), diskPath };
  }

  /** The document `id`, or undefined when there is none (or no database yet). */
  async function read(id: string, operation: string): Promise<StoredNode | undefined> {
    let doc: unknown;
    try {
      doc = await request({ path: encodeURIComponent(id) });
    } catch (e) {
      if ((e as CouchFailure).statusCode === 404) return undefined;
      throw couchError(e, operation);
    }
    const node = storedNodeSchema.safeParse(doc);
    if (!node.success) {
      throw new FilesError('unavailable', `${operation}: the io.cozy.files document ${id} is not a file or folder ` +
        `document (${node.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`);
    }
    return node.data;
  }

  /**
   * Writes a document and returns its new revision, or undefined on a conflict (another job wrote it first).
   * The database is created on its first write (another job may create it at the same time).
   */
  async function write(doc: Record<string, unknown>, operation: string): Promise<string | undefined> {
    const put = async () => writeResultSchema.parse(
      await request({ method: 'PUT', path: encodeURIComponent(String(doc._id)), body: doc })).rev;
    try {
      try {
        return await put();
      } catch (e) {
        if ((e as CouchFailure).statusCode !== 404) throw e;
      }
      try {
        await couch.relax({ db, method: 'PUT', signal: AbortSignal.timeout(requestTimeoutMs) } as nano.RequestOptions);
      } catch (e) {
        if ((e as CouchFailure).statusCode !== 412) throw e; // 412 file_exists: created meanwhile
      }
      return await put();
    } catch (e) {
      if ((e as CouchFailure).statusCode === 409) return undefined;
      throw couchError(e, operation);
    }
  }

  /** cozyMetadata of a new document (no base) or of an update of `base`, whose creation facts it keeps. */
  function metadata(base: StoredNode | undefined, date: string, upload: boolean): Record<string, unknown> {
    const previous = base?.cozyMetadata ?? {};
    const keep = (key: string) => (typeof previous[key] === 'string' ? { [key]: previous[key] } : {});
    const version = appVersion === undefined ? {} : { version: appVersion };
    const updatedByApps = Array.isArray(previous.updatedByApps)
      ? previous.updatedByApps.filter((entry) => (entry as { slug?: unknown })?.slug !== slug)
      : [];
    return {
      ...previous,
      metadataVersion: 1,
      doctypeVersion: '1',
      createdAt: date,
      createdByApp: slug,
      ...(base === undefined && appVersion !== undefined ? { createdByAppVersion: appVersion } : {}),
      sourceAccount: accountId,
      ...keep('createdAt'),
      ...keep('createdByApp'),
      ...keep('createdByAppVersion'),
      ...keep('sourceAccount'),
      updatedAt: date,
      updatedByApps: [...updatedByApps, { slug, date, ...version }],
      ...(upload ? { uploadedAt: date, uploadedBy: { slug, ...version } } : {}),
    };
  }

  /** Whether this konnector created `node` (and, when `forAccount`, for this job's account). */
  function createdHere(node: StoredNode, forAccount: boolean): boolean {
    const creator = node.cozyMetadata ?? {};
    return creator.createdByApp === slug && (!forAccount || creator.sourceAccount === accountId);
  }

  function notOurs(cozyPath: string, what: 'file' | 'folder', operation: string): FilesError {
    return new FilesError('forbidden', `${operation}: the ${what} ${JSON.stringify(cozyPath)} was created by another ` +
      `konnector${what === 'file' ? ' or account' : ''}: a konnector only writes and reads its own; choose another path`);
  }

  /** The folder document at `cozyPath`, created (with its parents) if missing; returns its id. */
  async function ensureDir(segments: string[], operation: string): Promise<string> {
    const cozyPath = segments.length === 0 ? '/' : `/${segments.join('/')}`;
    const known = knownDirs.get(cozyPath);
    if (known) return known;
    const id = segments.length === 0 ? ROOT_DIR_ID : nodeId(cozyPath);
    const parentId = segments.length === 0 ? undefined : await ensureDir(segments.slice(0, -1), operation);
    // A conflict means another job created it meanwhile: the second read finds it.
    for (let attempt = 0; attempt < 2; attempt++) {
      const existing = await read(id, operation);
      if (existing) {
        if (existing.type !== 'directory') {
          throw new FilesError('invalid', `${operation}: ${JSON.stringify(cozyPath)} is a file, not a folder: ` +
            'choose another path');
        }
        // The folders above the konnector's own (/Administrative...) are shared; from its own down, they are its own.
        if (segments.length >= folderSegments.length && !createdHere(existing, false)) {
          throw notOurs(cozyPath, 'folder', operation);
        }
        knownDirs.set(cozyPath, id);
        return id;
      }
      // The konnector's folder and those above it are a fixed few; the sub-folders a konnector makes are counted.
      const counted = segments.length > folderSegments.length;
      if (counted) takeFolder(operation);
      const date = now().toISOString();
      const created = await write({
        _id: id,
        type: 'directory',
        name: segments.at(-1) ?? '',
        ...(parentId === undefined ? {} : { dir_id: parentId }),
        path: cozyPath,
        created_at: date,
        updated_at: date,
        tags: [],
        cozyMetadata: metadata(undefined, date, false),
      }, operation);
      if (created !== undefined) {
        knownDirs.set(cozyPath, id);
        return id;
      }
      if (counted) usage.folders -= 1; // not created by this job after all
    }
    throw new FilesError('unavailable', `${operation}: the folder ${JSON.stringify(cozyPath)} keeps changing; retry later`);
  }

  async function existsOnDisk(diskPath: string): Promise<boolean> {
    try {
      return (await statPath(diskPath)).isFile();
    } catch {
      return false;
    }
  }

  /** Takes one file of `bytes` from the budgets, or ends the job. */
  function reserve(bytes: number, operation: string): void {
    const files = usage.files + usage.folders + reserved.files + 1;
    if (files > limits.maxFiles) throw new BudgetExceeded('FILES', limits.maxFiles, files, `${operation}: files and folders written`);
    const total = usage.bytes + reserved.bytes + bytes;
    if (total > limits.maxTotalBytes) {
      throw new BudgetExceeded('FILES_BYTES', limits.maxTotalBytes, total, `${operation}: bytes of files written`);
    }
    reserved.files += 1;
    reserved.bytes += bytes;
  }

  /** A sub-folder counts as a file against the FILES budget: each one is a document and a directory. */
  function takeFolder(operation: string): void {
    const entries = usage.files + usage.folders + reserved.files + 1;
    if (entries > limits.maxFiles) throw new BudgetExceeded('FILES', limits.maxFiles, entries, `${operation}: files and folders created`);
    usage.folders += 1;
  }

  function release(bytes: number): void {
    reserved.files -= 1;
    reserved.bytes -= bytes;
  }

  return {
    get usage() {
      return { ...usage };
    },

    async save(guestPath, content, replace) {
      const target = locate(guestPath, 'save');
      const { operation } = target;
      if (!(content instanceof Uint8Array)) {
        throw new FilesError('invalid', `${operation}: the content must be bytes (list<u8>)`);
      }
      if (content.byteLength > limits.maxFileBytes) {
        throw new FilesError('invalid', `${operation}: the file is ${content.byteLength} bytes, more than the limit ` +
          `of ${limits.maxFileBytes} bytes per file`);
      }
      reserve(content.byteLength, operation);
      // Saves of one file are serialized in this process: between a document
      // and its content landing on disk, another save would take the file for
      // one whose content is lost and "repair" it.
      const unlock = await lockPath(target.diskPath);
      const name = target.segments.at(-1)!;
      const temp = path.join(filesDir!, TEMP_DIR, `${randomUUID()}.part`);
      let tempMayExist = false;
      try {
        const dirId = await ensureDir(target.segments.slice(0, -1), operation);
        const md5sum = createHash('md5').update(content).digest('base64');
        const { mime, class: fileClass } = contentTypeOf(name, content);
        tempMayExist = true;
        await onDisk(operation, async () => {
          await mkdir(path.dirname(temp), { recursive: true });
          await writeFile(temp, content, { flag: 'wx' });
        });
        // A conflict means another job wrote this file meanwhile: decide again on what it wrote.
        for (let attempt = 0; attempt < 2; attempt++) {
          const existing = await read(target.id, operation);
          if (existing?.type === 'directory') {
            throw new FilesError('invalid', `${operation}: ${JSON.stringify(target.cozyPath)} is a folder: choose ` +
              'another file name');
          }
          if (existing !== undefined && !createdHere(existing, true)) throw notOurs(target.cozyPath, 'file', operation);
          // A document whose content is gone (or that was trashed) is repaired in place, whatever `replace` says.
          const live = existing !== undefined && existing.trashed !== true && (await existsOnDisk(target.diskPath));
          if (live && !replace) {
            throw new FilesError('exists', `${operation}: ${JSON.stringify(target.cozyPath)} already exists: pass ` +
              'replace=true to overwrite it, or stat it to reuse it');
          }
          const date = now().toISOString();
          const doc: Record<string, unknown> = {
            ...existing,
            _id: target.id,
            type: 'file',
            name,
            dir_id: dirId,
            created_at: existing?.created_at ?? date,
            updated_at: date,
            size: String(content.byteLength), // cozy-stack writes the size as a string
            md5sum,
            mime,
            class: fileClass,
            executable: false,
            trashed: false,
            tags: Array.isArray(existing?.tags) ? existing.tags : [],
            cozyMetadata: metadata(existing, date, true),
          };
          delete doc.restore_path;
          const rev = await write(doc, operation);
          if (rev === undefined) continue;
          try {
            await onDisk(operation, async () => {
              await mkdir(path.dirname(target.diskPath), { recursive: true });
              await rename(temp, target.diskPath);
            });
          } catch (e) {
            // The document must not describe content that is not there: put back what was.
            await write(existing ? { ...existing, _rev: rev } : { _id: target.id, _rev: rev, _deleted: true }, operation)
              .catch(() => undefined);
            throw e;
          }
          tempMayExist = false;
          usage.files += 1;
          usage.bytes += content.byteLength;
          return JSON.stringify({ ...doc, _rev: rev });
        }
        throw new FilesError('unavailable', `${operation}: the file keeps changing under other writers; retry later`);
      } finally {
        release(content.byteLength);
        if (tempMayExist) await rm(temp, { force: true });
        unlock();
      }
    },

    async stat(guestPath) {
      const target = locate(guestPath, 'stat');
      if (stats >= limits.maxStats) {
        throw new BudgetExceeded('FILES_STATS', limits.maxStats, stats + 1, `${target.operation}: stats`);
      }
      stats++;
      const doc = await read(target.id, target.operation);
      if (!doc || doc.type !== 'file' || doc.trashed === true) return undefined;
      if (!createdHere(doc, true)) throw notOurs(target.cozyPath, 'file', target.operation);
      return (await existsOnDisk(target.diskPath)) ? JSON.stringify(doc) : undefined;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The capability (host-api/capability.ts)

export default hostCapability({
  interface: 'cozy:konnector/files@0.1.0',
  functions: {
    save: { blocks: true, answer: (files: Files, path, content, replace) => files.save(path, content, replace) },
    stat: { blocks: true, answer: (files: Files, path) => files.stat(path) },
  },
  error: FilesError,
  limits: limitsSchema,
  create: (scope, limits) =>
    createFiles({
      ...couchScope(scope),
      folderPath: konnectorFolderPath(scope.manifest.folders, {
        konnector: scope.manifest.name,
        account: accountName(scope.fields, scope.accountId),
      }, scope.manifest.fields),
      filesDir: scope.filesDir,
      limits,
    }),
  usage: (files, limits) => ({
    files: { used: files.usage.files + files.usage.folders, limit: limits.maxFiles },
    filesBytes: { used: files.usage.bytes, limit: limits.maxTotalBytes },
  }),
});
