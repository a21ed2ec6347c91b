/**
 * The host's state in CouchDB: three databases named the cozy-stack way under
 * a host prefix (default "konnector-serve": konnector-serve/io-cozy-accounts,
 * .../io-cozy-triggers, .../io-cozy-jobs). CouchDB's revisions are the only
 * lock: a job is claimed by writing it at the revision that was read, so two
 * hosts can never both win the same claim.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { asCouchError, Couch, isCouchError, type CouchDatabase, type CouchRequest } from '../../host-api/couchdb.ts';
import { ServeError } from './errors.ts';
import type { AccountDoc, JobDoc, TriggerDoc } from './model.ts';

/** How long a health check waits for CouchDB. */
const PING_TIMEOUT_MS = 5_000;

type Doc = { _id: string; _rev?: string };

export interface FindOptions {
  limit?: number;
  skip?: number;
  sort?: Array<Record<string, 'asc' | 'desc'>>;
  fields?: string[];
}

/** Most documents one grouped write sends (see `groupWrites`). */
const MAX_GROUP = 100;

interface PendingWrite<T> {
  doc: T;
  resolve: (saved: T) => void;
  reject: (error: unknown) => void;
}

interface PendingRead<T> {
  id: string;
  resolve: (doc: T) => void;
  reject: (error: unknown) => void;
}

export class Collection<T extends Doc> {
  private readonly db: CouchDatabase;
  /** Writes waiting for the one in flight to land (see `groupWrites`). */
  private readonly pending: PendingWrite<T>[] = [];
  private writing = false;
  /** Reads waiting for the one in flight (see `group`). */
  private readonly pendingReads: PendingRead<T>[] = [];
  private reading = false;

  constructor(
    couch: Couch,
    prefix: string,
    private readonly doctype: string,
    /**
     * Group commit: while a write of this collection is in flight, the writes
     * that come meanwhile wait for it and then go together in one _bulk_docs;
     * reads likewise, in one _all_docs. A lone write or read is sent at once as
     * it was (PUT, GET); each write still succeeds or conflicts on its own
     * revision, and a grouped read is sent after it was asked for, so it sees
     * every write that landed before. For the jobs and the accounts, read and
     * written for every job, in bursts under load.
     */
    private readonly group = false,
  ) {
    this.db = couch.database(prefix, doctype);
  }

  private request(req: CouchRequest): Promise<unknown> {
    return this.db.request(req).catch((e: unknown) => {
      throw this.failure(e);
    });
  }

  private failure(e: unknown): ServeError {
    const { origin } = this.db.couch;
    const failure = asCouchError(e, origin);
    switch (failure.kind) {
      case 'not-found':
        return new ServeError('not-found', `${this.doctype}: not found (${failure.reason})`);
      case 'conflict':
        return new ServeError('conflict', `${this.doctype}: the document changed meanwhile (${failure.reason})`);
      case 'forbidden':
      case 'refused':
        return new ServeError('unavailable', `CouchDB at ${origin} refused a request on ${this.doctype} (HTTP ${failure.status}: ${failure.reason})`);
      default:
        return new ServeError('unavailable', `CouchDB at ${origin} failed for ${this.doctype} (${failure.reason}): check that it runs and that --couchdb is right`);
    }
  }

  /** Creates the database (if no other host did) and the Mango indexes the host queries by. */
  async ensure(indexes: string[][]): Promise<void> {
    await this.db.create().catch((e: unknown) => {
      throw this.failure(e);
    });
    for (const fields of indexes) {
      await this.request({ method: 'POST', path: '_index', body: { index: { fields }, name: fields.join('-'), type: 'json' } });
    }
  }

  async get(id: string): Promise<T> {
    if (!this.group) return this.getOne(id);
    return new Promise<T>((resolve, reject) => {
      this.pendingReads.push({ id, resolve, reject });
      if (!this.reading) void this.flushReads();
    });
  }

  /** Sends the reads waiting, one request for all of them, then those that came meanwhile. */
  private async flushReads(): Promise<void> {
    this.reading = true;
    while (this.pendingReads.length > 0) {
      const group = this.pendingReads.splice(0, MAX_GROUP);
      if (group.length === 1) {
        const [{ id, resolve, reject }] = group as [PendingRead<T>];
        await this.getOne(id).then(resolve, reject);
        continue;
      }
      let rows: Array<{ key: string; doc?: T | null; error?: string }>;
      try {
        rows = ((await this.request({ method: 'POST', path: '_all_docs', qs: { include_docs: true }, body: { keys: group.map((read) => read.id) } })) as
          { rows: typeof rows }).rows;
      } catch (error) {
        for (const read of group) read.reject(error);
        continue;
      }
      // Rows found by their key, whatever order they come in.
      const byKey = new Map(rows.map((row) => [row.key, row]));
      group.forEach((read) => {
        const doc = byKey.get(read.id)?.doc;
        // A missing or deleted document: no doc in its row.
        if (doc) read.resolve(doc);
        else read.reject(new ServeError('not-found', `there is no ${this.doctype} document ${JSON.stringify(read.id)}`));
      });
    }
    this.reading = false;
  }

  private async getOne(id: string): Promise<T> {
    try {
      return (await this.request({ path: encodeURIComponent(id) })) as T;
    } catch (e) {
      if (e instanceof ServeError && e.kind === 'not-found') {
        throw new ServeError('not-found', `there is no ${this.doctype} document ${JSON.stringify(id)}`);
      }
      throw e;
    }
  }

  /** Writes a document: a new one (no _rev) or over the revision it carries. Returns it with its new _rev. */
  async put(doc: T): Promise<T> {
    if (!this.group) return this.putOne(doc);
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ doc, resolve, reject });
      if (!this.writing) void this.flush();
    });
  }

  private async putOne(doc: T): Promise<T> {
    const result = (await this.request({ method: 'PUT', path: encodeURIComponent(doc._id), body: doc })) as { rev: string };
    return { ...doc, _rev: result.rev };
  }

  /** Sends the writes waiting, one request for all of them, then those that came meanwhile. */
  private async flush(): Promise<void> {
    this.writing = true;
    while (this.pending.length > 0) {
      const group = takeGroup(this.pending, (write) => write.doc._id);
      if (group.length === 1) {
        const [{ doc, resolve, reject }] = group as [PendingWrite<T>];
        await this.putOne(doc).then(resolve, reject);
        continue;
      }
      let results: BulkResult[];
      try {
        results = (await this.request({ method: 'POST', path: '_bulk_docs', body: { docs: group.map((write) => write.doc) } })) as BulkResult[];
      } catch (error) {
        for (const write of group) write.reject(error);
        continue;
      }
      // pouchdb-server answers in an order of its own: each result is found by its id (unique in a group).
      const byId = new Map(results.map((result) => [result.id, result]));
      group.forEach((write) => {
        const result = byId.get(write.doc._id);
        if (result?.rev !== undefined && !result.error) write.resolve({ ...write.doc, _rev: result.rev });
        else write.reject(this.bulkFailure(result));
      });
    }
    this.writing = false;
  }

  /** One document's failure in a _bulk_docs answer, as the same write alone would have failed. */
  private bulkFailure(result: BulkResult | undefined): ServeError {
    const reason = result?.reason ?? result?.error ?? 'no result for the document';
    const status = result?.error === 'conflict' ? 409 : result?.error === 'forbidden' ? 403 : result?.error === 'unauthorized' ? 401 : 500;
    return this.failure({ statusCode: status, error: result?.error, reason });
  }

  /**
   * Deletes a document whatever its revision: a writer that changed it meanwhile
   * (a running job saving its account) does not make the delete fail.
   * Already gone counts as deleted.
   */
  async remove(id: string): Promise<void> {
    await retryOnConflict(async () => {
      const current = await this.get(id).catch((e: unknown) => {
        if (e instanceof ServeError && e.kind === 'not-found') return null;
        throw e;
      });
      if (current) await this.request({ method: 'DELETE', path: encodeURIComponent(id), qs: { rev: current._rev } });
    });
  }

  async find(selector: Record<string, unknown>, options: FindOptions = {}): Promise<T[]> {
    const result = (await this.request({
      method: 'POST',
      path: '_find',
      body: { selector, limit: options.limit ?? 1000, skip: options.skip ?? 0, ...(options.sort ? { sort: options.sort } : {}),
        ...(options.fields ? { fields: options.fields } : {}) },
    })) as { docs: T[] };
    return result.docs;
  }

  /**
   * Read-modify-write that survives concurrent writers: `change` gets the
   * current document and returns the new one (or null to leave it as is); on a
   * conflict it runs again on the newer revision.
   */
  async modify(id: string, change: (doc: T) => T | null): Promise<T | null> {
    return retryOnConflict(async () => {
      const current = await this.get(id);
      const next = change(current);
      return next === null ? null : this.put({ ...next, _id: current._id, _rev: current._rev });
    });
  }
}

/**
 * The next group of waiting writes, in order, at most MAX_GROUP and each
 * document once: a second write of a document waits for the next group, so
 * that the two land one after the other as they would alone, and each result
 * is told by its document's id (pouchdb-server does not answer a _bulk_docs in
 * the order of its documents).
 */
function takeGroup<W>(pending: W[], idOf: (write: W) => string): W[] {
  const group: W[] = [];
  const ids = new Set<string>();
  for (let i = 0; i < pending.length && group.length < MAX_GROUP;) {
    const id = idOf(pending[i]!);
    if (ids.has(id)) {
      i++;
      continue;
    }
    ids.add(id);
    group.push(pending.splice(i, 1)[0]!);
  }
  return group;
}

/** One document's line in a _bulk_docs answer. */
interface BulkResult {
  id?: string;
  rev?: string;
  error?: string;
  reason?: string;
}

const CONFLICT_ATTEMPTS = 10;

/**
 * Runs a read-then-write until no other writer slipped in between, pausing a
 * random few milliseconds more each time so that two writers stop colliding.
 */
async function retryOnConflict<R>(readThenWrite: () => Promise<R>): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readThenWrite();
    } catch (e) {
      if (!(e instanceof ServeError && e.kind === 'conflict') || attempt >= CONFLICT_ATTEMPTS) throw e;
      await sleep(Math.random() * 5 * attempt);
    }
  }
}

export interface Store {
  accounts: Collection<AccountDoc>;
  triggers: Collection<TriggerDoc>;
  jobs: Collection<JobDoc>;
  /** Whether CouchDB answers. */
  ping(): Promise<boolean>;
  /** Jobs by state, from a CouchDB view (cheap: the view is maintained incrementally). */
  countJobsByState(): Promise<Record<string, number>>;
}

const JOBS_DESIGN = '_design/serve';
const BY_STATE_VIEW = { map: 'function (doc) { if (doc.state) emit(doc.state, null); }', reduce: '_count' };

export async function openStore(couchUrl: string, prefix: string): Promise<Store> {
  const couch = new Couch(couchUrl);
  const jobsDb = couch.database(prefix, 'io.cozy.jobs');
  const collection = <T extends Doc>(doctype: string, group = false) => new Collection<T>(couch, prefix, doctype, group);
  const store: Store = {
    accounts: collection<AccountDoc>('io.cozy.accounts', true),
    triggers: collection<TriggerDoc>('io.cozy.triggers'),
    jobs: collection<JobDoc>('io.cozy.jobs', true),
    async countJobsByState() {
      const result = (await jobsDb.request({ path: `${JOBS_DESIGN}/_view/by_state`, qs: { group: true } })) as
        { rows: Array<{ key: string; value: number }> };
      return Object.fromEntries(result.rows.map((row) => [row.key, row.value]));
    },
    async ping() {
      try {
        await couch.request({ path: '' }, PING_TIMEOUT_MS);
        return true;
      } catch {
        return false;
      }
    },
  };
  await store.accounts.ensure([['account_type']]);
  await store.triggers.ensure([['type'], ['message.account']]);
  await store.jobs.ensure([['state', 'due_at'], ['message.account'], ['trigger_id']]);
  try {
    await jobsDb.request({ method: 'PUT', path: JOBS_DESIGN, body: { views: { by_state: BY_STATE_VIEW } } });
  } catch (e) {
    if (!isCouchError(e, 'conflict')) throw e; // another host made it
  }
  return store;
}
