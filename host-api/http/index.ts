/**
 * WIT `http`: the konnector's only way to the network, with the egress policy
 * (policy.ts, connector.ts), the job's cookie jar (cookies.ts) and its budgets.
 *
 * One `Http` per job. Nothing reaches the network for a refused request:
 * requests are validated, destinations checked and budgets charged before
 * dispatch, and addresses checked where the socket is opened. Redirects are
 * followed here, each hop going through the same checks. No proxy is ever
 * used (the job's own undici Agent, never the global or env-proxy dispatcher)
 * and TLS certificates are verified (undici's default).
 */
import dns from 'node:dns';
import { Agent, type Dispatcher } from 'undici';
import { z } from 'zod';
import type * as WitHttp from '../../wit/types/interfaces/cozy-konnector-http.js';
import { BudgetExceeded } from '../budget.ts';
import { formatIssues } from '../schema-issues.ts';
import { hostCapability } from '../capability.ts';
import { createCheckedConnector, type Resolver } from './connector.ts';
import { CookieStore } from './cookies.ts';
import { HttpConfigError, HttpError, type HttpErrorKind } from './errors.ts';
import { defaultPort, EgressPolicy, parseAllowedHost, parseConnectTo, type ConnectTo, type HostList } from './policy.ts';
import { fieldBytes, headBytes, mergeCookieHeader, validateRequest } from './request.ts';

export { HttpConfigError, HttpError, type HttpErrorKind } from './errors.ts';
export {
  checkAddress, operatorHostsFor, parseAllowedHost, parseConnectTo, parseOperatorHosts, type AllowedHost, type ConnectTo, type OperatorHosts,
} from './policy.ts';

/** What the guest asks to send, and what it gets back: the WIT records. */
export type HttpRequest = WitHttp.Request;
export type HttpResponse = WitHttp.Response;

const MiB = 1024 * 1024;

/** The job's http limits; an operator's limits file overrides the defaults (runner/limits.ts). */
const limitsSchema = z.object({
  /** Requests per job; every redirect hop counts as one. */
  maxRequests: z.number().int().nonnegative().default(1000),
  /** Response bytes per job (headers and bodies, redirect hops included). */
  maxBytesIn: z.number().int().nonnegative().default(512 * MiB),
  /** Request bytes per job (request line, headers and bodies, redirect hops included). */
  maxBytesOut: z.number().int().nonnegative().default(64 * MiB),
  /** Body of one response. */
  maxResponseBytes: z.number().int().positive().default(64 * MiB),
  /** Body of one request. */
  maxRequestBodyBytes: z.number().int().positive().default(16 * MiB),
  /** Name resolution plus TCP/TLS handshake. */
  connectTimeoutMs: z.number().int().positive().default(10_000),
  /** From the request sent to the complete response headers. */
  headersTimeoutMs: z.number().int().positive().default(30_000),
  /** From the response headers to the end of the body (a total, so a slow drip cannot hold the job). */
  bodyTimeoutMs: z.number().int().positive().default(60_000),
  maxRedirects: z.number().int().nonnegative().default(10),
  /** Requests of one job in flight at once; more wait their turn. */
  maxConcurrent: z.number().int().positive().default(4),
  /** Header fields of one request (the konnector's) or one response (the vendor's). */
  maxHeaders: z.number().int().positive().default(256),
  /** `set-cookie` values the job's jar takes in the whole job (later ones are dropped with a warning), and cookies kept in a session. */
  maxCookies: z.number().int().nonnegative().default(3000),
  /** The vendor session kept for the account's next job (the serialized jar): cut to fit, with a warning. */
  maxSessionBytes: z.number().int().positive().default(1 * MiB),
});

export type HttpLimits = z.infer<typeof limitsSchema>;

export interface HttpOptions {
  limits: HttpLimits;
  /**
   * From the manifest. When given, only matching destinations pass. Syntax of
   * an entry: `[http://|https://]HOST[:PORT]`, HOST a name, `*.name` (any
   * subdomain), an IPv4 or a bracketed IPv6 address; no scheme = both, no
   * port = 80 and 443. See `parseAllowedHost`.
   */
  allowedHosts?: string[];
  /** The operator's list, same syntax: when given, a destination must be in it too. */
  operatorAllowedHosts?: string[];
  /**
   * The cookie jar the same account's previous job left (`Http.session()`), to
   * resume its vendor session. A promise lets the job start while it is read:
   * the first request waits for it.
   */
  session?: string | Promise<string | undefined>;
  /** Operator exceptions: the listed host:port is sent to ADDR:PORT even if ADDR is loopback or private. */
  connectTo?: ConnectTo[];
  /** DNS; default `dns.promises.lookup(host, { all: true })`. Tests inject a fake resolver. */
  resolve?: Resolver;
  /** Refusals (policy, validation, limits) are logged here. */
  onLog?: (level: 'info' | 'warning', message: string) => void;
  /** Extra trusted CA certificates (PEM), on top of Node's bundled roots: a private CA, or tests. */
  extraCaCertificates?: string[];
}

export interface Http {
  send(req: HttpRequest): Promise<HttpResponse>;
  /** The cookie jar as it is now, for the account's next job. */
  session(): Promise<string>;
  /** WIT http.keep-session: what the guest asked for its session; undefined when it did not say. */
  keepSession(keep: boolean): void;
  readonly sessionWanted: boolean | undefined;
  readonly stats: { requests: number; bytesIn: number; bytesOut: number };
  /** Aborts what is in flight; later sends fail. */
  close(): Promise<void>;
}

async function systemResolve(host: string): Promise<string[]> {
  return (await dns.promises.lookup(host, { all: true })).map((a) => a.address);
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Fetch standard: headers describing a body, dropped when a redirect turns the request into a GET. */
const BODY_HEADERS = new Set(['content-type', 'content-encoding', 'content-language', 'content-location']);
/** HTTP errors the host raises on its own decision, as opposed to what the remote side did. */
const REFUSALS = new Set<HttpErrorKind>(['denied', 'invalid-request', 'too-large']);
const STATUS_LINE_BYTES = 17; // "HTTP/1.1 200 OK\r\n"
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Turns what undici or Node threw into the WIT error the guest gets; a spent budget ends the job instead. */
function toHttpError(err: unknown, where: string): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof BudgetExceeded) throw err;
  const e = err as Error & { code?: string };
  if (e.code && TIMEOUT_CODES.has(e.code)) return new HttpError('timeout', `${where}: ${e.message}`);
  if (e.code === 'UND_ERR_HEADERS_OVERFLOW') return new HttpError('too-large', `${where}: response headers too large`);
  if (e.code === 'UND_ERR_DESTROYED' || e.code === 'UND_ERR_CLOSED') {
    return new HttpError('network', `${where}: aborted, the job's http capability is closed`);
  }
  const detail = e instanceof AggregateError ? e.errors.map((x: Error) => x.message).join('; ') : e.message;
  return new HttpError('network', `${where}: ${detail}${e.code ? ` (${e.code})` : ''}`);
}

function flattenHeaders(headers: Dispatcher.ResponseData['headers']): [string, string][] {
  const out: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (Array.isArray(value)) for (const v of value) out.push([name, v]);
    else if (value !== undefined) out.push([name, value]);
  }
  return out;
}

/** A counting semaphore: the job's concurrency cap. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free -= 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free += 1;
    };
  }
}

export function createHttp(opts: HttpOptions): Http {
  // Strict here: a misspelt limit in code is a mistake, not an option to ignore.
  const parsed = limitsSchema.strict().safeParse(opts.limits);
  if (!parsed.success) {
    throw new HttpConfigError('invalid-limits', `http limits are invalid: ${formatIssues(parsed.error, 'limits')}`);
  }
  const limits = parsed.data;
  const hostLists: HostList[] = [
    ...(opts.allowedHosts ? [{ whose: "the konnector's" as const, hosts: opts.allowedHosts.map(parseAllowedHost) }] : []),
    ...(opts.operatorAllowedHosts ? [{ whose: "the operator's" as const, hosts: opts.operatorAllowedHosts.map(parseAllowedHost) }] : []),
  ];
  // Re-parse so hand-built entries get the same validation and normalization as CLI ones.
  const connectTo = (opts.connectTo ?? []).map((c) =>
    parseConnectTo(`${c.host}:${c.port}:${c.toAddress.includes(':') ? `[${c.toAddress}]` : c.toAddress}:${c.toPort}`),
  );
  const policy = new EgressPolicy(hostLists, connectTo);
  const log = opts.onLog ?? (() => {});
  const agent = new Agent({
    connect: createCheckedConnector({
      policy,
      resolve: opts.resolve ?? systemResolve,
      connectTimeoutMs: limits.connectTimeoutMs,
      extraCaCertificates: opts.extraCaCertificates,
    }),
    headersTimeout: limits.headersTimeoutMs,
    bodyTimeout: limits.bodyTimeoutMs,
  });
  const newJar = (saved?: string) => new CookieStore(saved, limits, (message) => log('warning', message));
  let cookies = Promise.resolve(opts.session).then(newJar);
  const slots = new Slots(limits.maxConcurrent);
  const stats = { requests: 0, bytesIn: 0, bytesOut: 0 };
  let closed = false;

  function takeBytesIn(n: number, where: string): void {
    if (stats.bytesIn + n > limits.maxBytesIn) {
      throw new BudgetExceeded('HTTP_BYTES_IN', limits.maxBytesIn, stats.bytesIn + n, `${where}: inbound bytes`);
    }
    stats.bytesIn += n;
  }

  /** Reads a body whole, within the response cap, the byte budget and the body deadline. */
  async function readBody(body: Dispatcher.ResponseData['body'], where: string): Promise<Uint8Array> {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(
      () => body.destroy(new HttpError('timeout', `${where}: the response body took longer than ${limits.bodyTimeoutMs} ms`)),
      limits.bodyTimeoutMs,
    );
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.byteLength;
        if (size > limits.maxResponseBytes) {
          throw new HttpError('too-large', `${where}: the response body exceeds ${limits.maxResponseBytes} bytes`);
        }
        takeBytesIn(chunk.byteLength, where);
        chunks.push(chunk);
      }
    } finally {
      clearTimeout(timer);
    }
    return Buffer.concat(chunks, size);
  }

  /** One request/response, no redirect handling. */
  async function exchange(method: string, url: URL, headers: [string, string][], body: Uint8Array | undefined) {
    const where = `${method} ${url.origin}`;
    if (closed) throw new HttpError('network', `${where}: the job's http capability is closed`);
    // Refused destinations stop here, before any budget or socket is used.
    policy.check(url.protocol, url.hostname, url.port ? Number(url.port) : defaultPort(url.protocol));
    const isCookie = ([name]: [string, string]) => name.toLowerCase() === 'cookie';
    const cookie = mergeCookieHeader(await (await cookies).header(url), headers.filter(isCookie).map(([, value]) => value));
    const others = headers.filter((header) => !isCookie(header));
    const sent: [string, string][] = cookie ? [...others, ['cookie', cookie]] : others;
    const outBytes = headBytes(method, url, sent) + (body?.byteLength ?? 0);
    if (stats.requests >= limits.maxRequests) {
      throw new BudgetExceeded('HTTP_REQUESTS', limits.maxRequests, stats.requests + 1, `${where}: requests`);
    }
    if (stats.bytesOut + outBytes > limits.maxBytesOut) {
      throw new BudgetExceeded('HTTP_BYTES_OUT', limits.maxBytesOut, stats.bytesOut + outBytes, `${where}: outbound bytes`);
    }
    stats.requests += 1;
    stats.bytesOut += outBytes;
    try {
      const res = await agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: method as Dispatcher.HttpMethod,
        headers: sent.flat(),
        body,
      });
      try {
        const resHeaders = flattenHeaders(res.headers);
        takeBytesIn(STATUS_LINE_BYTES + fieldBytes(resHeaders), where);
        if (resHeaders.length > limits.maxHeaders) {
          throw new HttpError('too-large', `${where}: the response has ${resHeaders.length} header fields, more than ${limits.maxHeaders}`);
        }
        const declared = Number(res.headers['content-length']);
        if (method !== 'HEAD' && declared > limits.maxResponseBytes) {
          throw new HttpError('too-large', `${where}: the response body of ${declared} bytes exceeds ${limits.maxResponseBytes} bytes`);
        }
        const resBody = await readBody(res.body, where);
        const setCookies = resHeaders.filter(([n]) => n === 'set-cookie').map(([, v]) => v);
        await (await cookies).store(url, setCookies);
        return { status: res.statusCode, headers: resHeaders, body: resBody };
      } finally {
        // An unread body is abandoned: that aborts its connection, which undici
        // reports as an 'error' event nobody needs.
        if (!res.body.readableEnded) res.body.on('error', () => {}).destroy();
      }
    } catch (err) {
      throw toHttpError(err, where);
    }
  }

  async function follow(req: HttpRequest): Promise<HttpResponse> {
    const valid = validateRequest(req, limits);
    let { method, url, headers, body } = valid;
    for (let hop = 0; ; hop += 1) {
      const res = await exchange(method, url, headers, body);
      const location = res.headers.find(([n]) => n === 'location')?.[1];
      if (!req.followRedirects || !REDIRECTS.has(res.status) || location === undefined) {
        return { status: res.status, url: url.href, headers: res.headers, body: res.body };
      }
      if (hop >= limits.maxRedirects) {
        throw new HttpError('network', `${method} ${url.origin}: more than ${limits.maxRedirects} redirects`);
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new HttpError('network', `${method} ${url.origin}: redirect to an invalid Location ${JSON.stringify(location.slice(0, 200))}`);
      }
      // Fetch standard: 303 becomes GET (but HEAD), and so do 301/302 after a POST.
      if ((res.status === 303 && method !== 'HEAD') || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
        headers = headers.filter(([n]) => !BODY_HEADERS.has(n.toLowerCase()));
      }
      // Credentials meant for one origin are not handed to another.
      if (next.origin !== url.origin) headers = headers.filter(([n]) => n.toLowerCase() !== 'authorization');
      url = next;
    }
  }

  let sessionWanted: boolean | undefined;
  return {
    stats,
    session: async () => (await cookies).serialize(),
    keepSession: (keep) => {
      sessionWanted = keep;
      // Forgetting the session also ends it for the rest of this job.
      if (!keep) cookies = Promise.resolve(newJar());
    },
    get sessionWanted() {
      return sessionWanted;
    },
    async send(req) {
      const release = await slots.acquire();
      try {
        return await follow(req);
      } catch (err) {
        const error = toHttpError(err, `${req.method} request`);
        if (REFUSALS.has(error.kind)) log('warning', error.message);
        throw error;
      } finally {
        release();
      }
    },
    async close() {
      closed = true;
      await agent.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The capability (host-api/capability.ts)

export default hostCapability({
  interface: 'cozy:konnector/http@0.1.0',
  functions: {
    send: {
      blocks: true,
      params: z.tuple([z.object({
        method: z.string(),
        url: z.string(),
        headers: z.array(z.tuple([z.string(), z.string()])),
        body: z.instanceof(Uint8Array).optional(),
        followRedirects: z.boolean(),
      }).strict()]),
      answer: (http: Http, request) => http.send(request),
    },
    keepSession: { blocks: false, params: z.tuple([z.boolean()]), answer: (http: Http, keep) => http.keepSession(keep) },
  },
  error: HttpError,
  limits: limitsSchema,
  create: (scope, limits) =>
    createHttp({
      session: scope.session,
      limits,
      allowedHosts: scope.manifest.allowed_hosts,
      ...scope.network,
      onLog: scope.note,
    }),
  usage: (http, limits) => ({
    httpRequests: { used: http.stats.requests, limit: limits.maxRequests },
    httpBytesIn: { used: http.stats.bytesIn, limit: limits.maxBytesIn },
    httpBytesOut: { used: http.stats.bytesOut, limit: limits.maxBytesOut },
  }),
});
