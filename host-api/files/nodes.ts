/**
 * The io.cozy.files documents of one Cozy, one per folder and file, in the instance's database (the one
 * `documents` names). Ids are deterministic (a hash of the Cozy path), so that two jobs creating the same folder or
 * file at the same time meet on one document (CouchDB answers the second with a conflict) instead of making twins.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { asCouchError, hostMetadata, isCouchError, type Couch, type CouchDatabase, type Writer } from '../couchdb.ts';
import { formatIssues } from '../schema-issues.ts';
import { FilesError } from './errors.ts';

export const FILES_DOCTYPE = 'io.cozy.files';
export const ROOT_DIR_ID = 'io.cozy.files.root-dir';

// Read leniently: a document another writer changed keeps working as long as these hold.
const storedNodeSchema = z.object({
  _id: z.string(),
  _rev: z.string(),
  type: z.enum(['file', 'directory']),
  trashed: z.boolean().optional(),
  created_at: z.string().optional(),
  cozyMetadata: z.record(z.unknown()).optional(),
}).passthrough();
export type StoredNode = z.infer<typeof storedNodeSchema>;

const writeResultSchema = z.object({ id: z.string(), rev: z.string() }).passthrough();

/** The document id of the folder or file at a Cozy path: 32 hex digits, like cozy-stack's ids. */
export function nodeId(cozyPath: string): string {
  return createHash('sha256').update(`${FILES_DOCTYPE}\0${cozyPath}`).digest('hex').slice(0, 32);
}

export class FileNodes {
  private readonly db: CouchDatabase;

  constructor(couch: Couch, instance: string, private readonly writer: Writer) {
    this.db = couch.database(instance, FILES_DOCTYPE);
  }

  /** The document `id`, or undefined when there is none (or no database yet). */
  async read(id: string, operation: string): Promise<StoredNode | undefined> {
    let doc: unknown;
    try {
      doc = await this.db.request({ path: encodeURIComponent(id) });
    } catch (e) {
      if (isCouchError(e, 'not-found')) return undefined;
      throw this.failure(e, operation);
    }
    const node = storedNodeSchema.safeParse(doc);
    if (!node.success) {
      throw new FilesError('unavailable', `${operation}: the io.cozy.files document ${id} is not a file or folder ` +
        `document (${formatIssues(node.error)})`);
    }
    return node.data;
  }

  /**
   * Writes a document and returns its new revision, or undefined on a conflict (another job wrote it first).
   * The database is created on its first write.
   */
  async write(doc: Record<string, unknown>, operation: string): Promise<string | undefined> {
    try {
      const result = await this.db.write({ method: 'PUT', path: encodeURIComponent(String(doc._id)), body: doc });
      return writeResultSchema.parse(result).rev;
    } catch (e) {
      if (isCouchError(e, 'conflict')) return undefined;
      throw this.failure(e, operation);
    }
  }

  /**
   * cozyMetadata of a new document (no base) or of an update of `base`: what it held, the host's fields, and
   * the upload's when the content is written.
   */
  metadata(base: StoredNode | undefined, date: string, upload: boolean): Record<string, unknown> {
    const { slug, appVersion } = this.writer;
    const version = appVersion === undefined ? {} : { version: appVersion };
    return {
      ...base?.cozyMetadata,
      ...hostMetadata(this.writer, base, date),
      doctypeVersion: '1',
      ...(upload ? { uploadedAt: date, uploadedBy: { slug, ...version } } : {}),
    };
  }

  /** Whether this konnector created `node` (and, when `forAccount`, for this job's account). */
  createdHere(node: StoredNode, forAccount: boolean): boolean {
    const creator = node.cozyMetadata ?? {};
    return creator.createdByApp === this.writer.slug && (!forAccount || creator.sourceAccount === this.writer.accountId);
  }

  private failure(e: unknown, operation: string): FilesError {
    if (e instanceof FilesError) return e;
    return new FilesError('unavailable', `${operation}: ${asCouchError(e, this.db.couch.origin).message}; ` +
      'the job can be retried later');
  }
}
