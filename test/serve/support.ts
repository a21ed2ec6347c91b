/**
 * Helpers of the worker host tests: the test konnector built once per source
 * (cached on disk across test files), hosts in this process or as real
 * `konnector serve` processes, a slow vendor, and an API client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, stat } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildKonnector } from '../../runner/build/index.ts';
import { LimitsSchema } from '../../runner/limits.ts';
import { defaultServeOptions, startServeHost, type ServeHost, type ServeOptions } from '../../runner/serve/host.ts';
import { fixtureDir, repoRoot } from '../support/artifacts.ts';

export const TOKEN = 'test-token-0123456789abcdef';
export const SLUG = 'serve-worker';

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)])));
  return nested.flat().sort();
}

/**
 * The serve-worker konnector, built with the real build. Keyed by its sources,
 * the build pipeline and the lockfile, so every test file reuses one build.
 */
export async function serveWorkerArtifact(): Promise<string> {
  const inputs = [...(await filesUnder(fixtureDir(SLUG))), ...(await filesUnder(path.join(repoRoot, 'runner/build'))),
    path.join(repoRoot, 'package-lock.json')];
  const hash = createHash('sha256');
  for (const file of inputs) hash.update(file).update(await readFile(file));
  const cacheDir = path.join(os.tmpdir(), 'konnector-serve-test-artifacts');
  const file = path.join(cacheDir, `${SLUG}-${hash.digest('hex').slice(0, 16)}.kwasm`);
  if (!(await stat(file).catch(() => null))) {
    await mkdir(cacheDir, { recursive: true });
    const partial = `${file}.${process.pid}.partial`;
    await buildKonnector(fixtureDir(SLUG), partial);
    await rename(partial, file);
  }
  return file;
}

/** A konnectors directory holding the serve-worker artifact. */
export async function konnectorsDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'serve-konnectors-'));
  await copyFile(await serveWorkerArtifact(), path.join(dir, `${SLUG}.kwasm`));
  return dir;
}

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

export interface ApiAnswer<T = any> {
  status: number;
  body: T;
}

/** The host's API, with the test token unless told otherwise. */
export function apiClient(baseUrl: string, token: string | null = TOKEN) {
  return async <T = any>(method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer<T>> => {
    const res = await fetch(`${baseUrl}${route}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // Prometheus text, or an empty 204.
    }
    return { status: res.status, body: parsed as T };
  };
}

export type Api = ReturnType<typeof apiClient>;

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

/** A vendor that answers GET /wait?ms=N after N ms; counts the requests it got. */
export async function startSlowVendor(): Promise<{ port: number; requests: () => number; stop(): Promise<void> }> {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
    const timer = setTimeout(() => res.end('ok'), ms);
    res.on('close', () => clearTimeout(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests: () => requests,
    stop: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
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
