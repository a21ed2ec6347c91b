import nano from 'nano';
import { databaseName, SESSIONS_DOCTYPE } from './job-scope.ts';

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
  const db = nano(opts.couchUrl).use<SessionDoc>(decodeURIComponent(databaseName(opts.instance, SESSIONS_DOCTYPE)));
  const id = `${opts.slug}:${opts.accountId}`;
  const current = () => db.get(id).catch((error: { statusCode?: number }) => {
    if (error.statusCode === 404) return undefined;
    throw error;
  });
  return {
    async load() {
      return (await current())?.cookies;
    },
    async save(cookies) {
      const existing = await current();
      const doc: SessionDoc = { _id: id, cookies, updatedAt: new Date().toISOString(), ...(existing ? { _rev: existing._rev } : {}) };
      try {
        await db.insert(doc);
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode !== 404) throw error;
        await nano(opts.couchUrl).db.create(decodeURIComponent(databaseName(opts.instance, SESSIONS_DOCTYPE))).catch(() => undefined);
        await db.insert(doc);
      }
    },
    async drop() {
      const existing = await current();
      if (existing?._rev) await db.destroy(id, existing._rev);
    },
  };
}
