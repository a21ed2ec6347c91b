/**
 * The `documents` capability: the guest's access to the user's CouchDB, one database per doctype, guarded by
 * the manifest's permissions and the job's budgets. Every input from the guest is untrusted.
 */
import { z } from 'zod';
import { isRunnerDatabase, jobScopeSchema } from './job-scope.ts';
import type * as WitDocuments from '../wit/types/interfaces/cozy-konnector-documents.js';
import { BudgetExceeded } from './budget.ts';
import { couchScope, hostCapability } from './capability.ts';
import { asCouchError, Couch, databaseName, hostMetadata, isCouchError, storedMetadata, type CouchDatabase } from './couchdb.ts';
import { formatIssues } from './schema-issues.ts';

export type DocumentsErrorKind = WitDocuments.ErrorKind;

export class DocumentsError extends Error {
  readonly kind: DocumentsErrorKind;
  constructor(kind: DocumentsErrorKind, message: string) {
    super(message);
    this.name = 'DocumentsError';
    this.kind = kind;
  }
}

export interface DocumentsOptions {
  /** CouchDB base URL (credentials in the URL are used, and never shown in messages). */
  couchUrl: string;
  /** The Cozy instance domain, e.g. "alice.cozy.example": the prefix of every database name. */
  instance: string;
  /** The konnector's slug: cozyMetadata.createdByApp and updatedByApps[].slug. */
  slug: string;
  /** The io.cozy.accounts id the job runs for: cozyMetadata.sourceAccount. */
  accountId: string;
  /** The konnector's version, if known: cozyMetadata.createdByAppVersion and updatedByApps[].version. */
  appVersion?: string;
  /** manifest.konnector permissions. */
  permissions: Record<string, { type: string; verbs?: string[] }>;
  limits: z.input<typeof limitsSchema>;
  now?: () => Date;
  /** Per-request timeout towards CouchDB, after which the call fails as 'unavailable' (default 30 s). */
  requestTimeoutMs?: number;
}

export interface Documents {
  /** WIT documents.save: doc is a JSON object string; returns the stored doc as JSON string. */
  save(doctype: string, docJson: string): Promise<string>;
  /** WIT documents.find: Mango selector JSON object; returns a JSON array string. */
  find(doctype: string, selectorJson: string, limit: number): Promise<string>;
  /** Documents written per doctype during this job (for the job report `saved`). */
  readonly saved: Record<string, number>;
  /**
   * Host side, before the job: makes the job's io.cozy.accounts document when
   * the manifest grants that doctype and there is none, as cozy-stack has one
   * from the moment Harvest made the account. No credentials in it. Not
   * counted in the job's budgets: the konnector did not ask for it.
   */
  ensureAccount(): Promise<void>;
}

export { databaseName } from './couchdb.ts';

const ACCOUNTS_DOCTYPE = 'io.cozy.accounts';
const FILES_DOCTYPE = 'io.cozy.files';
/**
 * Fields of an io.cozy.files document that describe the file itself; only the
 * files interface sets them, so a metadata update through `documents` cannot
 * move, rename or forge another file.
 */
const FILE_SYSTEM_KEYS = ['type', 'name', 'dir_id', 'path', 'size', 'md5sum', 'mime', 'class', 'trashed', 'restore_path', 'executable'];
const DOCTYPE_PATTERN = /^[a-z0-9]+(\.[a-z0-9_]+)+$/;
const MAX_DOCTYPE_LENGTH = 128;
// Deeper JSON than this is no real document, and would overflow recursive serializers on the way to CouchDB.
const MAX_JSON_DEPTH = 100;
const ALLOWED_SPECIAL_KEYS = new Set(['_id', '_rev', '_deleted']);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/**
 * Selector operators the embedded CouchDB-API server runs with a backtracking engine and no time bound: one
 * `{"$regex": "^(a+)+$"}` keeps it busy for hours, for every job. Refused wherever they appear.
 */
const RUNAWAY_OPERATORS = new Set(['$regex']);
/**
 * Keys and array items of one selector. The embedded server matches every document against every term on its
 * one thread, so a selector is kept small; the SDK's largest ($in of 100 values in a $and) is far below.
 */
const MAX_SELECTOR_TERMS = 1000;
// The cozyMetadata fields the host owns: whatever the guest sends for them is replaced.
const HOST_METADATA_KEYS = ['metadataVersion', 'createdAt', 'createdByApp', 'createdByAppVersion', 'updatedAt',
  'updatedByApps', 'sourceAccount'];

type Verb = 'GET' | 'POST' | 'PUT' | 'DELETE';
type JsonObject = Record<string, unknown>;

/** The job's documents limits; an operator's limits file overrides the defaults (runner/limits.ts). */
const limitsSchema = z.object({
  /** Documents written per job. */
  maxDocuments: z.number().int().nonnegative().default(10_000),
  maxDocumentBytes: z.number().int().positive().default(1024 * 1024),
  /** What a `find` returns at most, whatever its `limit`. */
  maxFindLimit: z.number().int().positive().default(1000),
  /** `documents.find` calls per job. */
  maxFinds: z.number().int().nonnegative().default(10_000),
});

const optionsSchema = jobScopeSchema.extend({
  permissions: z.record(z.object({ type: z.string(), verbs: z.array(z.string()).optional() }).passthrough()),
  limits: limitsSchema,
});

const docSchema = z
  .object({
    _id: z.string().min(1).max(1024)
      .refine((id) => !id.startsWith('_'), 'must not start with "_" (design and local documents are not reachable)')
      .refine((id) => !LONE_SURROGATE.test(id), 'must be valid Unicode (it holds a lone surrogate)')
      .optional(),
    _rev: z.string().regex(/^\d+-[0-9a-f]+$/, 'must be a revision CouchDB returned, like "1-9f2b..."').optional(),
    _deleted: z.boolean().optional(),
    cozyMetadata: z.record(z.unknown()).optional(),
  })
  .catchall(z.unknown())
  .superRefine((doc, ctx) => {
    for (const key of Object.keys(doc)) {
      if (key.startsWith('_') && !ALLOWED_SPECIAL_KEYS.has(key)) {
        ctx.addIssue({ code: 'custom', path: [key],
          message: 'top-level keys starting with "_" are reserved by CouchDB; only _id, _rev and _deleted are accepted' });
      }
    }
    if (doc._deleted && doc._rev === undefined) {
      ctx.addIssue({ code: 'custom', path: ['_deleted'], message: 'deleting a document needs its _id and _rev' });
    }
  });

const selectorSchema = z.record(z.unknown()).superRefine((selector, ctx) => {
  const problem = selectorProblem(selector);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const storedDocSchema = z.object({ _rev: z.string(), cozyMetadata: z.unknown() }).passthrough();
const writeResultSchema = z.object({ id: z.string(), rev: z.string() }).passthrough();
const findResultSchema = z.object({ docs: z.array(z.record(z.unknown())) }).passthrough();

export function createDocuments(opts: DocumentsOptions): Documents {
  const parsed = optionsSchema.safeParse(opts);
  if (!parsed.success) throw new DocumentsError('invalid', `createDocuments: bad options: ${formatIssues(parsed.error)}`);
  const { slug, accountId, appVersion, instance, permissions, limits } = parsed.data;
  const now = opts.now ?? (() => new Date());
  const couch = new Couch(parsed.data.couchUrl, parsed.data.requestTimeoutMs);
  const saved: Record<string, number> = {};
  let writes = 0; // counts writes in flight too, so concurrent saves cannot overrun the budget
  let finds = 0;
  let accountReady: Promise<void> = Promise.resolve();
  const sameDatabase = (a: string, b: string) => databaseName(instance, a) === databaseName(instance, b);

  /** Validates the doctype and names the operation for messages. */
  function operationOn(call: 'save' | 'find', doctype: string): string {
    if (isRunnerDatabase(instance, doctype)) {
      throw new DocumentsError('forbidden', `documents.${call}(${doctype.slice(0, MAX_DOCTYPE_LENGTH)}): this is the ` +
        "database of the runner's own doctype (vendor sessions): it is never served to a konnector");
    }
    if (doctype.length > MAX_DOCTYPE_LENGTH || !DOCTYPE_PATTERN.test(doctype)) {
      throw new DocumentsError('invalid', `documents.${call}: ${JSON.stringify(doctype.slice(0, MAX_DOCTYPE_LENGTH))} ` +
        `is not a doctype name: use at most ${MAX_DOCTYPE_LENGTH} lowercase dot-separated words like "io.cozy.bills"`);
    }
    return `documents.${call}(${doctype})`;
  }

  function requireVerb(doctype: string, verb: Verb, operation: string): void {
    // By database: two spellings of one database are one doctype.
    const grants = Object.values(permissions).filter((p) => sameDatabase(p.type, doctype));
    if (grants.length === 0) {
      throw new DocumentsError('forbidden', `${operation}: the konnector may not ${verb} ${doctype}: its manifest must ` +
        `grant it in "permissions", e.g. {"type": "${doctype}", "verbs": ["${verb}"]}`);
    }
    // As in cozy-stack, a missing or empty verb list means every verb.
    const allows = (p: { verbs?: string[] }) =>
      !p.verbs || p.verbs.length === 0 || p.verbs.some((v) => v.toUpperCase() === 'ALL' || v.toUpperCase() === verb);
    if (!grants.some(allows)) {
      throw new DocumentsError('forbidden', `${operation}: the konnector may not ${verb} ${doctype}: its manifest grants ` +
        `${doctype} without the ${verb} verb; the manifest must grant it by adding "${verb}" to that permission's "verbs"`);
    }
  }

  function parseJsonObject<T>(json: string, what: string, operation: string, schema: z.ZodType<T>): T {
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > limits.maxDocumentBytes) {
      throw new DocumentsError('invalid', `${operation}: the ${what} is ${bytes} bytes, more than the limit of ` +
        `${limits.maxDocumentBytes} bytes: split it or store less in it`);
    }
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch (e) {
      throw new DocumentsError('invalid', `${operation}: the ${what} is not valid JSON (${(e as Error).message}): ` +
        'pass one JSON object, e.g. JSON.stringify(value)');
    }
    if (jsonDepth(value) > MAX_JSON_DEPTH) {
      throw new DocumentsError('invalid', `${operation}: the ${what} nests deeper than ${MAX_JSON_DEPTH} levels`);
    }
    const result = schema.safeParse(value);
    if (!result.success) {
      throw new DocumentsError('invalid', `${operation}: the ${what} is not acceptable: ${formatIssues(result.error)}`);
    }
    return result.data;
  }

  /** Checks the shape of what CouchDB answered. */
  function answer<T>(schema: z.ZodType<T>, value: unknown): T {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    throw new DocumentsError('unavailable', `CouchDB at ${couch.origin} gave an unexpected answer: ` +
      formatIssues(result.error));
  }

  function couchError(e: unknown, operation: string): DocumentsError {
    if (e instanceof DocumentsError) return e;
    const failure = asCouchError(e, couch.origin);
    switch (failure.kind) {
      case 'conflict':
        return new DocumentsError('conflict', `${operation}: conflict: ${failure.reason}`);
      case 'forbidden':
        return new DocumentsError('forbidden', `${operation}: CouchDB refused it: ${failure.reason}`);
      case 'not-found':
      case 'refused':
        return new DocumentsError('invalid', `${operation}: CouchDB refused it (HTTP ${failure.status}: ${failure.reason})`);
      default:
        return new DocumentsError('unavailable', `${operation}: ${failure.message}; the job can be retried later`);
    }
  }

  /** Writes a new document (no _id: CouchDB names it) or over the revision it carries. */
  async function write(db: CouchDatabase, doc: JsonObject): Promise<z.infer<typeof writeResultSchema>> {
    // Document ids go in `path`, encoded here: nano leaves a `doc` containing "_design" or "_local" unencoded.
    const req = doc._id === undefined
      ? { method: 'POST', body: doc }
      : { method: 'PUT', path: encodeURIComponent(String(doc._id)), body: doc };
    return answer(writeResultSchema, await db.write(req));
  }

  /** The stored document an update is based on; it must exist at exactly the guest's _rev. */
  async function readBase(db: CouchDatabase, doctype: string, id: string, rev: string, operation: string) {
    let stored: unknown;
    try {
      stored = await db.request({ path: encodeURIComponent(id) });
    } catch (e) {
      if (!isCouchError(e, 'not-found')) throw e;
      throw new DocumentsError('conflict', `${operation}: there is no ${doctype} document ${JSON.stringify(id)} ` +
        '(or it was deleted): save it without _rev to create it');
    }
    const base = answer(storedDocSchema, stored);
    if (base._rev !== rev) {
      throw new DocumentsError('conflict', `${operation}: ${doctype} document ${JSON.stringify(id)} is at revision ` +
        `${base._rev}, not ${rev}: read it again (find) and apply the change to the current revision`);
    }
    return base;
  }

  /** cozyMetadata for a new document (no base) or an update of `base`: the guest's own fields, then the host's. */
  function metadata(base: { cozyMetadata?: unknown } | undefined, fromGuest: JsonObject | undefined): JsonObject {
    const guestOwn = Object.fromEntries(
      Object.entries(fromGuest ?? {}).filter(([key]) => !HOST_METADATA_KEYS.includes(key)));
    return { ...guestOwn, ...hostMetadata({ slug, accountId, appVersion }, base, now().toISOString()) };
  }

  /**
   * io.cozy.files through `documents`: only metadata updates of files this
   * konnector created for this account; the file-system fields stay as stored.
   */
  function ownFileSystemFields(base: JsonObject | undefined, doc: JsonObject, operation: string): JsonObject {
    if (!base || doc._deleted) {
      throw new DocumentsError('forbidden', `${operation}: files and folders are created and removed through the files ` +
        'interface; documents may only update the metadata of an existing file');
    }
    const creator = storedMetadata(base.cozyMetadata);
    if (creator.createdByApp !== slug || creator.sourceAccount !== accountId) {
      throw new DocumentsError('forbidden', `${operation}: ${JSON.stringify(base._id)} was not created by ${slug} for this ` +
        'account: a konnector may only update the metadata of its own files');
    }
    return Object.fromEntries(FILE_SYSTEM_KEYS.filter((key) => key in base).map((key) => [key, base[key]]));
  }

  /** ensureAccount's work; the guest's calls on io.cozy.accounts wait for it. */
  async function makeAccount(): Promise<void> {
    if (!Object.values(permissions).some((p) => sameDatabase(p.type, ACCOUNTS_DOCTYPE))) return;
    const db = couch.database(instance, ACCOUNTS_DOCTYPE);
    const operation = `the job's ${ACCOUNTS_DOCTYPE} document`;
    try {
      await db.request({ path: encodeURIComponent(accountId) });
      return;
    } catch (e) {
      if (!isCouchError(e, 'not-found')) throw couchError(e, operation);
    }
    try {
      await write(db, { _id: accountId, account_type: slug, cozyMetadata: metadata(undefined, undefined) });
    } catch (e) {
      if (!isCouchError(e, 'conflict')) throw couchError(e, operation); // made meanwhile by another job
    }
  }

  return {
    get saved() {
      return { ...saved };
    },

    async save(doctype, docJson) {
      const operation = operationOn('save', doctype);
      const doc = parseJsonObject(docJson, 'document', operation, docSchema);
      const verb: Verb = doc._deleted ? 'DELETE' : doc._rev !== undefined ? 'PUT' : 'POST';
      requireVerb(doctype, verb, operation);
      if (doc._rev !== undefined && doc._id === undefined) {
        throw new DocumentsError('invalid', `${operation}: the document has a _rev but no _id: updating needs both`);
      }
      if (sameDatabase(doctype, ACCOUNTS_DOCTYPE) && doc._id !== accountId) {
        throw new DocumentsError('forbidden', `${operation}: a konnector may only write its own account: the ` +
          `document's _id must be ${JSON.stringify(accountId)}`);
      }
      if (sameDatabase(doctype, ACCOUNTS_DOCTYPE)) await accountReady.catch(() => {});
      if (writes >= limits.maxDocuments) {
        throw new BudgetExceeded('DOCUMENTS', limits.maxDocuments, writes + 1, `${operation}: documents written`);
      }
      writes++;
      const db = couch.database(instance, doctype);
      try {
        const base = doc._rev === undefined ? undefined
          : await readBase(db, doctype, doc._id as string, doc._rev, operation);
        const stored: JsonObject = { ...doc, cozyMetadata: metadata(base, doc.cozyMetadata) };
        if (sameDatabase(doctype, FILES_DOCTYPE)) Object.assign(stored, ownFileSystemFields(base, doc, operation));
        let result;
        try {
          result = await write(db, stored);
        } catch (e) {
          if (!isCouchError(e, 'conflict')) throw e;
          throw new DocumentsError('conflict', doc._rev === undefined
            ? `${operation}: a document with _id ${JSON.stringify(doc._id)} already exists: pass its _rev to update it`
            : `${operation}: ${doctype} document ${JSON.stringify(doc._id)} changed meanwhile: read it again and retry`);
        }
        saved[doctype] = (saved[doctype] ?? 0) + 1;
        return JSON.stringify({ ...stored, _id: result.id, _rev: result.rev });
      } catch (e) {
        writes--;
        throw couchError(e, operation);
      }
    },

    async find(doctype, selectorJson, limit) {
      const operation = operationOn('find', doctype);
      requireVerb(doctype, 'GET', operation);
      if (!Number.isSafeInteger(limit) || limit < 0) {
        throw new DocumentsError('invalid', `${operation}: limit must be a non-negative integer, got ${limit}`);
      }
      if (finds >= limits.maxFinds) {
        throw new BudgetExceeded('DOCUMENTS_FINDS', limits.maxFinds, finds + 1, `${operation}: finds`);
      }
      finds++;
      const guestSelector = parseJsonObject(selectorJson, 'selector', operation, selectorSchema);
      // A konnector sees only its own account, whatever its selector says.
      const ownAccountOnly = sameDatabase(doctype, ACCOUNTS_DOCTYPE);
      if (ownAccountOnly) await accountReady.catch(() => {});
      // The $or keeps our condition apart: pouchdb-server merges the conditions an $and puts on one field, and
      // drops some (an $eq wins over a $gt).
      const selector = ownAccountOnly ? { $and: [{ $or: [{ _id: accountId }] }, guestSelector] } : guestSelector;
      const cappedLimit = Math.min(limit, limits.maxFindLimit);
      if (cappedLimit === 0) return '[]';
      let result: unknown;
      try {
        result = await couch.database(instance, doctype).request({ method: 'POST', path: '_find',
          body: { selector, limit: cappedLimit } });
      } catch (e) {
        if (isCouchError(e, 'not-found')) return '[]'; // nothing saved in this doctype yet
        throw couchError(e, operation);
      }
      const { docs } = answer(findResultSchema, result);
      // Filtered here as well, in case a selector defeats that merging.
      return JSON.stringify(ownAccountOnly ? docs.filter((doc) => doc._id === accountId) : docs);
    },

    ensureAccount() {
      accountReady = makeAccount();
      return accountReady;
    },
  };
}

/**
 * What makes a selector able to keep the database busy: a refused operator anywhere (as a key, at any depth) or
 * too many terms. Walked without recursion.
 */
function selectorProblem(selector: unknown): string | undefined {
  const stack: unknown[] = [selector];
  let terms = 0;
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    for (const [key, child] of Object.entries(value)) {
      if (RUNAWAY_OPERATORS.has(key)) {
        return `the ${key} operator is refused: it can keep the database busy for every job; select with $eq, $in, ` +
          '$gt/$lt... and filter the documents in the konnector';
      }
      if (++terms > MAX_SELECTOR_TERMS) {
        return `the selector has more than ${MAX_SELECTOR_TERMS} terms (keys and array items): split the query`;
      }
      stack.push(child);
    }
  }
  return undefined;
}

/** Nesting depth of a parsed JSON value, computed without recursion (the value is untrusted). */
function jsonDepth(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    max = Math.max(max, depth + 1);
    if (max > MAX_JSON_DEPTH) return max;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return max;
}

// ---------------------------------------------------------------------------------------------------------------
// The capability (host-api/capability.ts)

export default hostCapability({
  interface: 'cozy:konnector/documents@0.1.0',
  functions: {
    save: { blocks: true, params: z.tuple([z.string(), z.string()]), answer: (documents: Documents, doctype, doc) => documents.save(doctype, doc) },
    find: {
      blocks: true,
      params: z.tuple([z.string(), z.string(), z.number().int().min(0).max(0xffffffff)]),
      answer: (documents: Documents, doctype, selector, limit) => documents.find(doctype, selector, limit),
    },
  },
  error: DocumentsError,
  limits: limitsSchema,
  create: (scope, limits) =>
    createDocuments({
      ...couchScope(scope),
      permissions: scope.manifest.permissions,
      limits,
    }),
  usage: (documents, limits) => ({
    documents: { used: Object.values(documents.saved).reduce((sum, n) => sum + n, 0), limit: limits.maxDocuments },
  }),
});
