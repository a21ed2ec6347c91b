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

export class Collection<T extends Doc> {
  private readonly db: CouchDatabase;

  constructor(couch: Couch, prefix: string, private readonly doctype: string) {
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
    const result = (await this.request({ method: 'PUT', path: encodeURIComponent(doc._id), body: doc })) as { rev: string };
    return { ...doc, _rev: result.rev };
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
  const collection = <T extends Doc>(doctype: string) => new Collection<T>(couch, prefix, doctype);
  const store: Store = {
    accounts: collection<AccountDoc>('io.cozy.accounts'),
    triggers: collection<TriggerDoc>('io.cozy.triggers'),
    jobs: collection<JobDoc>('io.cozy.jobs'),
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
