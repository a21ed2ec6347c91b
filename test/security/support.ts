/**
 * Fixtures of the hostile-konnector suite: the vendor site the benign twins
 * talk to (the kit's test server, which counts every TCP connection: a refused
 * request must never open one), and a job runner that hands back what the
 * guest saw.
 */
import dc from 'node:diagnostics_channel';
import type http from 'node:http';
import type net from 'node:net';
import { Readable } from 'node:stream';
import { constants as zlibConstants, createBrotliCompress, createGzip } from 'node:zlib';
import { parseConnectTo } from '../../host-api/http/index.ts';
import type { LogLine } from '../../host-api/log.ts';
import { runJob, type JobEnvironment, type JobReport } from '../../runner/sandbox/job.ts';
import type { LoadedKonnector } from '../../runner/sandbox/loader.ts';
import { startTestServer } from '../support/http-server.ts';

/** What the vendor site's streaming routes wrote before the client went away. */
export interface Stream {
  written: number;
  /** Resolves when the response is over: ended, or closed by the client. */
  closed: Promise<void>;
}

export const BILLS = [
  { vendor: 'Vendor', vendorRef: 'B-001', amount: 12.5, currency: 'EUR', date: '2024-01-31' },
  { vendor: 'Vendor', vendorRef: 'B-002', amount: 13.75, currency: 'EUR', date: '2024-02-29' },
  { vendor: 'Vendor', vendorRef: 'B-003', amount: 9.99, currency: 'EUR', date: '2024-03-31' },
];

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** Writes `total` bytes as fast as the client reads them, stopping when it goes away. */
function stream(res: http.ServerResponse, total: number, declareLength: boolean): Stream {
  const state: Stream = { written: 0, closed: new Promise((resolve) => res.on('close', resolve)) };
  res.writeHead(200, { 'content-type': 'application/octet-stream', ...(declareLength ? { 'content-length': total } : {}) });
  const pump = () => {
    while (state.written < total && !res.destroyed) {
      const chunk = CHUNK.subarray(0, Math.min(CHUNK.length, total - state.written));
      state.written += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
  return state;
}

const COMPRESSORS = {
  gzip: () => createGzip(),
  // Brotli's default quality (11) takes minutes over a GiB; 4 packs a GiB of zeros in 2 kB all the same.
  br: () => createBrotliCompress({ params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 4 } }),
};

/** `total` zero bytes through gzip or brotli, produced as the client reads. */
function compressedZeros(res: http.ServerResponse, total: number, coding: keyof typeof COMPRESSORS): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': coding });
  const zeros = Buffer.alloc(1024 * 1024);
  let left = total;
  Readable.from((function* produce() {
    while (left > 0) {
      const chunk = zeros.subarray(0, Math.min(zeros.length, left));
      left -= chunk.length;
      yield chunk;
    }
  })()).pipe(COMPRESSORS[coding]()).pipe(res);
}

/** One byte every `everyMs` ms, `total` of them (forever when not given). */
function drip(res: http.ServerResponse, total: number, everyMs: number): void {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.flushHeaders();
  let sent = 0;
  const timer = setInterval(() => {
    res.write('.');
    if (++sent >= total) {
      clearInterval(timer);
      res.end();
    }
  }, everyMs);
  res.on('close', () => clearInterval(timer));
}

/**
 * The vendor site (reached as vendor.test through the operator's connect-to):
 *   /ping                    "pong"
 *   /bills                   a JSON array of bills
 *   /login?as=NAME           sets the cookie session=NAME
 *   /whoami                  the cookie header the request carried
 *   /cookies?n=N[&prefix=P]  sets N cookies P0..PN-1 (20-byte values) in one response
 *   /echo                    the request's headers as JSON
 *   /go?to=URL               302 to URL
 *   /loop                    302 to itself
 *   /stream?bytes=N[&declared]  N bytes (1 GiB by default), produced as the client reads
 *   /drip?bytes=N&every=MS   one byte every MS ms (forever without bytes)
 *   /stall                   never answers
 *   /gzip?bytes=N            N zero bytes, gzip-encoded as they are produced (1 GiB is a 1 MB bomb)
 *   /br?bytes=N              the same brotli-encoded (1 GiB is a 2 kB bomb)
 */
export async function startVendorSite() {
  const streams: Stream[] = [];
  const server = await startTestServer((req, res) => {
    const url = new URL(req.url, 'http://vendor.test');
    const param = (name: string) => url.searchParams.get(name);
    switch (url.pathname) {
      case '/ping':
        return res.end('pong');
      case '/bills':
        return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(BILLS));
      case '/login':
        return res.writeHead(200, { 'set-cookie': `session=${param('as')}; Path=/; HttpOnly` }).end('logged in');
      case '/whoami':
        return res.end(req.headers.cookie ?? 'no cookie');
      case '/cookies': {
        const prefix = param('prefix') ?? 'c';
        const cookies = Array.from({ length: Number(param('n')) }, (_, i) => `${prefix}${i}=${'v'.repeat(20)}; Path=/`);
        return res.writeHead(200, { 'set-cookie': cookies }).end('set');
      }
      case '/echo':
        return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(req.headers));
      case '/go':
        return res.writeHead(302, { location: param('to')! }).end();
      case '/loop':
        return res.writeHead(302, { location: '/loop' }).end();
      case '/stream':
        return void streams.push(stream(res, Number(param('bytes') ?? 2 ** 30), url.searchParams.has('declared')));
      case '/drip':
        return drip(res, Number(param('bytes') ?? Infinity), Number(param('every') ?? 100));
      case '/stall':
        return;
      case '/gzip':
      case '/br':
        return compressedZeros(res, Number(param('bytes')), url.pathname === '/gzip' ? 'gzip' : 'br');
      default:
        return res.writeHead(404).end('not found');
    }
  }, { anyAddress: true });
  // Mutated in place: `connections` and `requests` stay live.
  return Object.assign(server, { streams, connectTo: parseConnectTo(`vendor.test:80:127.0.0.1:${server.port}`) });
}

/** One line a hostile konnector logged: the outcome of one attempt as the guest saw it. */
export type Outcome = Record<string, unknown> & { ok?: boolean; kind?: string; message?: string };

export interface HostileRun {
  report: JobReport;
  /** The konnector's JSON lines, in order. */
  outcomes: Outcome[];
  /** What the runner logged about the job: refusals, limits, crashes. */
  runnerLines: LogLine[];
  /** Every line of the job's log, the konnector's and the runner's. */
  lines: LogLine[];
  /** TCP sockets the host created while the job ran, but its own to CouchDB (meaningful when jobs run one at a time). */
  sockets: number;
}

let jobs = 0;

/** Runs one job of a hostile konnector on the suite's CouchDB and collects what it saw and did. */
export async function runHostile(
  konnector: LoadedKonnector,
  fields: Record<string, unknown>,
  env: JobEnvironment,
  account = `account-${++jobs}`,
  instance = 'hostile.cozy.localhost',
): Promise<HostileRun> {
  const lines: LogLine[] = [];
  // The host reads and writes CouchDB for the job (its session, the konnector's documents): those sockets are not the konnector's.
  const couch = new URL(env.couchUrl);
  let sockets = 0;
  const onSocket = (message: unknown) => {
    sockets += 1;
    const { socket } = message as { socket: net.Socket };
    socket.once('connect', () => {
      if (socket.remotePort === Number(couch.port) && socket.remoteAddress === couch.hostname) sockets -= 1;
    });
  };
  dc.subscribe('net.client.socket', onSocket);
  let report: JobReport;
  try {
    report = await runJob(konnector, { accountId: account, instance, fields }, { ...env, onLog: (line) => lines.push(line) });
  } finally {
    dc.unsubscribe('net.client.socket', onSocket);
  }
  const outcomes = lines
    .filter((l) => l.source === 'konnector' && l.message.startsWith('{'))
    .map((l) => JSON.parse(l.message) as Outcome);
  return { report, outcomes, runnerLines: lines.filter((l) => l.source === 'runner'), lines, sockets };
}

/** A short description of an outcome for the table: `denied: egress policy: ...`. */
export function describeOutcome(outcome: Outcome | undefined): string {
  if (!outcome) return 'no outcome logged';
  if (outcome.ok === false) return `${outcome.kind}: ${outcome.message}`;
  if ('status' in outcome) return `${String(outcome.status)} ${String(outcome.text ?? '').slice(0, 40)}`;
  return JSON.stringify(outcome);
}
