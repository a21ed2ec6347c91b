/**
 * The store's grouped reads and writes (runner/serve/store.ts): writes and
 * reads that come while one is in flight go together in one _bulk_docs or
 * _all_docs, each with the outcome it would have had alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Couch } from '../../host-api/couchdb.ts';
import { Collection } from '../../runner/serve/store.ts';
import { ServeError } from '../../runner/serve/errors.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';

type Doc = { _id: string; _rev?: string; n: number };

let couch: TestCouch;
/** CouchDB requests by method and path's last segment, counted on fetch. */
const requests: string[] = [];
const fetched = globalThis.fetch;

beforeAll(async () => {
  couch = await startTestCouch();
  globalThis.fetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    requests.push(`${(init?.method ?? 'GET').toUpperCase()} ${url.pathname.split('/').pop()}`);
    return fetched(input, init);
  }) as typeof fetch;
}, 60_000);

afterAll(async () => {
  globalThis.fetch = fetched;
  await couch?.stop();
});

const kind = (e: unknown) => (e instanceof ServeError ? e.kind : String(e));

describe('a collection that groups its reads and writes', () => {
  it('writes concurrent documents in one _bulk_docs after the first, each saved or in conflict on its own revision, a document once per group', async () => {
    const docs = new Collection<Doc>(new Couch(couch.url), 'store-test', 'io.cozy.grouped', true);
    await docs.ensure([]);
    const a = await docs.put({ _id: 'a', n: 1 });
    requests.length = 0;
    const results = await Promise.allSettled([
      docs.put({ _id: 'b', n: 1 }), // sent at once, alone
      docs.put({ ...a, n: 2 }), // waits for it, goes with c
      docs.put({ ...a, n: 3 }), // the same document: after the group, at the same revision: a conflict
      docs.put({ _id: 'c', n: 1 }),
    ]);
    expect(requests).toEqual(['PUT b', 'POST _bulk_docs', 'PUT a']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(kind((results[2] as PromiseRejectedResult).reason)).toBe('conflict');
    const saved = (results[1] as PromiseFulfilledResult<Doc>).value;
    expect(saved._rev).toMatch(/^2-/);
    expect(await docs.get('a')).toEqual(saved);
    // A write at the revision a grouped write returned lands.
    expect((await docs.put({ ...saved, n: 4 }))._rev).toMatch(/^3-/);
  });

  it('reads concurrent documents in one _all_docs after the first; a missing or deleted one is not found', async () => {
    const docs = new Collection<Doc>(new Couch(couch.url), 'store-test', 'io.cozy.grouped-reads', true);
    await docs.ensure([]);
    await docs.put({ _id: 'x', n: 1 });
    await docs.put({ _id: 'y', n: 2 });
    await docs.put({ _id: 'gone', n: 3 });
    await docs.remove('gone');
    requests.length = 0;
    const results = await Promise.allSettled([docs.get('x'), docs.get('y'), docs.get('missing'), docs.get('gone'), docs.get('x')]);
    expect(requests).toEqual(['GET x', 'POST _all_docs']);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.n : kind(r.reason)))).toEqual([1, 2, 'not-found', 'not-found', 1]);
    expect((results[1] as PromiseFulfilledResult<Doc>).value).toMatchObject({ _id: 'y', _rev: expect.stringMatching(/^1-/) });
  });

  it('fails every write of a group when CouchDB does not answer, as each alone would', async () => {
    const docs = new Collection<Doc>(new Couch('http://127.0.0.1:9', 2000), 'store-test', 'io.cozy.unreachable', true);
    const results = await Promise.allSettled([docs.put({ _id: 'p', n: 1 }), docs.put({ _id: 'q', n: 1 }), docs.put({ _id: 'r', n: 1 })]);
    expect(results.map((r) => r.status === 'rejected' && kind(r.reason))).toEqual(['unavailable', 'unavailable', 'unavailable']);
  });
});
