/**
 * The `files` capability: files in the user's Cozy, confined to the konnector's folder.
 *
 * Laid out like cozy-stack's local VFS: the content of `/Administrative/Energy/jane/bill.pdf` of the instance
 * `alice.cozy.example` is the disk file `<filesDir>/alice.cozy.example/Administrative/Energy/jane/bill.pdf`, and
 * its metadata is an io.cozy.files document in that instance's CouchDB database (the one `documents` names with
 * `databaseName`). Each folder on the way has its own `type: 'directory'` document.
 *
 * Here: the budgets, the folder tree and the order of a save (content to a temporary file, the document, the
 * content into place); beside it, by concern: paths.ts (what a guest path may be), folders.ts (the konnector's
 * folder), nodes.ts (the io.cozy.files documents), sniff.ts (content types), locks.ts (one save of a file at a time).
 *
 * Every input from the guest is untrusted: paths are resolved inside the konnector's folder only, from validated
 * segments; content goes to a temporary file first and is renamed into place once its document is written.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat as statPath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { BudgetExceeded } from '../budget.ts';
import { couchScope, hostCapability } from '../capability.ts';
import { Couch } from '../couchdb.ts';
import { jobScopeSchema } from '../job-scope.ts';
import { formatIssues } from '../schema-issues.ts';
import { FilesError } from './errors.ts';
import { accountName, konnectorFolderPath } from './folders.ts';
import { lockPath } from './locks.ts';
import { FileNodes, nodeId, ROOT_DIR_ID } from './nodes.ts';
import { folderPathSchema, parseGuestPath } from './paths.ts';
import { contentTypeOf } from './sniff.ts';

export { FilesError, type FilesErrorKind } from './errors.ts';
export { accountName, konnectorFolderPath } from './folders.ts';
export { contentTypeOf } from './sniff.ts';

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

/** Temporary contents live here, outside every instance (an instance is a domain: it never starts with "."). */
const TEMP_DIR = '.tmp';
const MAX_SHOWN_PATH = 200;

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

export function createFiles(opts: FilesOptions): Files {
  const parsed = optionsSchema.safeParse(opts);
  if (!parsed.success) throw new FilesError('invalid', `createFiles: bad options: ${formatIssues(parsed.error)}`);
  const { slug, accountId, appVersion, instance, folderPath, limits } = parsed.data;
  const filesDir = parsed.data.filesDir === undefined ? undefined : path.resolve(parsed.data.filesDir);
  const now = opts.now ?? (() => new Date());
  const nodes = new FileNodes(new Couch(parsed.data.couchUrl, parsed.data.requestTimeoutMs), instance,
    { slug, accountId, appVersion });
  const folderSegments = folderPath === undefined ? [] : folderPath.split('/').slice(1);
  /** Ids of the folders known to exist in this job, by Cozy path. */
  const knownDirs = new Map<string, string>();
  const usage = { files: 0, folders: 0, bytes: 0 };
  let stats = 0;
  // Counted before the work, so that concurrent saves cannot overrun a budget; given back on failure.
  const reserved = { files: 0, bytes: 0 };

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
      const existing = await nodes.read(id, operation);
      if (existing) {
        if (existing.type !== 'directory') {
          throw new FilesError('invalid', `${operation}: ${JSON.stringify(cozyPath)} is a file, not a folder: ` +
            'choose another path');
        }
        // The folders above the konnector's own (/Administrative...) are shared; from its own down, they are its own.
        if (segments.length >= folderSegments.length && !nodes.createdHere(existing, false)) {
          throw notOurs(cozyPath, 'folder', operation);
        }
        knownDirs.set(cozyPath, id);
        return id;
      }
      // The konnector's folder and those above it are a fixed few; the sub-folders a konnector makes are counted.
      const counted = segments.length > folderSegments.length;
      if (counted) takeFolder(operation);
      const date = now().toISOString();
      const created = await nodes.write({
        _id: id,
        type: 'directory',
        name: segments.at(-1) ?? '',
        ...(parentId === undefined ? {} : { dir_id: parentId }),
        path: cozyPath,
        created_at: date,
        updated_at: date,
        tags: [],
        cozyMetadata: nodes.metadata(undefined, date, false),
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
          const existing = await nodes.read(target.id, operation);
          if (existing?.type === 'directory') {
            throw new FilesError('invalid', `${operation}: ${JSON.stringify(target.cozyPath)} is a folder: choose ` +
              'another file name');
          }
          if (existing !== undefined && !nodes.createdHere(existing, true)) throw notOurs(target.cozyPath, 'file', operation);
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
            cozyMetadata: nodes.metadata(existing, date, true),
          };
          delete doc.restore_path;
          const rev = await nodes.write(doc, operation);
          if (rev === undefined) continue;
          try {
            await onDisk(operation, async () => {
              await mkdir(path.dirname(target.diskPath), { recursive: true });
              await rename(temp, target.diskPath);
            });
          } catch (e) {
            // The document must not describe content that is not there: put back what was.
            await nodes.write(existing ? { ...existing, _rev: rev } : { _id: target.id, _rev: rev, _deleted: true }, operation)
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
      const doc = await nodes.read(target.id, target.operation);
      if (!doc || doc.type !== 'file' || doc.trashed === true) return undefined;
      if (!nodes.createdHere(doc, true)) throw notOurs(target.cozyPath, 'file', target.operation);
      return (await existsOnDisk(target.diskPath)) ? JSON.stringify(doc) : undefined;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The capability (host-api/capability.ts)

export default hostCapability({
  interface: 'cozy:konnector/files@0.1.0',
  functions: {
    save: {
      blocks: true,
      params: z.tuple([z.string(), z.instanceof(Uint8Array), z.boolean()]),
      answer: (files: Files, path, content, replace) => files.save(path, content, replace),
    },
    stat: { blocks: true, params: z.tuple([z.string()]), answer: (files: Files, path) => files.stat(path) },
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
