/**
 * The one way the host talks to CouchDB: database names the cozy-stack way, requests with a timeout, CouchDB's
 * failures as one typed error, databases made on their first write, and the cozyMetadata the host writes. Used by
 * the documents, files and sessions capabilities and by serve's store; each maps a CouchError to its own kinds.
 */
import nano from 'nano';
import { z } from 'zod';

/** Per-request timeout towards CouchDB, after which the request fails as 'unreachable'. */
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * The name of the database holding `doctype` for `instance`, as it appears in a URL path. This is cozy-stack's
 * rule (pkg/couchdb makeDBName): lowercase(prefix + "/" + doctype) with every "." and ":" replaced by "-", then
 * Go's url.PathEscape. The prefix is the instance domain, so "alice.cozy.example" + "io.cozy.bills" gives
 * "alice-cozy-example%2Fio-cozy-bills"; the database's real name is "alice-cozy-example/io-cozy-bills".
 */
export function databaseName(instance: string, doctype: string): string {
  return goPathEscape(`${instance}/${doctype}`.toLowerCase().replace(/[.:]/g, '-'));
}

/** Go's url.PathEscape: keeps unreserved characters and "$&+:=@", escapes every other byte (including "/"). */
function goPathEscape(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~$&+:=@]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export type CouchErrorKind =
  /** No HTTP answer: CouchDB is down, unreachable or too slow (the timeout). */
  | 'unreachable'
  /** HTTP 401 or 5xx: CouchDB failed; a later retry may work. */
  | 'failed'
  /** HTTP 404: no such document, or no such database yet. */
  | 'not-found'
  /** HTTP 409: the document changed meanwhile (or exists, for a write without its _rev). */
  | 'conflict'
  /** HTTP 403. */
  | 'forbidden'
  /** Any other HTTP error: CouchDB refused the request as made. */
  | 'refused';

/** A request CouchDB did not carry out; the message names the server by its origin, never its credentials. */
export class CouchError extends Error {
  constructor(
    readonly kind: CouchErrorKind,
    /** The HTTP status, when CouchDB answered. */
    readonly status: number | undefined,
    /** CouchDB's reason, or the connection's error. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'CouchError';
  }
}

export function isCouchError(error: unknown, kind: CouchErrorKind): error is CouchError {
  return error instanceof CouchError && error.kind === kind;
}

/** What nano rejects with: an HTTP error carries statusCode (and CouchDB's error/reason); a connection failure does not. */
interface NanoFailure {
  statusCode?: number;
  error?: string;
  reason?: string;
  message?: string;
}

/** Any failure of a CouchDB request as a CouchError; one that is not an HTTP answer counts as 'unreachable'. */
export function asCouchError(error: unknown, origin: string): CouchError {
  if (error instanceof CouchError) return error;
  const failure = (error ?? {}) as NanoFailure;
  const reason = failure.reason ?? failure.error ?? failure.message ?? String(error);
  const status = failure.statusCode;
  if (typeof status !== 'number') {
    return new CouchError('unreachable', undefined, reason, `CouchDB at ${origin} did not answer (${reason})`);
  }
  const kind: CouchErrorKind = status === 401 || status >= 500 ? 'failed' : status === 404 ? 'not-found'
    : status === 409 ? 'conflict' : status === 403 ? 'forbidden' : 'refused';
  return new CouchError(kind, status, reason, `CouchDB at ${origin} failed (HTTP ${status}: ${reason})`);
}

export interface CouchRequest {
  method?: string;
  /** Below the database; document ids in it must be encoded (encodeURIComponent). */
  path?: string;
  body?: unknown;
  qs?: Record<string, unknown>;
}

/** A CouchDB server: the databases the host names on it. */
export class Couch {
  /** For messages: the URL without its credentials. */
  readonly origin: string;
  private readonly server: nano.ServerScope;

  constructor(couchUrl: string, readonly requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS) {
    this.server = nano({ url: couchUrl });
    this.origin = new URL(couchUrl).origin;
  }

  /** The database of `doctype` under `prefix`: a Cozy instance's domain, or the serve host's prefix. */
  database(prefix: string, doctype: string): CouchDatabase {
    return new CouchDatabase(this, decodeURIComponent(databaseName(prefix, doctype)));
  }

  /** One request, on database `db` (its real name: nano encodes it) or on the server; rejects with a CouchError. */
  async request(req: CouchRequest & { db?: string }, timeoutMs = this.requestTimeoutMs): Promise<unknown> {
    try {
      return await this.server.relax({ ...req, signal: AbortSignal.timeout(timeoutMs) } as nano.RequestOptions);
    } catch (error) {
      throw asCouchError(error, this.origin);
    }
  }
}

export class CouchDatabase {
  constructor(
    readonly couch: Couch,
    /** The real name, e.g. "alice-cozy-example/io-cozy-bills". */
    readonly name: string,
  ) {}

  request(req: CouchRequest): Promise<unknown> {
    return this.couch.request({ ...req, db: this.name });
  }

  /** Creates the database; one that exists already (412 file_exists: another job or host made it) is fine. */
  async create(): Promise<void> {
    try {
      await this.request({ method: 'PUT' });
    } catch (error) {
      if ((error as CouchError).status !== 412) throw error;
    }
  }

  /** A write that creates the database on its first write (another job may create it at the same time). */
  async write(req: CouchRequest): Promise<unknown> {
    try {
      return await this.request(req);
    } catch (error) {
      if (!isCouchError(error, 'not-found')) throw error;
    }
    await this.create();
    return this.request(req);
  }
}

/** Who writes a document: cozyMetadata's createdByApp, sourceAccount and updatedByApps. */
export interface Writer {
  slug: string;
  accountId: string;
  appVersion?: string | undefined;
}

// Read leniently from documents already in the database: a malformed field is treated as absent.
const storedMetadataSchema = z.object({
  createdAt: z.string().optional().catch(undefined),
  createdByApp: z.string().optional().catch(undefined),
  createdByAppVersion: z.string().optional().catch(undefined),
  sourceAccount: z.string().optional().catch(undefined),
  updatedByApps: z.array(z.unknown()).optional().catch(undefined),
}).catch({});

/** The cozyMetadata of a stored document, read leniently: who created it, for which account. */
export function storedMetadata(cozyMetadata: unknown): z.infer<typeof storedMetadataSchema> {
  return storedMetadataSchema.parse(cozyMetadata);
}

/**
 * The cozyMetadata fields the host owns, for a write by `writer` at `date`: of a new document (no `base`) or of
 * an update of `base`, whose creation facts it keeps with the updatedByApps entries of other apps.
 */
export function hostMetadata(writer: Writer, base: { cozyMetadata?: unknown } | undefined, date: string): Record<string, unknown> {
  const { slug, accountId, appVersion } = writer;
  const created = base === undefined ? undefined : storedMetadata(base.cozyMetadata);
  const version = appVersion === undefined ? {} : { version: appVersion };
  const others = (created?.updatedByApps ?? []).filter((entry) => (entry as { slug?: unknown } | null)?.slug !== slug);
  const createdByAppVersion = created ? created.createdByAppVersion : appVersion;
  return {
    metadataVersion: 1,
    createdAt: created?.createdAt ?? date,
    createdByApp: created?.createdByApp ?? slug,
    ...(createdByAppVersion === undefined ? {} : { createdByAppVersion }),
    updatedAt: date,
    updatedByApps: [...others, { slug, date, ...version }],
    sourceAccount: created?.sourceAccount ?? accountId,
  };
}
