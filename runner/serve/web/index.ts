/**
 * "My Accounts": the web app of `konnector serve` (docs/my-accounts.md), on
 * the API's origin under /app. Pages are static files (public/); their data
 * comes from /app/api/*, authenticated by a session cookie (plus a CSRF
 * token on every change) or by the operator's bearer token. An owner reaches
 * only their instance's accounts and jobs: anything else answers 404.
 */
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { z } from 'zod';
import { readJson, removeAccount, STATUS, validate } from '../api.ts';
import { ServeError } from '../errors.ts';
import type { KonnectorRegistry } from '../konnectors.ts';
import { DOC_ID, type AccountDoc, type JobDoc, type JobSummary, type TriggerDoc } from '../model.ts';
import type { JobProcessor } from '../processor.ts';
import type { TriggerScheduler } from '../scheduler.ts';
import type { Store } from '../store.ts';
import type { HostLogger } from '../queue.ts';
import { bearerToken, LINK_MS, RateLimiter, sameSecret, SECOND_STEP_MS, SESSION_MS, Sessions, type Principal, type Session } from './auth.ts';
import { Catalog, credentialsSchema, visibleFields, type CatalogEntry, type Frequency } from './catalog.ts';
import { explain } from './explanations.ts';
import type { LiveLogs } from './live.ts';
import { emailSchema, instanceDomainSchema, InstanceInputSchema, Owners } from './owners.ts';

export interface MyAccountsOptions {
  /** SMTP server the sign-in links go through (smtp://user:pass@host:port, smtps://...); without it e-mail sign-in is off. */
  smtpUrl?: string;
  /** The links' sender. */
  mailFrom: string;
  /** The address people reach the host at (https://accounts.example): links point there, cookies are Secure when it is https. */
  publicUrl?: string;
  /** Sign-in attempts per address, and per client, in each window. */
  rateLimit: { perAddress: number; perClient: number; windowMs: number };
  /** The clock of links, sessions and limits (tests move it). */
  now: () => number;
}

export const defaultMyAccountsOptions = (): MyAccountsOptions => ({
  mailFrom: 'My Accounts <no-reply@localhost>',
  rateLimit: { perAddress: 5, perClient: 20, windowMs: 15 * 60 * 1000 },
  now: Date.now,
});

export interface MyAccountsContext {
  store: Store;
  registry: KonnectorRegistry;
  processor: JobProcessor;
  scheduler: TriggerScheduler;
  liveLogs: LiveLogs;
  token: string;
  couchUrl: string;
  dbPrefix: string;
  draining(): boolean;
  log: HostLogger;
  options: MyAccountsOptions;
  /** The address the host listens on: the links' base without a public URL (never the request's Host, which a client chooses). */
  listenUrl(): string;
}

export interface MyAccounts {
  /** Answers the request when it is the web app's (true), else leaves it to the API (false). */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
}

/** A refusal of the web app: its status and words. */
export class WebError extends Error {
  constructor(readonly status: 401 | 403 | 404 | 429 | 503, message: string) {
    super(message);
    this.name = 'WebError';
  }
}

const SESSION_COOKIE = 'ma_session';
const SECOND_STEP_COOKIE = 'ma_second_step';
const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
};
/** The pages' only sources are this origin's files: no inline script or style, no framing. */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};
/** The words of every e-mail sign-in answer, whether the address has an instance or not. */
export const LINK_SENT = 'If this address owns an instance here, a sign-in link is on its way to it. The link works once, for 10 minutes.';
export const TOO_MANY = 'Too many sign-in attempts: wait a few minutes, then try again.';
/** How often a followed job's document is read for its state. */
const STATE_POLL_MS = 500;
/** How many past runs an account's page shows. */
const HISTORY_RUNS = 10;

const FrequencySchema = z.enum(['daily', 'weekly']);
const TRIGGER_TYPE: Record<Frequency, '@daily' | '@weekly'> = { daily: '@daily', weekly: '@weekly' };
const ConnectSchema = z.object({
  konnector: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
  /** The operator names the instance; an owner's accounts go to their own. */
  instance: instanceDomainSchema.optional(),
  label: z.string().max(200).optional(),
  frequency: FrequencySchema,
  fields: z.record(z.unknown()),
}).strict();
const EditSchema = z.object({ label: z.string().max(200).optional(), fields: z.record(z.unknown()) }).strict();
const ScheduleSchema = z.object({ frequency: z.union([FrequencySchema, z.literal('paused')]) }).strict();

function cookies(req: IncomingMessage): Map<string, string> {
  return new Map((req.headers.cookie ?? '').split(';').flatMap((part) => {
    const at = part.indexOf('=');
    return at > 0 ? [[part.slice(0, at).trim(), part.slice(at + 1).trim()] as [string, string]] : [];
  }));
}

/** The origin the host is reached at: the public URL's, else the Host the browser asked. */
function ownOrigin(req: IncomingMessage, publicUrl: string | undefined): string {
  return publicUrl ? new URL(publicUrl).origin : `http://${req.headers.host ?? ''}`;
}

/**
 * Refuses a request a page of another origin sent (its Origin says so, or the
 * browser's Sec-Fetch-Site does): the API and the app answer their own pages only.
 */
function refuseCrossOrigin(req: IncomingMessage, publicUrl?: string): void {
  const origin = req.headers.origin;
  const site = req.headers['sec-fetch-site'];
  if ((origin !== undefined && origin !== ownOrigin(req, publicUrl)) || site === 'cross-site' || site === 'same-site') {
    throw new WebError(403, `requests from other origins are refused (Origin ${origin ?? 'absent'}, Sec-Fetch-Site ${site ?? 'absent'})`);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  const text = status === 204 ? '' : JSON.stringify(body);
  res.writeHead(status, { ...SECURITY_HEADERS, ...(status === 204 ? {} : { 'content-type': 'application/json; charset=utf-8' }), ...headers });
  res.end(text);
}

async function loadPublicFiles(): Promise<Map<string, { body: Buffer; type: string }>> {
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of await readdir(PUBLIC_DIR)) {
    const type = CONTENT_TYPES[path.extname(name)];
    if (type) files.set(name, { body: await readFile(path.join(PUBLIC_DIR, name)), type });
  }
  return files;
}

type Reply = { status: number; body: unknown; headers?: Record<string, string | string[]> };
interface Request {
  req: IncomingMessage;
  url: URL;
  params: Record<string, string>;
  session?: Session;
  principal?: Principal;
}
/** A route's answer, or null when it answered on `res` itself (a stream). */
type Handler = (request: Request, res: ServerResponse) => Promise<Reply | null>;

export async function createMyAccounts(ctx: MyAccountsContext): Promise<MyAccounts> {
  const { store, options } = ctx;
  const publicFiles = await loadPublicFiles();
  const catalog = new Catalog(ctx.registry);
  const owners = await Owners.open(ctx.couchUrl, ctx.dbPrefix);
  // An account's last runs, newest first, without reading its whole history.
  await store.jobs.ensure([['message.account', 'queued_at']]);
  const sessions = new Sessions(options.now);
  const perAddress = new RateLimiter(options.rateLimit.perAddress, options.rateLimit.windowMs, options.now);
  const perClient = new RateLimiter(options.rateLimit.perClient, options.rateLimit.windowMs, options.now);
  const mailer = options.smtpUrl ? nodemailer.createTransport(options.smtpUrl) : undefined;
  const secure = options.publicUrl?.startsWith('https:') ?? false;

  const cookie = (name: string, value: string, maxAgeMs: number) =>
    `${name}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(maxAgeMs / 1000)}${secure ? '; Secure' : ''}`;
  const clientKey = (req: IncomingMessage) => `client:${req.socket.remoteAddress ?? 'unknown'}`;
  const limitClient = (req: IncomingMessage) => {
    if (!perClient.take(clientKey(req))) throw new WebError(429, TOO_MANY);
  };

  // What a principal may see: an owner only their instance's; the same 404 as a missing one otherwise.
  const mayReach = (principal: Principal, instance: string) => principal.kind === 'operator' || principal.instance === instance;
  const accountFor = async (principal: Principal, id: string): Promise<AccountDoc> => {
    const account = await store.accounts.get(id);
    if (!mayReach(principal, account.instance)) throw new ServeError('not-found', `there is no io.cozy.accounts document ${JSON.stringify(id)}`);
    return account;
  };
  const jobFor = async (principal: Principal, id: string): Promise<JobDoc> => {
    const job = await store.jobs.get(id);
    if (!mayReach(principal, job.instance)) throw new ServeError('not-found', `there is no io.cozy.jobs document ${JSON.stringify(id)}`);
    return job;
  };
  const notDraining = () => {
    if (ctx.draining()) throw new ServeError('unavailable', 'the host is stopping: try again in a minute');
  };
  const now = () => new Date(options.now()).toISOString();

  const triggerOf = async (accountId: string): Promise<TriggerDoc | undefined> =>
    (await store.triggers.find({ 'message.account': accountId }, { limit: 1 }))[0];
  const recentJobs = async (accountId: string): Promise<JobSummary[]> =>
    await store.jobs.find({ 'message.account': accountId, queued_at: { $gt: '' } }, {
      limit: HISTORY_RUNS, sort: [{ 'message.account': 'desc' }, { queued_at: 'desc' }],
      fields: ['_id', 'instance', 'message', 'state', 'queued_at', 'started_at', 'finished_at', 'attempts', 'max_attempts', 'error', 'report'],
    }) as JobSummary[];
  /** Gives the account's trigger this type (a new trigger when it has none), and tells the scheduler. */
  const scheduleAccount = async (account: AccountDoc, type: TriggerDoc['type']): Promise<TriggerDoc> => {
    const existing = await triggerOf(account._id);
    const at = now();
    const trigger = existing
      ? (await store.triggers.modify(existing._id, (current) => ({ ...current, type, arguments: '', cozyMetadata: { ...current.cozyMetadata, updatedAt: at } })))!
      : await store.triggers.put({ _id: randomUUID().replace(/-/g, ''), type, arguments: '', worker: 'konnector',
        message: { account: account._id, konnector: account.account_type }, current_state: { status: 'never' }, cozyMetadata: { createdAt: at, updatedAt: at } });
    ctx.scheduler.upsert(trigger);
    return trigger;
  };
  const scheduleOfTrigger = (trigger: TriggerDoc | undefined) =>
    !trigger ? 'none' : trigger.type === '@daily' ? 'daily' : trigger.type === '@weekly' ? 'weekly' : trigger.type === '@manual' ? 'paused' : trigger.type;

  const jobView = (job: JobDoc | JobSummary) => ({
    id: job._id,
    account: job.message.account,
    konnector: job.message.konnector,
    state: job.state,
    queuedAt: job.queued_at,
    startedAt: job.started_at ?? null,
    finishedAt: job.finished_at ?? null,
    attempts: job.attempts,
    maxAttempts: job.max_attempts,
    error: job.error ?? null,
    explanation: job.state === 'errored' && job.error ? explain(job.error) : null,
    report: job.report ? {
      durationMs: job.report.durationMs, saved: job.report.saved, requests: job.report.requests,
      fuel: job.report.budgets.fuel, memory: job.report.budgets.memoryBytes, wallClock: job.report.budgets.wallClockMs,
      documents: job.report.budgets.documents, files: job.report.budgets.files,
    } : null,
  });
  const accountView = async (account: AccountDoc, entries: Map<string, CatalogEntry>) => {
    const entry = entries.get(account.account_type);
    const [trigger, jobs] = await Promise.all([triggerOf(account._id), recentJobs(account._id)]);
    return {
      id: account._id,
      konnector: account.account_type,
      konnectorName: entry?.name ?? account.account_type,
      instance: account.instance,
      label: account.label ?? '',
      fields: entry ? visibleFields(entry, account.auth) : {},
      schedule: scheduleOfTrigger(trigger),
      lastRun: jobs[0] ? jobView(jobs[0]) : null,
      history: jobs.map(jobView),
    };
  };
  const catalogBySlug = async () => new Map((await catalog.list()).map((entry) => [entry.slug, entry]));

  const sendLinks = async (email: string) => {
    for (const owner of await owners.byEmail(email)) {
      const token = sessions.issueLink(owner);
      const base = options.publicUrl ?? ctx.listenUrl();
      const link = `${base}/app/signin?token=${token}`;
      await mailer!.sendMail({
        from: options.mailFrom, to: email, subject: `Sign in to My Accounts (${owner.instance})`,
        text: `To see the accounts of ${owner.instance}, open this link within ${LINK_MS / 60_000} minutes:\n\n${link}\n\n` +
          'It works once. If you did not ask to sign in, ignore this message.\n',
      });
    }
  };

  type Access = 'public' | 'signed-in' | 'operator';
  const routes: Array<{ method: string; path: RegExp; access: Access; handler: Handler }> = [];
  const route = (method: string, pattern: string, handler: Handler, access: Access = 'signed-in') => {
    routes.push({ method, path: new RegExp(`^/app/api${pattern.replace(/:(\w+)/g, '(?<$1>[^/]+)')}$`), access, handler });
  };

  // Sign-in and out
  route('GET', '/me', async ({ session, principal }) => ({ status: 200, body: { principal: principal ?? null, csrf: session?.csrf ?? null } }), 'public');
  route('POST', '/session/token', async ({ req }) => {
    limitClient(req);
    const { token } = validate(z.object({ token: z.string().max(1000) }).strict(), await readJson(req), 'sign-in');
    if (!sameSecret(token, ctx.token)) throw new WebError(401, 'this is not the host\'s API token');
    const session = sessions.open({ kind: 'operator' });
    return { status: 200, body: { principal: session.principal, csrf: session.csrf }, headers: { 'set-cookie': cookie(SESSION_COOKIE, session.id, SESSION_MS) } };
  }, 'public');
  route('POST', '/session/email', async ({ req }) => {
    limitClient(req);
    if (!mailer) throw new WebError(503, 'e-mail sign-in is off on this host (the operator set no --smtp server): ask the operator');
    const { email } = validate(z.object({ email: emailSchema }).strict(), await readJson(req), 'sign-in');
    if (!perAddress.take(`address:${email}`)) throw new WebError(429, TOO_MANY);
    // The answer does not wait for the lookup or the mail: it reads and takes the same whether the address has an instance or not.
    void sendLinks(email).catch((error: Error) => ctx.log('warning', `sign-in link to an owner: not sent (${error.message})`));
    return { status: 202, body: { message: LINK_SENT } };
  }, 'public');
  route('POST', '/session/link', async ({ req }) => {
    limitClient(req);
    const { token } = validate(z.object({ token: z.string().max(100) }).strict(), await readJson(req), 'sign-in link');
    const used = sessions.useLink(token);
    if (!used) throw new WebError(401, 'this sign-in link was already used, has expired, or is not one: ask for a new one');
    if ('secondStep' in used) {
      return { status: 200, body: { secondStep: 'totp' }, headers: { 'set-cookie': cookie(SECOND_STEP_COOKIE, used.secondStep, SECOND_STEP_MS) } };
    }
    return { status: 200, body: { principal: used.session.principal, csrf: used.session.csrf },
      headers: { 'set-cookie': cookie(SESSION_COOKIE, used.session.id, SESSION_MS) } };
  }, 'public');
  route('POST', '/session/totp', async ({ req }) => {
    limitClient(req);
    const { code } = validate(z.object({ code: z.string().regex(/^\d{6}$/, 'the 6 digits of your authenticator app') }).strict(), await readJson(req), 'code');
    const step = cookies(req).get(SECOND_STEP_COOKIE);
    const result = step ? sessions.verifySecondStep(step, code) : undefined;
    if (result === 'wrong-code') throw new WebError(401, 'this code is not the right one: type the code your authenticator app shows now');
    if (!result) throw new WebError(401, 'this sign-in has expired: ask for a new link');
    return { status: 200, body: { principal: result.principal, csrf: result.csrf },
      headers: { 'set-cookie': [cookie(SESSION_COOKIE, result.id, SESSION_MS), cookie(SECOND_STEP_COOKIE, '', 0)] } };
  }, 'public');
  route('DELETE', '/session', async ({ session }) => {
    if (session) sessions.close(session.id);
    return { status: 204, body: null, headers: { 'set-cookie': cookie(SESSION_COOKIE, '', 0) } };
  });

  // The operator's records of the instances' owners
  route('GET', '/instances', async () => ({ status: 200, body: { instances: await owners.list() } }), 'operator');
  route('PUT', '/instances/:instance', async ({ req, params }) => {
    const instance = validate(instanceDomainSchema, params.instance, 'instance');
    return { status: 200, body: await owners.put(instance, validate(InstanceInputSchema, await readJson(req), 'instance record')) };
  }, 'operator');

  // Catalog and accounts
  route('GET', '/catalog', async () => ({ status: 200, body: { konnectors: await catalog.list() } }));
  route('GET', '/accounts', async ({ principal }) => {
    const accounts = await store.accounts.find(principal!.kind === 'owner' ? { instance: principal!.instance } : {}, { limit: 1000 });
    const entries = await catalogBySlug();
    return { status: 200, body: { accounts: await Promise.all(accounts.map((account) => accountView(account, entries))) } };
  });
  route('POST', '/accounts', async ({ req, principal }) => {
    notDraining();
    const input = validate(ConnectSchema, await readJson(req), 'account');
    const entry = await catalog.get(input.konnector).catch(() => {
      throw new ServeError('invalid', `konnector: this host has no konnector "${input.konnector}"`, ['konnector: unknown']);
    });
    const fields = validate(credentialsSchema(entry, false), input.fields, 'fields');
    const instance = principal!.kind === 'owner' ? principal!.instance : input.instance;
    if (!instance) throw new ServeError('invalid', 'instance: say which Cozy instance the documents go to', ['instance: required']);
    const at = now();
    const account = await store.accounts.put({ _id: randomUUID().replace(/-/g, ''), account_type: entry.slug, instance, auth: fields,
      ...(input.label ? { label: input.label } : {}), cozyMetadata: { createdAt: at, updatedAt: at } });
    const trigger = await scheduleAccount(account, TRIGGER_TYPE[input.frequency]);
    const job = await ctx.processor.createJob(account, { triggerId: trigger._id, manual: true });
    return { status: 201, body: { account: await accountView(account, await catalogBySlug()), job: jobView(job) } };
  });
  route('GET', '/accounts/:id', async ({ principal, params }) =>
    ({ status: 200, body: await accountView(await accountFor(principal!, params.id!), await catalogBySlug()) }));
  route('PUT', '/accounts/:id', async ({ req, principal, params }) => {
    const account = await accountFor(principal!, params.id!);
    const input = validate(EditSchema, await readJson(req), 'account');
    const entry = await catalog.get(account.account_type);
    const given = validate(credentialsSchema(entry, true), input.fields, 'fields');
    // An empty password keeps the one stored: it is never shown, so never typed again unless it changed.
    const kept = Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined && value !== ''));
    const updated = await store.accounts.modify(account._id, (current) => ({
      ...current, auth: { ...current.auth, ...kept }, ...(input.label !== undefined ? { label: input.label } : {}),
      cozyMetadata: { ...current.cozyMetadata, updatedAt: now() },
    }));
    return { status: 200, body: await accountView(updated!, await catalogBySlug()) };
  });
  route('POST', '/accounts/:id/run', async ({ principal, params }) => {
    notDraining();
    const account = await accountFor(principal!, params.id!);
    const trigger = await triggerOf(account._id);
    const job = await ctx.processor.createJob(account, { ...(trigger ? { triggerId: trigger._id } : {}), manual: true });
    return { status: 201, body: jobView(job) };
  });
  route('PUT', '/accounts/:id/schedule', async ({ req, principal, params }) => {
    const account = await accountFor(principal!, params.id!);
    const { frequency } = validate(ScheduleSchema, await readJson(req), 'schedule');
    const trigger = await scheduleAccount(account, frequency === 'paused' ? '@manual' : TRIGGER_TYPE[frequency]);
    return { status: 200, body: { schedule: scheduleOfTrigger(trigger) } };
  });
  route('DELETE', '/accounts/:id', async ({ principal, params }) => {
    await removeAccount(store, ctx.scheduler, await accountFor(principal!, params.id!));
    return { status: 204, body: null };
  });

  // Jobs
  route('GET', '/jobs/:id', async ({ principal, params }) => {
    const job = await jobFor(principal!, params.id!);
    return { status: 200, body: { ...jobView(job), logs: job.logs } };
  });

  /**
   * The job's state and log as server-sent events: `log` for each line (this
   * host's as the konnector writes them, another host's as its document
   * gets them), `job` whenever the state changes; the stream ends with the job.
   */
  route('GET', '/jobs/:id/events', async ({ principal, params }, res) => {
    let job = await jobFor(principal!, params.id!);
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    const event = (name: string, data: unknown) => res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    // Lines sent per attempt. Each source (the running job, its document) holds every line of an
    // attempt up to some point, so the lines past that count are the new ones.
    const sent = new Map<number, number>();
    const sendNew = (logs: JobDoc['logs']) => {
      const seen = new Map<number, number>();
      for (const line of logs) {
        const index = (seen.get(line.attempt) ?? 0) + 1;
        seen.set(line.attempt, index);
        if (index > (sent.get(line.attempt) ?? 0)) {
          sent.set(line.attempt, index);
          event('log', line);
        }
      }
    };
    let wake: (() => void) | undefined;
    let closed = false;
    // Lines written together (a burst) are sent together: the log so far is read once per turn of the event loop.
    let catchingUp = false;
    const unfollow = ctx.liveLogs.follow(job._id, () => {
      if (catchingUp) return;
      catchingUp = true;
      setImmediate(() => {
        catchingUp = false;
        if (!res.writableEnded) sendNew(ctx.processor.logSoFar(job._id) ?? []);
      });
    });
    res.on('close', () => {
      closed = true;
      wake?.();
    });
    let lastState = '';
    try {
      while (!closed) {
        const view = jobView(job);
        const key = `${view.state}:${view.attempts}`;
        // An ended job's last lines go before its end: the page stops listening at the end.
        const ended = job.state === 'done' || job.state === 'errored';
        if (!ended && key !== lastState) event('job', view);
        sendNew(job.logs);
        if (ended) {
          event('job', view);
          break;
        }
        lastState = key;
        // The state is read again from the document: the job may run on another host.
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, STATE_POLL_MS);
        });
        job = await store.jobs.get(job._id);
      }
    } finally {
      unfollow();
      res.end();
    }
    return null;
  });

  const sendFile = (res: ServerResponse, name: string) => {
    const file = publicFiles.get(name)!;
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.type, 'content-length': file.body.length });
    res.end(file.body);
  };

  const authenticate = (req: IncomingMessage): { session?: Session; principal?: Principal } => {
    const bearer = bearerToken(req);
    // A bearer token is not sent by browsers on their own: no CSRF token needed with it.
    if (bearer !== undefined) return sameSecret(bearer, ctx.token) ? { principal: { kind: 'operator' } } : {};
    const session = sessions.find(cookies(req).get(SESSION_COOKIE));
    return session ? { session, principal: session.principal } : {};
  };

  const serveApi = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const found = routes.map((r) => ({ r, m: r.path.exec(url.pathname) })).find((x) => x.m !== null && x.r.method === req.method);
    if (!found) throw new ServeError('not-found', `no ${req.method} ${url.pathname} in My Accounts`);
    const { session, principal } = authenticate(req);
    const { access } = found.r;
    if (access !== 'public' && !principal) throw new WebError(401, 'sign in first');
    if (access === 'operator' && principal?.kind !== 'operator') throw new WebError(403, 'only the operator may do this');
    if (req.method !== 'GET' && session && !sameSecret(String(req.headers['x-csrf-token'] ?? ''), session.csrf)) {
      throw new WebError(403, 'missing or wrong CSRF token: reload the page');
    }
    const params: Record<string, string> = {};
    for (const [key, value] of Object.entries(found.m!.groups ?? {})) {
      let decoded: string;
      try {
        decoded = decodeURIComponent(value);
      } catch {
        throw new ServeError('invalid', `${key}: not a valid %-encoding`, [`${key}: bad encoding`]);
      }
      if (key !== 'instance' && !DOC_ID.test(decoded)) throw new ServeError('invalid', `${key}: not an id`, [`${key}: not an id`]);
      params[key] = decoded;
    }
    const reply = await found.r.handler({ req, url, params, session, principal }, res);
    if (reply)     sendJson(res, reply.status, reply.body, reply.headers);
  };

  return {
    async handle(req, res, url) {
      try {
        const isPage = (req.method === 'GET' || req.method === 'HEAD') && (url.pathname === '/' || /^\/app(\/(?!api\/)|$)/.test(url.pathname));
        // Every route of the host, the API's too, answers only its own origin's pages (and clients that are no page).
        // The pages themselves may be opened from anywhere: a sign-in link is clicked in a webmail.
        if (!isPage) refuseCrossOrigin(req, options.publicUrl);
        if (url.pathname === '/') {
          res.writeHead(302, { location: '/app/' }).end();
          return true;
        }
        if (url.pathname !== '/app' && !url.pathname.startsWith('/app/')) return false;
        if (url.pathname.startsWith('/app/api/')) {
          await serveApi(req, res, url);
          return true;
        }
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new ServeError('not-found', `no ${req.method} ${url.pathname}`);
        const name = url.pathname.slice('/app/'.length);
        if (name === '' || name === 'signin') sendFile(res, 'index.html');
        else if (publicFiles.has(name)) sendFile(res, name);
        else if (url.pathname === '/app') res.writeHead(302, { location: '/app/' }).end();
        else throw new ServeError('not-found', `no page ${url.pathname}`);
      } catch (error) {
        if (res.headersSent) {
          res.end();
        } else if (error instanceof WebError) {
          sendJson(res, error.status, { error: { kind: 'refused', message: error.message, issues: [] } });
        } else if (error instanceof ServeError) {
          sendJson(res, STATUS[error.kind], { error: { kind: error.kind, message: error.message, issues: error.issues } });
        } else {
          ctx.log('error', `My Accounts: ${(error as Error).stack ?? error}`);
          sendJson(res, 500, { error: { kind: 'internal', message: 'internal error: see the host\'s log', issues: [] } });
        }
      }
      return true;
    },
  };
}
