/**
 * The tests' HTTP server: a real one on loopback that hands each request, its
 * body read, to the test's handler, and keeps what it saw: the requests, and
 * the TCP connections it accepted (a refused request must never open one).
 */
import http from 'node:http';
import type net from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export type Handler = (req: SeenRequest, res: http.ServerResponse) => void;

export interface TestServerOptions {
  /** A fixed port (where an attacker would look: the stack's 6060, CouchDB's 5984); a free one by default. */
  port?: number;
  /**
   * Listen on `::` (dual stack), which 127.0.0.1, ::1, 0.0.0.0 and
   * ::ffff:127.0.0.1 all reach: egress tests prove that no spelling of
   * loopback gets through. 127.0.0.1 only by default.
   */
  anyAddress?: boolean;
  /** The server to listen with, e.g. an https.Server; a plain http one by default. */
  server?: http.Server;
}

export interface TestServer {
  port: number;
  /** TCP connections accepted so far. */
  connections: number;
  /** Every request, in arrival order. */
  requests: SeenRequest[];
  stop(): Promise<void>;
}

export async function startTestServer(handler: Handler = (_req, res) => res.end('ok'), options: TestServerOptions = {}): Promise<TestServer> {
  const server = options.server ?? http.createServer();
  const port = options.port ?? 0;
  const state: TestServer = {
    port,
    connections: 0,
    requests: [],
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => (state.connections += 1));
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const seen = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) };
      state.requests.push(seen);
      handler(seen, res);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new Error(`port ${port} is in use, and the test needs it: stop what holds it`) : error),
    );
    const host = options.anyAddress ? '::' : '127.0.0.1';
    server.listen({ port, host, ipv6Only: false }, resolve);
  });
  state.port = (server.address() as net.AddressInfo).port;
  return state;
}
