/**
 * Helpers of the worker host tests: the test konnector and the API client
 * (test/support/, shared with bench/load.ts), hosts in this process or as real
 * `konnector serve` processes, a slow vendor.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiClient as hostApiClient, type Api } from '../support/serve-api.ts';
import { LimitsSchema } from '../../runner/limits.ts';
import { defaultServeOptions, startServeHost, type ServeHost, type ServeOptions } from '../../runner/serve/host.ts';
import { repoRoot } from '../support/artifacts.ts';
import { storedDocs } from '../support/couch.ts';
import { startTestServer, type TestServer } from '../support/http-server.ts';

export { konnectorsDir, serveWorkerArtifact, SLUG } from '../support/serve-worker.ts';
export type { Api } from '../support/serve-api.ts';

/** What the serve-worker konnector saved in the instance: one document per job, by job id, counting the job's runs. */
export async function savedRuns(couchUrl: string, instance: string): Promise<Map<string, number>> {
  const docs = await storedDocs(couchUrl, instance, 'io.cozy.serveruns');
  return new Map(docs.map((doc) => [doc._id, doc.runs as number]));
}

export const TOKEN = 'test-token-0123456789abcdef';

/** Limits for tests: a small memory cap so a memory hog ends fast. */
export const TEST_LIMITS = LimitsSchema.parse({ memoryBytes: 64 * 1024 * 1024, wallClockMs: 60_000 });

export async function startTestHost(overrides: Partial<ServeOptions> & Pick<ServeOptions, 'konnectorsDir'>): Promise<ServeHost> {
  const dataDir = overrides.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'serve-host-')));
  return startServeHost({
    ...defaultServeOptions(),
    dataDir,
    port: 0,
    token: TOKEN,
    limits: TEST_LIMITS,
    leaseMs: 3000,
    retry: { maxAttempts: 2, baseDelayMs: 50 },
    schedulerTickMs: 100,
    schedulerReloadMs: 1000,
    log: () => {},
    ...overrides,
  });
}

/** The host's API, with the test token unless told otherwise. */
export const apiClient = (baseUrl: string, token: string | null = TOKEN) => hostApiClient(baseUrl, token);

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Waits until a job is done or errored, and returns it. */
export function settledJob(api: Api, id: string, timeoutMs?: number) {
  return waitFor(`job ${id} to end`, async () => {
    const { body } = await api('GET', `/jobs/${id}`);
    return body.state === 'done' || body.state === 'errored' ? body : null;
  }, timeoutMs);
}

/** A vendor that answers GET /wait?ms=N after N ms. */
export function startSlowVendor(): Promise<TestServer> {
  return startTestServer((req, res) => {
    const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 0);
    const timer = setTimeout(() => res.end('ok'), ms);
    res.on('close', () => clearTimeout(timer));
  });
}

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** A real `konnector serve` process; resolves once it listens. */
export async function spawnServe(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/konnector.mjs'), 'serve', '--port', '0', ...args], {
    cwd: repoRoot,
    env: { ...process.env, COUCHDB_URL: '', KONNECTOR_SERVE_TOKEN: TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await Promise.race([
    waitFor('konnector serve to listen', async () => /listening on (http:\/\/\S+)/.exec(output)?.[1], 60_000),
    exited.then((code) => {
      throw new Error(`konnector serve exited (${code}) before listening:\n${output}`);
    }),
  ]);
  return { url, child, output: () => output, exited };
}

/** A real redis-server on a free loopback port, without persistence. */
export async function startRedis(dir: string): Promise<{ url: string; port: number; stop(): Promise<void> }> {
  const port = await new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port: free } = server.address() as AddressInfo;
      server.close(() => resolve(free));
    });
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor('redis-server to listen', () => new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  }), 10_000);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
