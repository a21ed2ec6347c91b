/**
 * The safety of My Accounts, through HTTP the way a browser or an attacker
 * sends it: each attack is refused and its benign twin accepted. The host
 * has a public https address, so its cookies are Secure.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import * as OTPAuth from 'otpauth';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { COZY_ERROR_CODES } from '../../../runner/error-codes.ts';
import { CONTENT_SECURITY_POLICY, LINK_SENT, TOO_MANY } from '../../../runner/serve/web/index.ts';
import { SESSION_MS } from '../../../runner/serve/web/auth.ts';
import { explain, LIMIT_NAMES } from '../../../runner/serve/web/explanations.ts';
import { repoRoot } from '../../support/artifacts.ts';
import { apiClient } from '../support.ts';
import { linkIn, startMyAccountsHost, TOKEN, type MyAccountsHost } from './kit.ts';

const PUBLIC_URL = 'https://accounts.example';
const WINDOW_MS = 60_000;
let env: MyAccountsHost;
/** One connection pool per client address the tests send from. */
const clients = new Map<string, Agent>();
const client = (from: string) => clients.get(from) ?? clients.set(from, new Agent({ localAddress: from })).get(from)!;

beforeAll(async () => {
  env = await startMyAccountsHost({ publicUrl: PUBLIC_URL, rateLimit: { perAddress: 3, perClient: 8, windowMs: WINDOW_MS } });
});
afterAll(async () => {
  await Promise.all([...clients.values()].map((agent) => agent.close()));
  await env?.stop();
});
// Every test starts with fresh sign-in attempts.
beforeEach(() => env.clock.advance(WINDOW_MS));

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

/** A request as a browser of `from` (a loopback address: another client) would send it. */
async function send(method: string, route: string, options: { body?: unknown; cookie?: string; csrf?: string; origin?: string;
  headers?: Record<string, string>; from?: string } = {}): Promise<Answer> {
  const res = await fetch(`${env.url}${route}`, {
    method,
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.cookie ? { cookie: options.cookie } : {}),
      ...(options.csrf ? { 'x-csrf-token': options.csrf } : {}),
      ...(options.origin ? { origin: options.origin } : {}),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    ...(options.from ? { dispatcher: client(options.from) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text && res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text, headers: res.headers };
}

const sessionCookie = (answer: Answer) => answer.headers.getSetCookie().find((c) => c.startsWith('ma_session='))!;

async function operatorSession(): Promise<{ cookie: string; csrf: string }> {
  const answer = await send('POST', '/app/api/session/token', { body: { token: TOKEN } });
  expect(answer.status).toBe(200);
  return { cookie: sessionCookie(answer).split(';')[0]!, csrf: answer.body.csrf };
}

describe('the pages', () => {
  it('come with a strict Content-Security-Policy and hold no inline script or style', async () => {
    const page = await send('GET', '/app/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe|\*/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const publicDir = path.join(repoRoot, 'runner/serve/web/public');
    for (const name of (await readdir(publicDir)).filter((n) => n.endsWith('.html'))) {
      const html = await readFile(path.join(publicDir, name), 'utf8');
      expect(html.match(/<script\b[^>]*>/g)!.every((tag) => / src="\/app\/[a-z]+\.js"/.test(tag))).toBe(true);
      expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/);
    }
    // The scripts build the page from DOM nodes: no HTML parsing of data anywhere.
    for (const name of (await readdir(publicDir)).filter((n) => n.endsWith('.js'))) {
      expect(await readFile(path.join(publicDir, name), 'utf8')).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    }
  });
});

describe('sessions', () => {
  it('set their cookie HttpOnly, SameSite=Strict and Secure behind https; a wrong token opens none', async () => {
    const wrong = await send('POST', '/app/api/session/token', { body: { token: `${TOKEN}x` } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.getSetCookie()).toEqual([]);
    const right = await send('POST', '/app/api/session/token', { body: { token: TOKEN } });
    expect(right.status).toBe(200);
    expect(sessionCookie(right)).toMatch(/^ma_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
  });

  it('refuse a change without the session\'s CSRF token, and accept it with', async () => {
    const { cookie, csrf } = await operatorSession();
    const connect = await send('POST', '/app/api/accounts', { cookie, csrf,
      body: { konnector: 'example-bills', instance: 'erin.cozy.example', frequency: 'weekly', fields: { login: 'a@example.org', password: 'p' } } });
    expect(connect.status).toBe(201);
    const schedule = `/app/api/accounts/${connect.body.account.id}/schedule`;
    expect((await send('PUT', schedule, { cookie, body: { frequency: 'paused' } })).status).toBe(403);
    expect((await send('PUT', schedule, { cookie, csrf: `${csrf.slice(1)}A`, body: { frequency: 'paused' } })).status).toBe(403);
    expect((await send('GET', `/app/api/accounts/${connect.body.account.id}`, { cookie })).body.schedule).toBe('weekly');
    const paused = await send('PUT', schedule, { cookie, csrf, body: { frequency: 'paused' } });
    expect(paused).toMatchObject({ status: 200, body: { schedule: 'paused' } });
    expect((await send('PUT', schedule, { cookie, csrf, body: { frequency: 'daily' } })).body.schedule).toBe('daily');
  });

  it('end after 8 hours', async () => {
    const { cookie } = await operatorSession();
    expect((await send('GET', '/app/api/accounts', { cookie })).status).toBe(200);
    env.clock.advance(SESSION_MS);
    expect((await send('GET', '/app/api/accounts', { cookie })).status).toBe(401);
  });

  it('end at sign-out', async () => {
    const { cookie, csrf } = await operatorSession();
    expect((await send('GET', '/app/api/me', { cookie })).body.principal).toEqual({ kind: 'operator' });
    expect((await send('DELETE', '/app/api/session', { cookie, csrf })).status).toBe(204);
    expect((await send('GET', '/app/api/me', { cookie })).body.principal).toBeNull();
    expect((await send('GET', '/app/api/accounts', { cookie })).status).toBe(401);
  });
});

describe('cross-origin requests', () => {
  it('are refused by the web app and by the host\'s API; same-origin ones and clients that are no page are served', async () => {
    const evil = 'https://evil.example';
    const refused = await send('POST', '/app/api/session/token', { body: { token: TOKEN }, origin: evil });
    expect(refused.status).toBe(403);
    expect(refused.headers.getSetCookie()).toEqual([]);
    expect((await send('POST', '/app/api/session/token', { body: { token: TOKEN }, origin: PUBLIC_URL })).status).toBe(200);
    const bearer = { authorization: `Bearer ${TOKEN}` };
    expect((await send('GET', '/accounts', { headers: bearer, origin: evil })).status).toBe(403);
    expect((await send('GET', '/accounts', { headers: { ...bearer, 'sec-fetch-site': 'cross-site' } })).status).toBe(403);
    expect((await send('GET', '/accounts', { headers: bearer, origin: PUBLIC_URL })).status).toBe(200);
    expect((await send('GET', '/accounts', { headers: bearer })).status).toBe(200);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    // The app's data is refused to another site's page; its pages open from anywhere (a link clicked in a webmail).
    const crossSite = { 'sec-fetch-site': 'cross-site' };
    expect((await send('GET', '/app/api/me', { headers: crossSite })).status).toBe(403);
    expect((await send('GET', '/app/api/me', { headers: { 'sec-fetch-site': 'same-origin' } })).status).toBe(200);
    expect((await send('GET', '/app/signin?token=x', { headers: { ...crossSite, 'sec-fetch-mode': 'navigate' } })).status).toBe(200);
    expect((await send('POST', '/app/signin', { headers: crossSite })).status).toBe(403);
  });
});

describe('credentials', () => {
  it('never come back: the login is shown again, the password never, by the app or the API', async () => {
    const connect = await env.operator('POST', '/accounts', { konnector: 'example-bills', instance: 'erin.cozy.example', frequency: 'daily',
      fields: { login: 'erin@example.org', password: 'a secret password' } });
    expect(connect.status).toBe(201);
    const id = connect.body.account.id;
    const app = await env.operator('GET', `/accounts/${id}`);
    expect(app.body.fields).toEqual({ login: 'erin@example.org' });
    const api = await apiClient(env.url)('GET', `/accounts/${id}`);
    expect(api.body.auth).toEqual({ login: '***', password: '***' });
    // An edit with the password left empty keeps it; the account runs with it.
    expect((await env.operator('PUT', `/accounts/${id}`, { fields: { login: 'erin2@example.org', password: '' } })).status).toBe(200);
    expect((await env.host.store.accounts.get(id)).auth).toEqual({ login: 'erin2@example.org', password: 'a secret password' });
    // A required field missing is refused, naming it.
    const missing = await env.operator('POST', '/accounts', { konnector: 'example-bills', instance: 'erin.cozy.example', frequency: 'daily', fields: { login: 'x' } });
    expect(missing.status).toBe(400);
    expect(missing.body.error.issues.join()).toContain('password');
  });
});

describe('e-mail sign-in', () => {
  it('answers the same words without waiting for the mail, whether the address has an instance or not', async () => {
    expect((await env.operator('PUT', '/instances/frank.cozy.example', { email: 'frank@mail.test' })).status).toBe(200);
    const release = env.smtp.hold();
    const known = await send('POST', '/app/api/session/email', { body: { email: 'Frank@Mail.test' } });
    const unknown = await send('POST', '/app/api/session/email', { body: { email: 'nobody@mail.test' } });
    // The SMTP server holds the mail: the answer came before it could be sent.
    expect(env.smtp.mails.flatMap((m) => m.to)).not.toContain('frank@mail.test');
    release();
    expect([known.status, known.body]).toEqual([202, { message: LINK_SENT }]);
    expect([unknown.status, unknown.body]).toEqual([202, { message: LINK_SENT }]);
    const link = linkIn(await env.smtp.nextMail('frank@mail.test'));
    expect(link.startsWith(`${PUBLIC_URL}/app/signin?token=`)).toBe(true);
  });

  it('limits attempts per address and per client, answering known and unknown addresses alike', async () => {
    await env.operator('PUT', '/instances/grace.cozy.example', { email: 'grace@mail.test' });
    const statuses = async (email: string, from?: string) => {
      const seen: number[] = [];
      for (let i = 0; i < 4; i++) seen.push((await send('POST', '/app/api/session/email', { body: { email }, from })).status);
      return seen;
    };
    expect(await statuses('grace@mail.test')).toEqual([202, 202, 202, 429]);
    expect(await statuses('nobody@mail.test')).toEqual([202, 202, 202, 429]);
    // This client used its 8 attempts: a fresh address is refused from it, served from another client.
    const tooMany = await send('POST', '/app/api/session/email', { body: { email: 'henry@mail.test' } });
    expect([tooMany.status, tooMany.body.error.message]).toEqual([429, TOO_MANY]);
    expect((await send('POST', '/app/api/session/email', { body: { email: 'henry@mail.test' }, from: '127.0.0.2' })).status).toBe(202);
    // The address is limited from every client.
    expect((await send('POST', '/app/api/session/email', { body: { email: 'grace@mail.test' }, from: '127.0.0.3' })).status).toBe(429);
  });

  it('ends the TOTP step after 5 wrong codes, even for the right code after them, and takes each code once', async () => {
    const { body } = await env.operator('PUT', '/instances/ivy.cozy.example', { email: 'ivy@mail.test', twoFactor: true });
    const totp = OTPAuth.URI.parse(body.totpUri) as OTPAuth.TOTP;
    const stepFor = async () => {
      await send('POST', '/app/api/session/email', { body: { email: 'ivy@mail.test' } });
      const token = new URL(linkIn(await env.smtp.nextMail('ivy@mail.test'))).searchParams.get('token');
      const used = await send('POST', '/app/api/session/link', { body: { token } });
      expect(used.body).toEqual({ secondStep: 'totp' });
      expect(used.headers.getSetCookie().some((c) => c.startsWith('ma_session='))).toBe(false);
      return used.headers.getSetCookie()[0]!.split(';')[0]!;
    };
    const right = () => totp.generate({ timestamp: env.clock.now() });
    const wrong = () => String((Number(right()) + 500_000) % 1_000_000).padStart(6, '0');
    const guessed = await stepFor();
    for (let i = 0; i < 5; i++) expect((await send('POST', '/app/api/session/totp', { cookie: guessed, body: { code: wrong() } })).status).toBe(401);
    const late = await send('POST', '/app/api/session/totp', { cookie: guessed, body: { code: right() } });
    expect([late.status, late.body.error.message]).toEqual([401, 'this sign-in has expired: ask for a new link']);
    env.clock.advance(WINDOW_MS); // the client's attempts of this window are spent
    const fresh = await stepFor();
    const code = right();
    const signedIn = await send('POST', '/app/api/session/totp', { cookie: fresh, body: { code } });
    expect(signedIn.body.principal).toEqual({ kind: 'owner', instance: 'ivy.cozy.example', email: 'ivy@mail.test' });
    // The same code, for a second step of its own: refused; the next code: accepted.
    const replayed = await send('POST', '/app/api/session/totp', { cookie: await stepFor(), body: { code } });
    expect([replayed.status, replayed.body.error?.message]).toEqual([401, 'this code is not the right one: type the code your authenticator app shows now']);
    env.clock.advance(WINDOW_MS); // a later code (and fresh attempts for this client)
    const next = await send('POST', '/app/api/session/totp', { cookie: await stepFor(), body: { code: right() } });
    expect(next.body).toMatchObject({ principal: { instance: 'ivy.cozy.example' } });
  });
});

describe('owners', () => {
  it('connect accounts to their own instance only, and cannot manage the instances\' records; the operator can', async () => {
    await env.operator('PUT', '/instances/jack.cozy.example', { email: 'jack@mail.test' });
    await send('POST', '/app/api/session/email', { body: { email: 'jack@mail.test' } });
    const token = new URL(linkIn(await env.smtp.nextMail('jack@mail.test'))).searchParams.get('token');
    const used = await send('POST', '/app/api/session/link', { body: { token } });
    const cookie = sessionCookie(used).split(';')[0]!;
    // An account an owner connects goes to their instance, whatever the request says.
    const connect = await send('POST', '/app/api/accounts', { cookie, csrf: used.body.csrf, body: { konnector: 'example-bills',
      instance: 'other.cozy.example', frequency: 'weekly', fields: { login: 'jack@example.org', password: 'p' } } });
    expect([connect.status, connect.body.account.instance]).toEqual([201, 'jack.cozy.example']);
    const change = { email: 'jack@mail.test', twoFactor: false };
    expect((await send('PUT', '/app/api/instances/other.cozy.example', { cookie, csrf: used.body.csrf, body: change })).status).toBe(403);
    expect((await env.operator('PUT', '/instances/other.cozy.example', change)).status).toBe(200);
  });
});

describe('error codes', () => {
  it('each say in words what happened and what to do', () => {
    const codes = [...COZY_ERROR_CODES, ...LIMIT_NAMES.map((name) => `LIMIT_EXCEEDED.${name}`), 'UNKNOWN_ERROR.CRASH',
      'HOST.ACCOUNT_NOT_FOUND', 'HOST.KONNECTOR_NOT_FOUND', 'HOST.INTERRUPTED', 'HOST.FAILURE'];
    for (const code of codes) {
      const { happened, todo } = explain(code);
      expect(happened, code).not.toContain(code); // a code of its own, not the fallback that names it
      expect(todo.length, code).toBeGreaterThan(10);
    }
    expect(explain('LOGIN_FAILED').todo).toMatch(/^Update your password/);
    expect(explain('VENDOR_DOWN').todo).toMatch(/^Try again later/);
    expect(explain('LIMIT_EXCEEDED.MEMORY').happened).toBe('The konnector was stopped for using too much memory.');
    expect(explain('SOMETHING_ELSE').happened).toContain('SOMETHING_ELSE');
  });
});
