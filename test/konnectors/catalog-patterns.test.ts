/**
 * What catalog konnectors do that the SDK alone does not cover, on a fixture
 * written the catalog's way (test/fixtures/konnectors/undeclared-deps):
 * `request` with callbacks and a jar, `request-promise`, lodash, moment with a
 * locale and bluebird, none of them declared, run against a vendor site that
 * keeps a session in a cookie.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import nano from 'nano';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedCouchDB, type CouchServer } from '../../host-api/couchdb-server.ts';
import { databaseName } from '../../host-api/job-scope.ts';
import { parseConnectTo } from '../../host-api/http/index.ts';
import type { LogLine } from '../../host-api/log.ts';
import { runJob } from '../../runner/job.ts';
import { defaultLimits } from '../../runner/limits.ts';
import { fixtureDir, loadOnce } from '../support/artifacts.ts';

const SESSION = 'session=7f3a';
const BILLS: Record<string, { amount: number; date: string }> = { '1': { amount: 30, date: '2026-03-05' }, '2': { amount: 12.5, date: '2026-04-05' } };

let vendor: Server;
let couch: CouchServer;
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'catalog-patterns-'));
  couch = await startEmbeddedCouchDB({ dataDir: scratch });
  vendor = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      if (req.url === '/login' && req.method === 'POST') {
        const form = new URLSearchParams(body);
        const ok = form.get('login') === 'jane' && form.get('password') === 'secret';
        res.writeHead(ok ? 204 : 401, ok ? { 'set-cookie': `${SESSION}; Path=/; HttpOnly` } : {}).end();
        return;
      }
      if (req.headers.cookie !== SESSION) return void res.writeHead(403).end();
      const bill = /^\/bills\/(\d+)$/.exec(req.url ?? '')?.[1];
      const answer = req.url === '/bills' ? Object.keys(BILLS) : bill !== undefined ? BILLS[bill] : undefined;
      if (answer === undefined) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => vendor.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  vendor?.close();
  await couch?.stop();
  await rm(scratch, { recursive: true, force: true });
});

async function run(fields: Record<string, string>, instance: string) {
  const lines: LogLine[] = [];
  const report = await runJob(
    await loadOnce(fixtureDir('undeclared-deps')),
    { accountId: 'shop-account', instance, fields },
    {
      couchUrl: couch.url,
      limits: defaultLimits,
      connectTo: [parseConnectTo(`shop.example:80:127.0.0.1:${(vendor.address() as AddressInfo).port}`)],
      onLog: (line) => lines.push(line),
    },
  );
  return { report, messages: lines.map((line) => line.message) };
}

describe('a catalog-style konnector with undeclared dependencies', () => {
  it('logs in with request and a jar, follows its session through request-promise, and saves the bills lodash, moment (fr) and bluebird shaped', async () => {
    const { report, messages } = await run({ login: 'jane', password: 'secret' }, 'jane.cozy.example');
    expect(report, messages.join('\n')).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.bills': 2 } });
    expect(messages).toContain(`session cookie ${SESSION}`);
    expect(messages).toContain('total 42.5');
    const db = nano(couch.url).use<Record<string, unknown>>(databaseName('jane.cozy.example', 'io.cozy.bills'));
    const { rows } = await db.list({ include_docs: true });
    const saved = rows.map((row) => row.doc!).map(({ vendor, currency, amount, date, label }) => ({ vendor, currency, amount, date, label }));
    expect(saved.sort((a, b) => String(a.date).localeCompare(String(b.date)))).toEqual([
      { vendor: 'shop', currency: 'EUR', amount: 30, date: '2026-03-05', label: '5 mars 2026' },
      { vendor: 'shop', currency: 'EUR', amount: 12.5, date: '2026-04-05', label: '5 avril 2026' },
    ]);
    // The host made the job's account document (no credentials in it); the konnector saved its data there.
    const account = await nano(couch.url).use<Record<string, unknown>>(databaseName('jane.cozy.example', 'io.cozy.accounts')).get('shop-account');
    expect(account).toMatchObject({ account_type: 'undeclared-deps', data: { billsSeen: 2 } });
    expect(JSON.stringify(account)).not.toContain('secret');
  });

  it('reuses the account document a later job finds (konnector run --account): what the user and the last job put there stays', async () => {
    const instance = 'reuse.cozy.example';
    const accounts = nano(couch.url).use<Record<string, unknown>>(databaseName(instance, 'io.cozy.accounts'));
    const first = await run({ login: 'jane', password: 'secret' }, instance);
    expect(first.report, first.messages.join('\n')).toMatchObject({ state: 'done' });
    const made = await accounts.get('shop-account');
    await accounts.insert({ ...made, label: 'Jane at the shop', data: { billsSeen: 2, since: '2026-01' } });

    const second = await run({ login: 'jane', password: 'secret' }, instance);
    expect(second.report, second.messages.join('\n')).toMatchObject({ state: 'done', saved: { 'io.cozy.bills': 2 } });
    const { rows } = await accounts.list({ include_docs: true });
    expect(rows.map((row) => row.doc)).toEqual([
      expect.objectContaining({ _id: 'shop-account', account_type: 'undeclared-deps', label: 'Jane at the shop', data: { billsSeen: 2, since: '2026-01' } }),
    ]);
  });

  it("gets request's answer, not an exception, for a refused login, and ends LOGIN_FAILED", async () => {
    const { report } = await run({ login: 'jane', password: 'wrong' }, 'wrong.cozy.example');
    expect(report).toMatchObject({ state: 'errored', error: 'LOGIN_FAILED', saved: {} });
  });
});
