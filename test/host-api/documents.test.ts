import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocuments, databaseName } from '../../host-api/documents.ts';
import { documentsFor, expectDocumentsError, freshInstance } from './documents-helpers.ts';
import { expectBudgetExceeded } from '../support/budget.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';

let server: TestCouch;

beforeAll(async () => {
  server = await startTestCouch();
});

afterAll(async () => {
  await server?.stop();
});

const BILL = { type: 'phone', vendor: 'Telco', amount: 42.5, currency: 'EUR', date: '2026-01-31T00:00:00.000Z' };

function parse(json: string): Record<string, any> {
  return JSON.parse(json) as Record<string, any>;
}

describe('databaseName', () => {
  it.each([
    ['alice.cozy.example', 'io.cozy.bills', 'alice-cozy-example%2Fio-cozy-bills'],
    ['Alice.Cozy.Example', 'io.cozy.bills', 'alice-cozy-example%2Fio-cozy-bills'],
    ['alice.cozy.localhost:8080', 'io.cozy.files', 'alice-cozy-localhost-8080%2Fio-cozy-files'],
    ['bob.mycozy.cloud', 'com.example.energy_bills', 'bob-mycozy-cloud%2Fcom-example-energy_bills'],
  ])('%s + %s -> %s', (instance, doctype, expected) => {
    expect(databaseName(instance, doctype)).toBe(expected);
  });

  it('is the database the first save creates, reachable under that URL path', async () => {
    const instance = freshInstance();
    const documents = documentsFor(server.url, { instance });
    const dbUrl = `${server.url}/${databaseName(instance, 'io.cozy.bills')}`;
    expect((await fetch(dbUrl)).status).toBe(404);
    await documents.save('io.cozy.bills', JSON.stringify(BILL));
    const info = await fetch(dbUrl);
    expect(info.status).toBe(200);
    expect(((await info.json()) as { doc_count: number }).doc_count).toBe(1);
  });
});

describe('save and find', () => {
  it('round-trips a document and finds it by a Mango selector', async () => {
    const documents = documentsFor(server.url);
    const stored = parse(await documents.save('io.cozy.bills', JSON.stringify(BILL)));
    expect(stored).toMatchObject(BILL);
    expect(stored._id).toEqual(expect.any(String));
    expect(stored._rev).toMatch(/^1-/);
    await documents.save('io.cozy.bills', JSON.stringify({ ...BILL, vendor: 'Other', amount: 1 }));

    const found = JSON.parse(await documents.find('io.cozy.bills', JSON.stringify({ vendor: 'Telco' }), 10));
    expect(found).toEqual([stored]);
    expect(documents.saved).toEqual({ 'io.cozy.bills': 2 });
  });

  // Ids with "/", "?" or "_local" must reach CouchDB encoded as one path segment.
  it.each(['telco-2026-01', 'telco/2026/01', 'bill_local/x', 'a?b=c#d', 'é ü'])('keeps the _id %j the konnector chose',
    async (id) => {
      const documents = documentsFor(server.url);
      const stored = parse(await documents.save('io.cozy.bills', JSON.stringify({ _id: id, ...BILL })));
      expect(stored._id).toBe(id);
      const updated = parse(await documents.save('io.cozy.bills', JSON.stringify({ ...stored, amount: 1 })));
      expect(updated._id).toBe(id);
      const found = JSON.parse(await documents.find('io.cozy.bills', '{}', 10));
      expect(found).toEqual([updated]);
    });

  it('finds nothing in a doctype never written (no database yet)', async () => {
    const documents = documentsFor(server.url);
    expect(await documents.find('io.cozy.bills', '{}', 10)).toBe('[]');
  });

  it('caps the number of results at maxFindLimit, and honours a smaller limit', async () => {
    const documents = documentsFor(server.url, {
      limits: { maxDocuments: 100, maxDocumentBytes: 64 * 1024, maxFindLimit: 3 },
    });
    for (let i = 0; i < 5; i++) await documents.save('io.cozy.bills', JSON.stringify({ ...BILL, amount: i }));
    expect(JSON.parse(await documents.find('io.cozy.bills', '{}', 50))).toHaveLength(3);
    expect(JSON.parse(await documents.find('io.cozy.bills', '{}', 2))).toHaveLength(2);
    expect(await documents.find('io.cozy.bills', '{}', 0)).toBe('[]');
  });

  it('deletes a document with _deleted when the manifest grants DELETE', async () => {
    const documents = documentsFor(server.url, {
      permissions: { bills: { type: 'io.cozy.bills', verbs: ['GET', 'POST', 'DELETE'] } },
    });
    const stored = parse(await documents.save('io.cozy.bills', JSON.stringify(BILL)));
    const deleted = parse(await documents.save('io.cozy.bills',
      JSON.stringify({ _id: stored._id, _rev: stored._rev, _deleted: true })));
    expect(deleted._rev).toMatch(/^2-/);
    expect(await documents.find('io.cozy.bills', '{}', 10)).toBe('[]');
  });
});

describe('cozyMetadata', () => {
  const created = new Date('2026-03-01T10:00:00.000Z');
  const updated = new Date('2026-03-02T11:30:00.000Z');

  it('is added on create, with the slug and account the host knows', async () => {
    const documents = documentsFor(server.url, { now: () => created, appVersion: '1.4.0' });
    const stored = parse(await documents.save('io.cozy.bills', JSON.stringify(BILL)));
    expect(stored.cozyMetadata).toEqual({
      metadataVersion: 1,
      createdAt: created.toISOString(),
      createdByApp: 'examplebills',
      createdByAppVersion: '1.4.0',
      updatedAt: created.toISOString(),
      updatedByApps: [{ slug: 'examplebills', date: created.toISOString(), version: '1.4.0' }],
      sourceAccount: 'account-1',
    });
    const [found] = JSON.parse(await documents.find('io.cozy.bills', '{}', 1));
    expect(found.cozyMetadata).toEqual(stored.cozyMetadata);
  });

  it('keeps createdAt on update and refreshes updatedAt', async () => {
    let clock = created;
    const documents = documentsFor(server.url, { now: () => clock });
    const first = parse(await documents.save('io.cozy.bills', JSON.stringify(BILL)));
    clock = updated;
    // The update is based on the document as the guest read it, metadata included.
    const second = parse(await documents.save('io.cozy.bills', JSON.stringify({ ...first, amount: 50 })));
    expect(second.amount).toBe(50);
    expect(second.cozyMetadata).toEqual({
      metadataVersion: 1,
      createdAt: created.toISOString(),
      createdByApp: 'examplebills',
      updatedAt: updated.toISOString(),
      updatedByApps: [{ slug: 'examplebills', date: updated.toISOString() }],
      sourceAccount: 'account-1',
    });
  });

  it('keeps who created a document when another konnector updates it', async () => {
    const instance = freshInstance();
    const creator = documentsFor(server.url, { instance, now: () => created });
    const updater = documentsFor(server.url, { instance, slug: 'otherkonnector', accountId: 'account-2', now: () => updated });
    const first = parse(await creator.save('io.cozy.bills', JSON.stringify(BILL)));
    const second = parse(await updater.save('io.cozy.bills', JSON.stringify({ ...first, amount: 1 })));
    expect(second.cozyMetadata).toMatchObject({
      createdAt: created.toISOString(),
      createdByApp: 'examplebills',
      sourceAccount: 'account-1',
      updatedAt: updated.toISOString(),
      updatedByApps: [
        { slug: 'examplebills', date: created.toISOString() },
        { slug: 'otherkonnector', date: updated.toISOString() },
      ],
    });
  });

  it('cannot be forged by the guest, which keeps only the fields it owns', async () => {
    const documents = documentsFor(server.url, { now: () => created });
    const forged = {
      createdByApp: 'banks', sourceAccount: 'someone-else', createdAt: '2000-01-01T00:00:00.000Z',
      updatedByApps: [{ slug: 'banks', date: '2000-01-01T00:00:00.000Z' }],
      doctypeVersion: 2, sourceAccountIdentifier: 'alice@example.com',
    };
    const stored = parse(await documents.save('io.cozy.bills', JSON.stringify({ ...BILL, cozyMetadata: forged })));
    expect(stored.cozyMetadata).toEqual({
      doctypeVersion: 2,
      sourceAccountIdentifier: 'alice@example.com',
      metadataVersion: 1,
      createdAt: created.toISOString(),
      createdByApp: 'examplebills',
      updatedAt: created.toISOString(),
      updatedByApps: [{ slug: 'examplebills', date: created.toISOString() }],
      sourceAccount: 'account-1',
    });
  });
});

describe('permissions', () => {
  it('refuses a doctype the manifest does not grant, next to a granted twin that works', async () => {
    const documents = documentsFor(server.url);
    await expectDocumentsError(documents.save('io.cozy.contacts', '{"fullname":"Bob"}'), 'forbidden',
      /io\.cozy\.contacts/, /POST/, /manifest must grant/);
    await expectDocumentsError(documents.find('io.cozy.contacts', '{}', 10), 'forbidden', /io\.cozy\.contacts/, /GET/);
    await documents.save('io.cozy.bills', JSON.stringify(BILL));
    expect(documents.saved).toEqual({ 'io.cozy.bills': 1 });
  });

  it('checks the verbs: GET for find, POST to create, PUT to update, DELETE to delete', async () => {
    const readOnly = documentsFor(server.url, { permissions: { bills: { type: 'io.cozy.bills', verbs: ['GET'] } } });
    await expectDocumentsError(readOnly.save('io.cozy.bills', JSON.stringify(BILL)), 'forbidden',
      /io\.cozy\.bills/, /POST/, /manifest must grant/);
    expect(await readOnly.find('io.cozy.bills', '{}', 10)).toBe('[]');

    const createOnly = documentsFor(server.url, { permissions: { bills: { type: 'io.cozy.bills', verbs: ['POST'] } } });
    const stored = parse(await createOnly.save('io.cozy.bills', JSON.stringify(BILL)));
    await expectDocumentsError(createOnly.save('io.cozy.bills', JSON.stringify({ ...stored, amount: 1 })), 'forbidden', /PUT/);
    await expectDocumentsError(createOnly.save('io.cozy.bills',
      JSON.stringify({ _id: stored._id, _rev: stored._rev, _deleted: true })), 'forbidden', /DELETE/);
    await expectDocumentsError(createOnly.find('io.cozy.bills', '{}', 10), 'forbidden', /GET/);

    const all = documentsFor(server.url, { permissions: { bills: { type: 'io.cozy.bills', verbs: ['ALL'] } } });
    const mine = parse(await all.save('io.cozy.bills', JSON.stringify(BILL)));
    await all.save('io.cozy.bills', JSON.stringify({ ...mine, amount: 2 }));
    expect(JSON.parse(await all.find('io.cozy.bills', '{}', 10))).toHaveLength(1);
  });

  it("never serves the runner's own session doctype, even when the manifest asks for it", async () => {
    const documents = documentsFor(server.url, {
      permissions: { sessions: { type: 'io.cozy.konnector-runner.sessions' }, bills: { type: 'io.cozy.bills' } },
    });
    await expectDocumentsError(documents.find('io.cozy.konnector-runner.sessions', '{}', 10), 'forbidden', /never served to a konnector/);
    await expectDocumentsError(documents.save('io.cozy.konnector-runner.sessions', '{"cookies":"x"}'), 'forbidden');
    expect(JSON.parse(await documents.find('io.cozy.bills', '{}', 10))).toEqual([]);
  });

  it("refuses io.cozy.konnector.runner.sessions, another spelling of the runner's session database; a lookalike of another database works",
    async () => {
      const doctype = 'io.cozy.konnector.runner.sessions';
      const documents = documentsFor(server.url, {
        permissions: { sessions: { type: doctype }, lookalike: { type: 'io.cozy.konnector.runner_sessions' } },
      });
      expect(databaseName('a.example', doctype)).toBe(databaseName('a.example', 'io.cozy.konnector-runner.sessions'));
      await expectDocumentsError(documents.find(doctype, '{}', 10), 'forbidden', /runner's own doctype/);
      await expectDocumentsError(documents.save(doctype, '{"cookies":"x"}'), 'forbidden', /runner's own doctype/);
      await documents.save('io.cozy.konnector.runner_sessions', '{"note":"mine"}');
      expect(JSON.parse(await documents.find('io.cozy.konnector.runner_sessions', '{}', 10))).toHaveLength(1);
    },
  );

  it('compares grants by database: a grant spelled in capitals grants the database of its lower-case doctype', async () => {
    const documents = documentsFor(server.url, { permissions: { bills: { type: 'IO.COZY.BILLS', verbs: ['GET'] } } });
    expect(JSON.parse(await documents.find('io.cozy.bills', '{}', 10))).toEqual([]);
    await expectDocumentsError(documents.save('io.cozy.bills', '{}'), 'forbidden', /without the POST verb/);
  });

  it('lets a konnector write only its own io.cozy.accounts document', async () => {
    const documents = documentsFor(server.url, {
      permissions: { accounts: { type: 'io.cozy.accounts' }, bills: { type: 'io.cozy.bills' } },
    });
    await expectDocumentsError(documents.save('io.cozy.accounts', '{"_id":"account-2","state":"x"}'), 'forbidden',
      /own account/, /account-1/);
    await expectDocumentsError(documents.save('io.cozy.accounts', '{"state":"x"}'), 'forbidden', /own account/);
    const own = parse(await documents.save('io.cozy.accounts', '{"_id":"account-1","state":"LOGIN_SUCCESS"}'));
    expect(own).toMatchObject({ _id: 'account-1', state: 'LOGIN_SUCCESS' });
  });

  it('lets a konnector find only its own io.cozy.accounts document', async () => {
    const instance = freshInstance();
    const permissions = { accounts: { type: 'io.cozy.accounts' } };
    const other = documentsFor(server.url, { instance, permissions, accountId: 'account-2' });
    const mine = documentsFor(server.url, { instance, permissions, accountId: 'account-1' });
    await other.save('io.cozy.accounts', '{"_id":"account-2","login":"bob"}');
    await mine.save('io.cozy.accounts', '{"_id":"account-1","login":"alice"}');

    for (const selector of [{}, { login: 'alice' }, { $or: [{ login: 'alice' }, { login: 'bob' }] },
      { _id: { $gte: 'account-1' } }]) {
      const found = JSON.parse(await mine.find('io.cozy.accounts', JSON.stringify(selector), 10));
      expect(found.map((d: { _id: string }) => d._id)).toEqual(['account-1']);
    }
    for (const selector of [{ _id: 'account-2' }, { $and: [{ _id: 'account-2' }] }, { login: 'bob' },
      { _id: { $gt: 'account-1' } }, { $or: [{ _id: 'account-2' }, { login: 'bob' }] }]) {
      expect(await mine.find('io.cozy.accounts', JSON.stringify(selector), 10)).toBe('[]');
    }
    // The benign twin: the other konnector finds its own account the same way.
    expect(JSON.parse(await other.find('io.cozy.accounts', '{"login":"bob"}', 10))).toMatchObject([{ _id: 'account-2' }]);
  });
});

describe('untrusted input', () => {
  it.each<[string, string, RegExp[]]>([
    ['invalid JSON', '{"amount": 1', [/not valid JSON/]],
    ['an array', '[1, 2]', [/expected object, received array/i]],
    ['a string', '"bill"', [/expected object, received string/i]],
    ['null', 'null', [/expected object, received null/i]],
    ['a reserved key', '{"_attachments": {}}', [/_attachments/, /reserved/]],
    ['a design document id', '{"_id": "_design/evil"}', [/_id/, /must not start with "_"/]],
    ['an empty id', '{"_id": ""}', [/_id/]],
    ['a _rev CouchDB never returned', '{"_id": "a", "_rev": "abc"}', [/_rev/]],
    ['_deleted without _rev', '{"_id": "a", "_deleted": true}', [/_deleted/]],
    ['a cozyMetadata that is not an object', '{"cozyMetadata": "x"}', [/cozyMetadata/]],
    ['JSON nested too deep', `${'{"a":'.repeat(200)}1${'}'.repeat(200)}`, [/deeper than/]],
  ])('refuses %s as a document', async (_what, json, patterns) => {
    const documents = documentsFor(server.url);
    await expectDocumentsError(documents.save('io.cozy.bills', json), 'invalid', /documents\.save\(io\.cozy\.bills\)/,
      ...patterns);
    expect(documents.saved).toEqual({});
  });

  it('refuses a document larger than maxDocumentBytes, next to one just at the limit', async () => {
    const documents = documentsFor(server.url, {
      limits: { maxDocuments: 10, maxDocumentBytes: 1000, maxFindLimit: 10 },
    });
    const atLimit = JSON.stringify({ note: 'x'.repeat(1000 - '{"note":""}'.length) });
    expect(Buffer.byteLength(atLimit)).toBe(1000);
    await documents.save('io.cozy.bills', atLimit);
    // Bytes, not characters: "é" is two bytes in UTF-8.
    const tooLarge = JSON.stringify({ note: 'é'.repeat(500) });
    await expectDocumentsError(documents.save('io.cozy.bills', tooLarge), 'invalid', /1011 bytes/, /limit of 1000 bytes/);
  });

  it.each([
    ['not JSON', '{vendor: "x"}', /not valid JSON/],
    ['an array', '[{"vendor": "x"}]', /expected object/i],
    ['a number', '3', /expected object/i],
  ])('refuses a selector that is %s', async (_what, json, pattern) => {
    const documents = documentsFor(server.url);
    await expectDocumentsError(documents.find('io.cozy.bills', json, 10), 'invalid', /selector/, pattern);
  });

  it.each([
    ['at the top', { vendor: { $regex: '^(a+)+$' } }],
    ['under $not', { vendor: { $not: { $regex: 'x' } } }],
    ['inside $or', { $or: [{ amount: 1 }, { vendor: { $regex: 'x' } }] }],
    ['inside $elemMatch', { tags: { $elemMatch: { $regex: 'x' } } }],
  ])('refuses $regex %s (it can stall the database); a range selector on the same data works', async (_where, selector) => {
    const documents = documentsFor(server.url);
    await documents.save('io.cozy.bills', JSON.stringify({ ...BILL, vendor: `${'a'.repeat(40)}!` }));
    await expectDocumentsError(documents.find('io.cozy.bills', JSON.stringify(selector), 10), 'invalid', /\$regex operator is refused/);
    expect(JSON.parse(await documents.find('io.cozy.bills', '{"vendor": {"$gt": "a"}}', 10))).toHaveLength(1);
  });

  it('refuses a selector of more than 1000 terms; $in of 100 values, as the SDK sends, works', async () => {
    const documents = documentsFor(server.url);
    await documents.save('io.cozy.bills', JSON.stringify({ ...BILL, vendorRef: 'r7' }));
    const values = (n: number) => Array.from({ length: n }, (_, i) => `r${i}`);
    await expectDocumentsError(documents.find('io.cozy.bills', JSON.stringify({ vendorRef: { $in: values(1000) } }), 10), 'invalid',
      /more than 1000 terms/);
    expect(JSON.parse(await documents.find('io.cozy.bills', JSON.stringify({ vendorRef: { $in: values(100) } }), 10))).toHaveLength(1);
  });

  it('refuses an _id CouchDB cannot store (a lone surrogate) as invalid, not unavailable; a valid one is stored', async () => {
    const documents = documentsFor(server.url);
    await expectDocumentsError(documents.save('io.cozy.bills', '{"_id": "bill-\\ud800"}'), 'invalid', /_id/, /lone surrogate/);
    expect(parse(await documents.save('io.cozy.bills', '{"_id": "bill-\\ud83d\\ude00"}'))._id).toBe('bill-\u{1F600}');
  });

  it('passes CouchDB\'s own refusal of a bad selector back as invalid', async () => {
    const documents = documentsFor(server.url);
    await documents.save('io.cozy.bills', JSON.stringify(BILL));
    await expectDocumentsError(documents.find('io.cozy.bills', '{"vendor": {"$nope": 1}}', 10), 'invalid', /\$nope/);
  });

  it.each(['IO.COZY.BILLS', 'bills', 'io.cozy.bills/../x', 'io..cozy', '', 'io.cozy.bills.'])(
    'refuses the doctype name %j',
    async (doctype) => {
      const documents = documentsFor(server.url, { permissions: { any: { type: doctype } } });
      await expectDocumentsError(documents.save(doctype, '{}'), 'invalid', /not a doctype name/);
      await expectDocumentsError(documents.find(doctype, '{}', 1), 'invalid', /not a doctype name/);
    },
  );

  it('refuses bad options with a message naming the option', () => {
    expect(() => createDocuments({
      couchUrl: 'http://127.0.0.1:1', instance: 'alice/../bob', slug: 'k', accountId: 'a', permissions: {},
      limits: { maxDocuments: 1, maxDocumentBytes: 1, maxFindLimit: 1 },
    })).toThrow(/instance: a Cozy instance domain/);
  });
});

describe('conflicts and budget', () => {
  it('ends the job past maxFinds finds', async () => {
    const documents = documentsFor(server.url, { limits: { maxDocuments: 3, maxDocumentBytes: 1024, maxFindLimit: 10, maxFinds: 2 } });
    for (let i = 0; i < 2; i++) expect(JSON.parse(await documents.find('io.cozy.bills', '{}', 10))).toEqual([]);
    await expectBudgetExceeded(documents.find('io.cozy.bills', '{}', 10), 'DOCUMENTS_FINDS', 2);
  });

  it('reports creating an existing _id and updating from an outdated _rev as conflicts', async () => {
    const documents = documentsFor(server.url);
    const first = parse(await documents.save('io.cozy.bills', JSON.stringify({ _id: 'bill-1', ...BILL })));
    await expectDocumentsError(documents.save('io.cozy.bills', JSON.stringify({ _id: 'bill-1', ...BILL })), 'conflict',
      /already exists/, /_rev/);
    const second = parse(await documents.save('io.cozy.bills', JSON.stringify({ ...first, amount: 2 })));
    await expectDocumentsError(documents.save('io.cozy.bills', JSON.stringify({ ...first, amount: 3 })), 'conflict',
      new RegExp(second._rev));
    await expectDocumentsError(documents.save('io.cozy.bills', JSON.stringify({ ...first, _id: 'missing' })), 'conflict',
      /no io\.cozy\.bills document "missing"/);
    const [current] = JSON.parse(await documents.find('io.cozy.bills', '{}', 10));
    expect(current.amount).toBe(2);
    expect(documents.saved).toEqual({ 'io.cozy.bills': 2 });
  });

  it('stops writes past maxDocuments, not counting refused ones', async () => {
    const documents = documentsFor(server.url, {
      permissions: { bills: { type: 'io.cozy.bills' }, identities: { type: 'io.cozy.identities' } },
      limits: { maxDocuments: 3, maxDocumentBytes: 64 * 1024, maxFindLimit: 10 },
    });
    await documents.save('io.cozy.bills', JSON.stringify({ _id: 'b1', ...BILL }));
    await expectDocumentsError(documents.save('io.cozy.bills', JSON.stringify({ _id: 'b1', ...BILL })), 'conflict');
    await expectDocumentsError(documents.save('io.cozy.bills', 'not json'), 'invalid');
    await documents.save('io.cozy.bills', JSON.stringify(BILL));
    await documents.save('io.cozy.identities', '{"contact":{"fullname":"Jane"}}');
    await expectBudgetExceeded(documents.save('io.cozy.bills', JSON.stringify(BILL)), 'DOCUMENTS', 3);
    expect(documents.saved).toEqual({ 'io.cozy.bills': 2, 'io.cozy.identities': 1 });
    expect(JSON.parse(await documents.find('io.cozy.bills', '{}', 10))).toHaveLength(2);
  });
});
