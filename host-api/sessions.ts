import { Couch, isCouchError } from './couchdb.ts';
import { SESSIONS_DOCTYPE } from './job-scope.ts';

/**
 * Vendor sessions kept between jobs of ONE account: the cookie jar a job
 * ends with is where the account's next job starts (what CookieKonnector's
 * saveSession/initSession do in cozy-konnector-libs). They live in a doctype
 * of the runner's own (SESSIONS_DOCTYPE), which `documents` never serves to a
 * konnector.
 */
interface SessionDoc {
  _id: string;
  _rev?: string;
  cookies: string;
  updatedAt: string;
}

export interface SessionStore {
  load(): Promise<string | undefined>;
  save(cookies: string): Promise<void>;
  /** After LOGIN_FAILED or USER_ACTION_NEEDED: the session is not worth resuming. */
  drop(): Promise<void>;
}

export function openSessions(opts: { couchUrl: string; instance: string; slug: string; accountId: string }): SessionStore {
  const db = new Couch(opts.couchUrl).database(opts.instance, SESSIONS_DOCTYPE);
  const id = `${opts.slug}:${opts.accountId}`;
  const path = encodeURIComponent(id);
  const current = () => (db.request({ path }) as Promise<SessionDoc>).catch((error: unknown) => {
    if (isCouchError(error, 'not-found')) return undefined;
    throw error;
  });
  return {
    async load() {
      return (await current())?.cookies;
    },
    async save(cookies) {
      const existing = await current();
      const doc: SessionDoc = { _id: id, cookies, updatedAt: new Date().toISOString(), ...(existing ? { _rev: existing._rev } : {}) };
      await db.write({ method: 'PUT', path, body: doc });
    },
    async drop() {
      const existing = await current();
      if (existing?._rev) await db.request({ method: 'DELETE', path, qs: { rev: existing._rev } });
    },
  };
}
