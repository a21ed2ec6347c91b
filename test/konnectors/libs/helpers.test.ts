/**
 * updateOrCreate, saveIdentity, utils, cozyClient's qualifications and CookieKonnector of the guest SDK, run as
 * guest code against the runner's documents host, a CouchDB-API server and a vendor on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCouch, storedDocs, type TestCouch } from '../../support/couch.ts';
import { startTestServer } from '../../support/http-server.ts';
import { createTestDocuments, createTestHost, loadGuest } from '../guest-harness.ts';

const GUEST = `
import { updateOrCreate, saveIdentity, utils, cozyClient } from 'cozy-konnector-libs';
export { updateOrCreate, saveIdentity, utils };
export const { Qualification } = cozyClient.new.models.document;
export const day = (n) => new Date(Date.UTC(2024, 0, n));
`;

const ACCOUNT = 'account-1';
const PERMISSIONS = {
  things: { type: 'io.cozy.example.things' },
  identities: { type: 'io.cozy.identities' },
  accounts: { type: 'io.cozy.accounts' },
};

let couch: TestCouch;
let counter = 0;

beforeAll(async () => {
  couch = await startTestCouch();
});

afterAll(async () => {
  await couch?.stop();
});

interface Exports {
  updateOrCreate(entries: unknown[], doctype: string, matching: string[], options?: unknown): Promise<any[]>;
  saveIdentity(identity: unknown, accountIdentifier: string | undefined, options?: unknown): Promise<void>;
  utils: { formatDate(date: unknown): string; queryAll(doctype: string, selector?: unknown): Promise<any[]>; fetchAll(doctype: string): Promise<any[]> };
  Qualification: { getByLabel(label: string): Record<string, unknown> & { toQualification(): Record<string, unknown> } };
  day(n: number): Date;
}

function freshInstance(): string {
  counter += 1;
  return `helpers${counter}.cozy.test`;
}

async function guest(instance: string, maxFindLimit?: number) {
  const { host: documentsHost, documents } = createTestDocuments({
    couchUrl: couch.url, instance, accountId: ACCOUNT, permissions: PERMISSIONS, maxFindLimit,
  });
  const host = createTestHost({ documents: documentsHost });
  const loaded = await loadGuest({ code: GUEST }, host);
  return { ...(loaded.exports as unknown as Exports), documents, logs: host.logs };
}

const stored = (instance: string, doctype: string) => storedDocs(couch.url, instance, doctype);

describe('updateOrCreate', () => {
  it('creates what matches nothing, and merges into what matches, keeping ids', async () => {
    const instance = freshInstance();
    const { updateOrCreate } = await guest(instance);
    const doctype = 'io.cozy.example.things';
    const created = await updateOrCreate(
      [{ ref: 'A', meta: { kind: 'x' }, weight: 1 }, { ref: 'B', meta: { kind: 'x' }, weight: 2 }],
      doctype, ['ref', 'meta.kind'], { sourceAccountIdentifier: 'jane' },
    );
    const updated = await updateOrCreate(
      [{ ref: 'A', meta: { kind: 'x' }, weight: 10 }, { ref: 'A', meta: { kind: 'y' }, weight: 3 }],
      doctype, ['ref', 'meta.kind'],
    );
    expect(updated[0]._id).toBe(created[0]._id);
    expect(updated[0]._rev).toMatch(/^2-/);
    expect(updated[1]._id).not.toBe(created[0]._id);
    const docs = await stored(instance, doctype);
    expect(docs.map((d) => [d.ref, d.meta.kind, d.weight]).sort()).toEqual([['A', 'x', 10], ['A', 'y', 3], ['B', 'x', 2]]);
    expect(docs.find((d) => d.weight === 10)!.cozyMetadata).toMatchObject({ sourceAccountIdentifier: 'jane', sourceAccount: ACCOUNT });
  });

  it('refuses to run without matching attributes', async () => {
    const { updateOrCreate } = await guest(freshInstance());
    await expect(updateOrCreate([{ ref: 'A' }], 'io.cozy.example.things', [])).rejects.toMatchObject({
      name: 'InvalidArgumentError', message: expect.stringMatching(/give the attributes that identify a document/),
    });
  });
});

describe('saveIdentity', () => {
  it('saves one identity per account identifier, formatting phones and addresses, merged on later runs', async () => {
    const instance = freshInstance();
    const { saveIdentity } = await guest(instance);
    await saveIdentity({ contact: { name: { givenName: 'Jane' }, phone: '+33 6 00 00 00 00', address: [{ street: '1 rue A', postcode: '75001', city: 'Paris' }] } }, 'jane@example.org');
    await saveIdentity({ contact: { name: { givenName: 'Jane' }, email: [{ address: 'jane@example.org' }] }, housing: [{ type: 'flat' }] }, 'jane@example.org');
    const [identity, ...others] = await stored(instance, 'io.cozy.identities');
    expect(others).toEqual([]);
    expect(identity).toMatchObject({
      identifier: 'jane@example.org',
      contact: { name: { givenName: 'Jane' }, email: [{ address: 'jane@example.org' }] },
      housing: [{ type: 'flat' }],
      cozyMetadata: { sourceAccount: ACCOUNT, sourceAccountIdentifier: 'jane@example.org', createdByApp: 'example-bills' },
    });
    expect(identity!._rev).toMatch(/^2-/);
  });

  it('replaces the stored identity with merge: false, and keeps the phone and address formats', async () => {
    const instance = freshInstance();
    const { saveIdentity } = await guest(instance);
    await saveIdentity({ contact: { phone: ['0600000000'], address: '1 rue A 75001 Paris' }, housing: [{ type: 'flat' }] }, 'jane');
    await saveIdentity({ contact: { phone: '0611111111' } }, 'jane', { merge: false });
    const [identity, ...others] = await stored(instance, 'io.cozy.identities');
    expect(others).toEqual([]);
    expect(identity!.contact).toEqual({ phone: [{ number: '0611111111' }] });
    expect(identity!.housing).toBeUndefined();
  });

  it('formats the contact as cozy-konnector-libs does: lists, phone digits, addresses without HTML, trimmed strings', async () => {
    const instance = freshInstance();
    const { saveIdentity } = await guest(instance);
    const contact = { name: { givenName: ' Jane ' }, phone: '+33 (0)6 00-00-00-00', email: ' jane@example.org ', address: '1 rue A<br>\n75001 Paris ' };
    await saveIdentity({ contact }, 'jane');
    const [identity] = await stored(instance, 'io.cozy.identities');
    expect(identity!.contact).toEqual({
      name: { givenName: 'Jane' },
      phone: [{ number: '+330600000000' }],
      email: [{ address: 'jane@example.org' }],
      address: [{ formattedAddress: '1 rue A 75001 Paris' }],
    });
    // The konnector's own object is left as it was.
    expect(contact.name.givenName).toBe(' Jane ');
  });

  it('formats an address without formattedAddress from its parts', async () => {
    const instance = freshInstance();
    const { saveIdentity } = await guest(instance);
    await saveIdentity({ contact: { address: [{ street: '1 rue A', postcode: '75001', city: 'Paris', country: 'France' }] } }, 'jane');
    const [identity] = await stored(instance, 'io.cozy.identities');
    expect(identity!.contact.address).toEqual([{ street: '1 rue A', postcode: '75001', city: 'Paris', country: 'France', formattedAddress: '1 rue A 75001 Paris France' }]);
  });

  it('saves nothing without an account identifier, and says so', async () => {
    const instance = freshInstance();
    const { saveIdentity, logs } = await guest(instance);
    await saveIdentity({ contact: { name: { givenName: 'Jane' } } }, undefined);
    expect(await stored(instance, 'io.cozy.identities')).toEqual([]);
    expect(logs).toContainEqual({ level: 'warning', message: "saveIdentity: Can't set identity as no accountIdentifier was provided" });
  });
});

describe('utils', () => {
  it('formats dates as YYYY-MM-DD', async () => {
    const { utils, day } = await guest(freshInstance());
    expect(utils.formatDate(day(5))).toBe('2024-01-05');
    expect(utils.formatDate('2024-12-31T23:00:00.000Z')).toBe('2024-12-31');
    expect(() => utils.formatDate('soon')).toThrow(/formatDate: "soon" is not a date/);
  });

  it('queryAll and fetchAll read every document across pages of a capped find', async () => {
    const instance = freshInstance();
    const { updateOrCreate, utils } = await guest(instance, 2);
    await updateOrCreate([1, 2, 3, 4, 5].map((n) => ({ ref: `R${n}`, even: n % 2 === 0 })), 'io.cozy.example.things', ['ref']);
    expect((await utils.fetchAll('io.cozy.example.things')).map((d) => d.ref).sort()).toEqual(['R1', 'R2', 'R3', 'R4', 'R5']);
    expect((await utils.queryAll('io.cozy.example.things', { even: true })).map((d) => d.ref).sort()).toEqual(['R2', 'R4']);
  });
});

describe('cozyClient.new.models.document.Qualification', () => {
  it('gives the qualifications of cozy-client for the labels bills use', async () => {
    const { Qualification } = await guest(freshInstance());
    expect({ ...Qualification.getByLabel('energy_invoice') }).toEqual({ label: 'energy_invoice', purpose: 'invoice', sourceCategory: 'energy' });
    expect(Qualification.getByLabel('isp_invoice').toQualification()).toEqual({
      label: 'isp_invoice', purpose: 'invoice', sourceCategory: 'telecom', sourceSubCategory: 'internet', subjects: ['subscription'],
    });
    for (const label of ['telecom_invoice', 'phone_invoice', 'other_invoice', 'water_invoice', 'health_invoice', 'transport_invoice']) {
      expect(Qualification.getByLabel(label)).toMatchObject({ label, purpose: 'invoice' });
    }
    expect(() => Qualification.getByLabel('spaceship_invoice')).toThrow(/^No qualification found for the label spaceship_invoice/);
  });
});

describe('CookieKonnector', () => {
  /** A shop whose /account needs the session cookie /login sets. */
  function startShop() {
    return startTestServer((req, res) => {
      if (req.url === '/login' && req.method === 'GET') {
        return res.end('<form id="login" method="post" action="/login"><input name="login"><input name="password"></form>');
      }
      if (req.url === '/login' && req.method === 'POST') {
        return res.writeHead(302, { location: '/account', 'set-cookie': 'sid=s1; Path=/; HttpOnly' }).end();
      }
      if (req.url === '/account') {
        const ok = /(^|; )sid=s1(;|$)/.test(req.headers.cookie ?? '');
        return res.writeHead(ok ? 200 : 401).end(ok ? '<p id="me">Jane</p>' : 'log in first');
      }
      res.writeHead(404).end();
    });
  }

  const KONNECTOR = `
    const { CookieKonnector, log } = require('cozy-konnector-libs')
    class ShopKonnector extends CookieKonnector {
      async testSession() {
        const response = await this.request({ uri: 'http://shop.example/account', resolveWithFullResponse: true, simple: false })
        return response.statusCode === 200
      }
      async fetch(fields) {
        if (!(await this.testSession())) {
          log('info', 'logging in')
          await this.signin({ url: 'http://shop.example/login', formSelector: 'form#login', formData: fields, validate: (status, $) => $('#me').length === 1 })
        }
        log('info', 'session valid: ' + (await this.testSession()))
      }
    }
    const connector = new ShopKonnector({ cheerio: true, json: false })
    connector.run()
    module.exports = connector`;

  it('logs in when testSession says no, shares the session through this.request, and clears RESET_SESSION', async () => {
    const shop = await startShop();
    try {
      const instance = freshInstance();
      const { host: documentsHost, documents } = createTestDocuments({ couchUrl: couch.url, instance, accountId: ACCOUNT, permissions: PERMISSIONS });
      await documents.save('io.cozy.accounts', JSON.stringify({ _id: ACCOUNT, state: 'RESET_SESSION' }));
      const run = async () => {
        const host = createTestHost({ documents: documentsHost, http: { connectTo: { 'shop.example:80': shop.port } } });
        const konnector = await loadGuest({ code: KONNECTOR }, host);
        const outcome = await konnector.run({ accountId: ACCOUNT, fields: { login: 'jane', password: 'pw' } }).then(() => 'ok', (f: unknown) => f);
        return { outcome, messages: host.logs.map((l) => l.message) };
      };
      const first = await run();
      expect(first.outcome).toBe('ok');
      expect(first.messages).toEqual(expect.arrayContaining(['logging in', 'session valid: true', 'CookieKonnector: RESET_SESSION state found']));
      expect((await stored(instance, 'io.cozy.accounts'))[0]!.state).toBeNull();
      // Each job has its own cookie jar: the next one logs in again.
      const second = await run();
      expect(second.messages).toEqual(expect.arrayContaining(['logging in', 'session valid: true']));
      expect(second.messages).not.toContain('CookieKonnector: RESET_SESSION state found');
      expect(shop.requests.filter((r) => r.url === '/login' && r.method === 'POST')).toHaveLength(2);
    } finally {
      await shop.stop();
    }
  });

  it('refuses a subclass without testSession, as cozy-konnector-libs does', async () => {
    const code = `
      const { CookieKonnector } = require('cozy-konnector-libs')
      class Incomplete extends CookieKonnector { async fetch() {} }
      module.exports = new Incomplete()`;
    await expect(loadGuest({ code }, createTestHost())).rejects.toThrow(/Could not find a testSession method/);
  });
});
