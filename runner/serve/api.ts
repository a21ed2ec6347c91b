/**
 * The host's HTTP API (docs/openapi.yaml). Every route but GET /health needs
 * `Authorization: Bearer <token>`. Bodies are JSON objects validated by the
 * schemas of model.ts; an error answers `{"error": {kind, message, issues}}`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { issueLines } from '../../host-api/schema-issues.ts';
import { ServeError } from './errors.ts';
import type { KonnectorRegistry } from './konnectors.ts';
import type { ServeMetrics } from './metrics.ts';
import {
  AccountInputSchema, AccountUpdateSchema, DOC_ID, JobInputSchema, JobListQuerySchema, TriggerInputSchema, TriggerUpdateSchema,
  publicAccount, publicJob, publicTrigger, type AccountDoc, type JobDoc, type TriggerDoc,
} from './model.ts';
import type { JobProcessor } from './processor.ts';
import type { JobQueue } from './queue.ts';
import { scheduleOf, type TriggerScheduler } from './scheduler.ts';
import type { Store } from './store.ts';
import type { MyAccounts } from './web/index.ts';
import { bearerToken, sameSecret } from './web/auth.ts';

const MAX_BODY_BYTES = 1024 * 1024;

export interface ApiContext {
  store: Store;
  registry: KonnectorRegistry;
  processor: JobProcessor;
  scheduler: TriggerScheduler;
  queue: JobQueue;
  metrics: ServeMetrics;
  token: string;
  hostId: string;
  concurrency: number;
  /** True once the host drains: no new job is accepted. */
  draining(): boolean;
  /** The web app (runner/serve/web): its pages, and the refusal of cross-origin requests to every route. */
  web: MyAccounts;
}

type Params = Record<string, string>;
type Handler = (req: IncomingMessage, params: Params, url: URL) => Promise<{ status: number; body: unknown } | RawReply>;
interface RawReply {
  status: number;
  raw: string;
  contentType: string;
}

export const STATUS: Record<ServeError['kind'], number> = { invalid: 400, unauthorized: 401, 'not-found': 404, conflict: 409, unavailable: 503 };

export function validate<S extends z.ZodTypeAny>(schema: S, value: unknown, where: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = issueLines(parsed.error, '(body)');
    throw new ServeError('invalid', `invalid ${where}: ${issues.join('; ')}`, issues);
  }
  return parsed.data;
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new ServeError('invalid', `the body must be JSON sent with "Content-Type: application/json" (got ${JSON.stringify(type)})`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new ServeError('invalid', `the body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw new ServeError('invalid', `the body is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * Deletes an account as cozy-stack does: its triggers go with it; the
 * documents and files it saved stay in the instance.
 */
export async function removeAccount(store: Store, scheduler: TriggerScheduler, account: AccountDoc): Promise<void> {
  for (const trigger of await store.triggers.find({ 'message.account': account._id }, { limit: 10_000 })) {
    await store.triggers.remove(trigger._id);
    scheduler.remove(trigger._id);
  }
  await store.accounts.remove(account._id);
}

export function createApi(ctx: ApiContext): Server {
  const authorized = (req: IncomingMessage) => {
    const given = bearerToken(req);
    return given !== undefined && sameSecret(given, ctx.token);
  };

  const accountOr404 = (id: string) => ctx.store.accounts.get(id);
  const notDraining = () => {
    if (ctx.draining()) throw new ServeError('unavailable', 'the host is draining (stopping): send the request to another host or retry later');
  };
  const knownKonnector = async (slug: string) => {
    if (!(await ctx.registry.has(slug))) {
      const known = ctx.registry.list().map((k) => k.slug);
      throw new ServeError('invalid', `account_type: no konnector "${slug}" in ${ctx.registry.dir} (known: ${known.join(', ') || 'none'})`,
        [`account_type: unknown konnector "${slug}"`]);
    }
  };
  const checkSchedule = (trigger: TriggerDoc) => {
    scheduleOf(trigger); // throws ServeError('invalid') naming the problem
  };
  const now = () => new Date().toISOString();

  const routes: Array<{ method: string; path: RegExp; auth: boolean; handler: Handler }> = [];
  const route = (method: string, pattern: string, handler: Handler, auth = true) => {
    const path = new RegExp(`^${pattern.replace(/:(\w+)/g, '(?<$1>[^/]+)')}$`);
    routes.push({ method, path, auth, handler });
  };

  route('GET', '/health', async () => {
    const couchdb = await ctx.store.ping();
    const { waiting, active } = await ctx.queue.stats().catch(() => ({ waiting: -1, active: -1 }));
    const status = ctx.draining() ? 'draining' : couchdb ? 'ok' : 'degraded';
    return {
      status: status === 'ok' ? 200 : 503,
      body: { status, host: ctx.hostId, couchdb: couchdb ? 'up' : 'down', queue: ctx.queue.kind, concurrency: ctx.concurrency,
        running: ctx.processor.runningCount, waiting, active, konnectors: ctx.registry.list().length },
    };
  }, false);

  route('GET', '/metrics', async () => ({
    status: 200,
    raw: await ctx.metrics.registry.metrics(),
    contentType: ctx.metrics.registry.contentType,
  }));

  route('GET', '/konnectors', async () => {
    await ctx.registry.scan();
    return { status: 200, body: { konnectors: ctx.registry.list().map(({ file: _file, ...info }) => info) } };
  });

  // Accounts
  route('POST', '/accounts', async (req) => {
    const input = validate(AccountInputSchema, await readJson(req), 'account');
    await knownKonnector(input.account_type);
    const at = now();
    const account = await ctx.store.accounts.put({ _id: randomUUID().replace(/-/g, ''), ...input, cozyMetadata: { createdAt: at, updatedAt: at } });
    return { status: 201, body: publicAccount(account) };
  });
  route('GET', '/accounts', async (_req, _params, url) => {
    const query = validate(z.object({ account_type: z.string().optional(), instance: z.string().optional(),
      limit: z.coerce.number().int().min(1).max(10_000).default(100), skip: z.coerce.number().int().min(0).default(0) }).strict(),
    Object.fromEntries(url.searchParams), 'query');
    const selector = { ...(query.account_type ? { account_type: query.account_type } : {}), ...(query.instance ? { instance: query.instance } : {}) };
    const accounts = await ctx.store.accounts.find(selector, { limit: query.limit, skip: query.skip });
    return { status: 200, body: { accounts: accounts.map(publicAccount) } };
  });
  route('GET', '/accounts/:id', async (_req, { id }) => ({ status: 200, body: publicAccount(await accountOr404(id!)) }));
  route('PUT', '/accounts/:id', async (req, { id }) => {
    const input = validate(AccountUpdateSchema, await readJson(req), 'account update');
    const updated = await ctx.store.accounts.modify(id!, (account: AccountDoc) => ({
      ...account, auth: input.auth, ...(input.label !== undefined ? { label: input.label } : {}),
      cozyMetadata: { ...account.cozyMetadata, updatedAt: now() },
    }));
    return { status: 200, body: publicAccount(updated!) };
  });
  route('DELETE', '/accounts/:id', async (_req, { id }) => {
    await removeAccount(ctx.store, ctx.scheduler, await accountOr404(id!));
    return { status: 204, body: null };
  });

  // Triggers
  route('POST', '/triggers', async (req) => {
    const input = validate(TriggerInputSchema, await readJson(req), 'trigger');
    const account = await ctx.store.accounts.get(input.account).catch((e: unknown) => {
      if (e instanceof ServeError && e.kind === 'not-found') {
        throw new ServeError('invalid', `account: there is no account ${JSON.stringify(input.account)}`, ['account: unknown account']);
      }
      throw e;
    });
    const at = now();
    const draft: TriggerDoc = {
      _id: randomUUID().replace(/-/g, ''), type: input.type, arguments: input.arguments, worker: 'konnector',
      message: { account: account._id, konnector: account.account_type }, current_state: { status: 'never' },
      cozyMetadata: { createdAt: at, updatedAt: at },
    };
    checkSchedule(draft);
    const trigger = await ctx.store.triggers.put(draft);
    ctx.scheduler.upsert(trigger);
    return { status: 201, body: publicTrigger(trigger) };
  });
  route('GET', '/triggers', async (_req, _params, url) => {
    const query = validate(z.object({ account: z.string().regex(DOC_ID).optional(),
      limit: z.coerce.number().int().min(1).max(10_000).default(100), skip: z.coerce.number().int().min(0).default(0) }).strict(),
    Object.fromEntries(url.searchParams), 'query');
    const triggers = await ctx.store.triggers.find(query.account ? { 'message.account': query.account } : {}, { limit: query.limit, skip: query.skip });
    return { status: 200, body: { triggers: triggers.map(publicTrigger) } };
  });
  route('GET', '/triggers/:id', async (_req, { id }) => ({ status: 200, body: publicTrigger(await ctx.store.triggers.get(id!)) }));
  route('PUT', '/triggers/:id', async (req, { id }) => {
    const input = validate(TriggerUpdateSchema, await readJson(req), 'trigger update');
    const updated = await ctx.store.triggers.modify(id!, (trigger: TriggerDoc) => {
      const next = { ...trigger, ...input, cozyMetadata: { ...trigger.cozyMetadata, updatedAt: now() } };
      checkSchedule(next);
      return next;
    });
    ctx.scheduler.upsert(updated!);
    return { status: 200, body: publicTrigger(updated!) };
  });
  route('DELETE', '/triggers/:id', async (_req, { id }) => {
    await ctx.store.triggers.get(id!); // 404 when unknown
    await ctx.store.triggers.remove(id!);
    ctx.scheduler.remove(id!);
    return { status: 204, body: null };
  });
  route('POST', '/triggers/:id/launch', async (_req, { id }) => {
    notDraining();
    const trigger = await ctx.store.triggers.get(id!);
    const account = await accountOr404(trigger.message.account);
    const job = await ctx.processor.createJob(account, { triggerId: trigger._id, manual: true });
    return { status: 201, body: publicJob(job) };
  });

  // Jobs
  route('POST', '/jobs', async (req) => {
    notDraining();
    const input = validate(JobInputSchema, await readJson(req), 'job');
    const account = await ctx.store.accounts.get(input.account).catch((e: unknown) => {
      if (e instanceof ServeError && e.kind === 'not-found') {
        throw new ServeError('invalid', `account: there is no account ${JSON.stringify(input.account)}`, ['account: unknown account']);
      }
      throw e;
    });
    const job = await ctx.processor.createJob(account, { manual: true });
    return { status: 201, body: publicJob(job) };
  });
  route('GET', '/jobs', async (_req, _params, url) => {
    const query = validate(JobListQuerySchema, Object.fromEntries(url.searchParams), 'query');
    const selector = {
      ...(query.account ? { 'message.account': query.account } : {}),
      ...(query.trigger ? { trigger_id: query.trigger } : {}),
      ...(query.state ? { state: query.state } : {}),
    };
    const fields = ['_id', '_rev', 'worker', 'instance', 'message', 'trigger_id', 'manual', 'state', 'queued_at', 'due_at', 'started_at',
      'finished_at', 'attempts', 'max_attempts', 'interruptions', 'seq', 'lease', 'error', 'error_message', 'report', 'history'];
    const jobs = await ctx.store.jobs.find(selector, { limit: query.limit, skip: query.skip, fields });
    return { status: 200, body: { jobs: (jobs as JobDoc[]).map(publicJob) } };
  });
  route('GET', '/jobs/:id', async (_req, { id }) => ({ status: 200, body: publicJob(await ctx.store.jobs.get(id!)) }));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://serve.local');
    if (await ctx.web.handle(req, res, url)) return;
    const matching = routes.map((r) => ({ r, m: r.path.exec(url.pathname) })).filter((x) => x.m !== null);
    if (matching.length === 0) throw new ServeError('not-found', `no route ${url.pathname}: see docs/openapi.yaml for the API`);
    const found = matching.find((x) => x.r.method === req.method);
    if (!found) {
      const allow = matching.map((x) => x.r.method).join(', ');
      res.setHeader('allow', allow);
      return send(res, 405, { error: { kind: 'invalid', message: `${req.method} is not allowed on ${url.pathname} (allowed: ${allow})`, issues: [] } });
    }
    if (found.r.auth && !authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer realm="konnector serve"');
      throw new ServeError('unauthorized', 'missing or wrong bearer token: send "Authorization: Bearer <token>" with the token the host was started with');
    }
    const params: Params = {};
    for (const [key, value] of Object.entries(found.m!.groups ?? {})) {
      const decoded = decodeURIComponent(value);
      if (!DOC_ID.test(decoded)) throw new ServeError('invalid', `${key} ${JSON.stringify(decoded)} is not an id`, [`${key}: not an id`]);
      params[key] = decoded;
    }
    const reply = await found.r.handler(req, params, url);
    if ('raw' in reply) {
      res.writeHead(reply.status, { 'content-type': reply.contentType });
      res.end(reply.raw);
    } else send(res, reply.status, reply.body);
  }

  return createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof ServeError) {
        send(res, STATUS[error.kind], { error: { kind: error.kind, message: error.message, issues: error.issues } });
      } else {
        send(res, 500, { error: { kind: 'internal', message: `internal error: ${(error as Error).message}`, issues: [] } });
      }
    });
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (status === 204) {
    res.writeHead(204).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function listen(server: Server, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      resolve(`http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`);
    });
  });
}
