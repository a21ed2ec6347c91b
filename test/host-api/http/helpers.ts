/** Shared fixtures for the http capability tests: real servers on loopback, a fake DNS, socket watching. */
import dc from 'node:diagnostics_channel';
import type net from 'node:net';
import { afterEach, expect } from 'vitest';
import { createHttp, HttpError, parseConnectTo, type Http, type HttpErrorKind, type HttpLimits, type HttpOptions, type HttpRequest } from '../../../host-api/http/index.ts';
import { startTestServer, type Handler, type TestServer, type TestServerOptions } from '../../support/http-server.ts';

export const LIMITS: HttpLimits = {
  maxRequests: 100,
  maxBytesIn: 10_000_000,
  maxBytesOut: 1_000_000,
  maxResponseBytes: 1_000_000,
  maxRequestBodyBytes: 100_000,
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  maxRedirects: 5,
  maxConcurrent: 4,
  maxHeaders: 64,
  maxCookies: 100,
  maxSessionBytes: 64 * 1024,
};

const servers: TestServer[] = [];
const https: Http[] = [];

afterEach(async () => {
  await Promise.all(https.splice(0).map((h) => h.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

/** The kit's test server on every loopback address (see `anyAddress`), stopped after the test. */
export async function startServer(handler?: Handler, options: Omit<TestServerOptions, 'anyAddress'> = {}): Promise<TestServer> {
  const server = await startTestServer(handler, { ...options, anyAddress: true });
  servers.push(server);
  return server;
}

/** A DNS stand-in: answers from the table (a function answers per call), throws ENOTFOUND otherwise. */
export function fakeResolver(table: Record<string, string[] | ((call: number) => string[])>) {
  const calls: string[] = [];
  const resolve = async (host: string): Promise<string[]> => {
    calls.push(host);
    const answer = table[host];
    if (answer === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return typeof answer === 'function' ? answer(calls.filter((h) => h === host).length) : answer;
  };
  return { calls, resolve };
}

export type TestHttpOptions = Omit<Partial<HttpOptions>, 'limits' | 'connectTo'> & {
  limits?: Partial<HttpLimits>;
  /** curl --connect-to strings. */
  connectTo?: string[];
};

/** A job's http capability, closed after the test; its log lines are collected. Unknown names never hit real DNS. */
export function makeHttp(opts: TestHttpOptions = {}) {
  const logs: string[] = [];
  const http = createHttp({
    resolve: fakeResolver({}).resolve,
    ...opts,
    limits: { ...LIMITS, ...opts.limits },
    connectTo: opts.connectTo?.map(parseConnectTo),
    onLog: (level, message) => logs.push(`${level}: ${message}`),
  });
  https.push(http);
  return { http, logs };
}

export function get(url: string, extra: Partial<HttpRequest> = {}): HttpRequest {
  return { method: 'GET', url, headers: [], followRedirects: true, ...extra };
}

export async function expectHttpError(promise: Promise<unknown>, kind: HttpErrorKind, message?: RegExp): Promise<HttpError> {
  const err = await promise.then(
    () => expect.unreachable(`expected an HttpError of kind ${kind}`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HttpError);
  const httpError = err as HttpError;
  expect({ kind: httpError.kind, message: httpError.message }).toMatchObject({ kind });
  if (message) expect(httpError.message).toMatch(message);
  return httpError;
}

export function text(body: Uint8Array): string {
  return Buffer.from(body).toString('utf8');
}

/**
 * Watches every outgoing TCP socket Node creates (`net.connect`) until stopped.
 * `lookups` lists the addresses the pinned lookup handed to each socket;
 * `stopBeforeConnect` destroys such a socket before it connects, so a test can
 * see where a connection WOULD go without sending a packet off the machine.
 */
export function watchSockets(opts: { stopBeforeConnect?: boolean } = {}) {
  const sockets: net.Socket[] = [];
  const lookups: { host: string; address: string }[] = [];
  const onSocket = (message: unknown) => {
    const socket = (message as { socket: net.Socket }).socket;
    sockets.push(socket);
    socket.on('lookup', (err: Error | null, address: string, _family: number, host: string) => {
      if (err) return;
      lookups.push({ host, address });
      if (opts.stopBeforeConnect) socket.destroy(new Error(`stopped by the test before connecting to ${address}`));
    });
  };
  dc.subscribe('net.client.socket', onSocket);
  return {
    sockets,
    lookups,
    stop: () => dc.unsubscribe('net.client.socket', onSocket),
  };
}
