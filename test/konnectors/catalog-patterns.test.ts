/**
 * What catalog konnectors do that the SDK alone does not cover, on fixtures
 * written the catalog's way: `request` with callbacks and a jar,
 * `request-promise`, lodash, moment with a locale and bluebird, none of them
 * declared, against a vendor site that keeps a session in a cookie
 * (undeclared-deps); the web's fetch through node-fetch, isomorphic-fetch and
 * the global, against a JSON API with a bearer token (fetch-api).
 */
import nano from 'nano';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseName } from '../../host-api/couchdb.ts';
import { parseConnectTo } from '../../host-api/http/index.ts';
import type { LogLine } from '../../host-api/log.ts';
import { runJob } from '../../runner/sandbox/job.ts';
import { defaultLimits } from '../../runner/limits.ts';
import type { EngineName } from '../../runner/sandbox/pool.ts';
import { fixtureDir } from '../support/artifacts.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';
import { ENGINES, instanceOn, loadOn } from '../support/engines.ts';
import { startTestServer, type TestServer } from '../support/http-server.ts';

const SESSION = 'session=7f3a';
const TOKEN = 'b7c1e0';
const BILLS: Record<string, { amount: number; date: string }> = { '1': { amount: 30, date: '2026-03-05' }, '2': { amount: 12.5, date: '2026-04-05' } };

let vendor: TestServer;
let couch: TestCouch;

beforeAll(async () => {
  couch = await startTestCouch();
  vendor = await startTestServer((req, res) => {
    const body = req.body.toString();
    if (req.url === '/login' && req.method === 'POST') {
      const form = new URLSearchParams(body);
      const ok = form.get('login') === 'jane' && form.get('password') === 'secret';
      res.writeHead(ok ? 204 : 401, ok ? { 'set-cookie': `${SESSION}; Path=/; HttpOnly` } : {}).end();
      return;
    }
    if (req.url === '/token' && req.method === 'POST') {
      const { login, password } = JSON.parse(body) as Record<string, string>;
      const ok = req.headers['content-type'] === 'application/json' && login === 'jane' && password === 'secret';
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(ok ? JSON.stringify({ token: TOKEN }) : '{}');
      return;
    }
    if (req.url === '/old-bills') return void res.writeHead(302, { location: '/v2/bills' }).end();
    if (req.url === '/v2/bills') {
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(403).end();
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(Object.values(BILLS)));
    }
    if (req.headers.cookie !== SESSION) return void res.writeHead(403).end();
    const bill = /^\/bills\/(\d+)$/.exec(req.url)?.[1];
    const answer = req.url === '/bills' ? Object.keys(BILLS) : bill !== undefined ? BILLS[bill] : undefined;
    if (answer === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
});

afterAll(async () => {
  await Promise.all([vendor?.stop(), couch?.stop()]);
});

async function run(engine: EngineName, fields: Record<string, string>, instance: string, fixture = 'undeclared-deps') {
  const lines: LogLine[] = [];
  const report = await runJob(
    await loadOn(engine, fixtureDir(fixture)),
    { accountId: 'shop-account', instance, fields },
    {
      couchUrl: couch.url,
      limits: defaultLimits,
      connectTo: ['shop.example', 'api.example'].map((host) => parseConnectTo(`${host}:80:127.0.0.1:${vendor.port}`)),
      onLog: (line) => lines.push(line),
    },
  );
  return { report, messages: lines.map((line) => line.message) };
}

describe.each(ENGINES)('on %s', (engine) => {
  describe('a catalog-style konnector with undeclared dependencies', () => {
    it('logs in with request and a jar, follows its session through request-promise, and saves the bills lodash, moment (fr) and bluebird shaped', async () => {
      const instance = instanceOn(engine, 'jane.cozy.example');
      const { report, messages } = await run(engine, { login: 'jane', password: 'secret' }, instance);
      expect(report, messages.join('\n')).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.bills': 2 } });
      expect(messages).toContain(`session cookie ${SESSION}`);
      expect(messages).toContain('total 42.5');
      const db = nano(couch.url).use<Record<string, unknown>>(databaseName(instance, 'io.cozy.bills'));
      const { rows } = await db.list({ include_docs: true });
      const saved = rows.map((row) => row.doc!).map(({ vendor, currency, amount, date, label }) => ({ vendor, currency, amount, date, label }));
      expect(saved.sort((a, b) => String(a.date).localeCompare(String(b.date)))).toEqual([
        { vendor: 'shop', currency: 'EUR', amount: 30, date: '2026-03-05', label: '5 mars 2026' },
        { vendor: 'shop', currency: 'EUR', amount: 12.5, date: '2026-04-05', label: '5 avril 2026' },
      ]);
      // The host made the job's account document (no credentials in it); the konnector saved its data there.
      const account = await nano(couch.url).use<Record<string, unknown>>(databaseName(instance, 'io.cozy.accounts')).get('shop-account');
      expect(account).toMatchObject({ account_type: 'undeclared-deps', data: { billsSeen: 2 } });
      expect(JSON.stringify(account)).not.toContain('secret');
    });

    it('reuses the account document a later job finds (konnector run --account): what the user and the last job put there stays', async () => {
      const instance = instanceOn(engine, 'reuse.cozy.example');
      const accounts = nano(couch.url).use<Record<string, unknown>>(databaseName(instance, 'io.cozy.accounts'));
      const first = await run(engine, { login: 'jane', password: 'secret' }, instance);
      expect(first.report, first.messages.join('\n')).toMatchObject({ state: 'done' });
      const made = await accounts.get('shop-account');
      await accounts.insert({ ...made, label: 'Jane at the shop', data: { billsSeen: 2, since: '2026-01' } });

      const second = await run(engine, { login: 'jane', password: 'secret' }, instance);
      expect(second.report, second.messages.join('\n')).toMatchObject({ state: 'done', saved: { 'io.cozy.bills': 2 } });
      const { rows } = await accounts.list({ include_docs: true });
      expect(rows.map((row) => row.doc)).toEqual([
        expect.objectContaining({ _id: 'shop-account', account_type: 'undeclared-deps', label: 'Jane at the shop', data: { billsSeen: 2, since: '2026-01' } }),
      ]);
    });

    it("gets request's answer, not an exception, for a refused login, and ends LOGIN_FAILED", async () => {
      const { report } = await run(engine, { login: 'jane', password: 'wrong' }, instanceOn(engine, 'wrong.cozy.example'));
      expect(report).toMatchObject({ state: 'errored', error: 'LOGIN_FAILED', saved: {} });
    });
  });

  describe('a konnector on the web fetch API', () => {
    it('logs in with node-fetch, sees a redirect with redirect: "manual", follows it with Headers, and saves the bills', async () => {
      const instance = instanceOn(engine, 'fetch.cozy.example');
      const { report, messages } = await run(engine, { login: 'jane', password: 'secret' }, instance, 'fetch-api');
      expect(report, messages.join('\n')).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.bills': 2 } });
      expect(messages).toContain('manual redirect 302 to /v2/bills');
      expect(messages).toContain('followed to http://api.example/v2/bills, redirected true');
      const db = nano(couch.url).use<Record<string, unknown>>(databaseName(instance, 'io.cozy.bills'));
      const { rows } = await db.list({ include_docs: true });
      expect(rows.map(({ doc }) => ({ vendor: doc!.vendor, amount: doc!.amount, date: doc!.date }))
        .sort((a, b) => String(a.date).localeCompare(String(b.date)))).toEqual([
        { vendor: 'api', amount: 30, date: '2026-03-05' },
        { vendor: 'api', amount: 12.5, date: '2026-04-05' },
      ]);
    });

    it('the twin with a wrong password gets the 401 answer, not an exception, and ends LOGIN_FAILED', async () => {
      const { report } = await run(engine, { login: 'jane', password: 'wrong' }, instanceOn(engine, 'fetch-wrong.cozy.example'), 'fetch-api');
      expect(report).toMatchObject({ state: 'errored', error: 'LOGIN_FAILED', saved: {} });
    });
  });
});
