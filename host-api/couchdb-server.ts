/**
 * An embedded CouchDB-API server: pouchdb-server (LevelDB storage) in a child process on 127.0.0.1.
 *
 * Layout of dataDir:
 *   databases/                  the LevelDB databases (persist across restarts); "alice-cozy-example/io-cozy-bills"
 *                               is the folder databases/alice-cozy-example/io-cozy-bills, as in CouchDB
 *   pouchdb-server.config.json  rewritten at each start (the /_config backing file)
 *   pouchdb-server.log          the server's CouchDB-style log
 *   pouchdb-server.out          the child's stdout and stderr
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export interface CouchServer {
  /** Base URL without credentials and without a trailing slash (the server runs in admin-party mode on loopback). */
  url: string;
  /** Stops the server; resolves once the process has exited. Safe to call more than once. */
  stop(): Promise<void>;
}

export type CouchServerErrorKind = 'port-in-use' | 'exited' | 'timeout';

export class CouchServerError extends Error {
  readonly kind: CouchServerErrorKind;
  constructor(kind: CouchServerErrorKind, message: string) {
    super(message);
    this.name = 'CouchServerError';
    this.kind = kind;
  }
}

export interface EmbeddedCouchDBOptions {
  dataDir: string;
  /** A fixed port; by default a free one is picked (and re-picked if another process takes it first). */
  port?: number;
  /** How long to wait for the server to answer GET / (default 30 s: start-up is well under a second, CI is noisy). */
  startTimeoutMs?: number;
}

const HOST = '127.0.0.1';
const FREE_PORT_ATTEMPTS = 3;
const STOP_GRACE_MS = 5_000;
const PROBE_INTERVAL_MS = 50;
const OUTPUT_TAIL_CHARS = 2_000;

const POUCHDB_SERVER_BIN = createRequire(import.meta.url).resolve('pouchdb-server/bin/pouchdb-server');

// Keeps CouchDB's database names and ties the child's life to this process (see the launcher's comment).
const LAUNCHER = fileURLToPath(new URL('./couchdb-server-launcher.cjs', import.meta.url));

export async function startEmbeddedCouchDB(opts: EmbeddedCouchDBOptions): Promise<CouchServer> {
  const dataDir = path.resolve(opts.dataDir);
  await mkdir(path.join(dataDir, 'databases'), { recursive: true });
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const attempts = opts.port === undefined ? FREE_PORT_ATTEMPTS : 1;
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await findFreePort());
    try {
      if (!(await isPortFree(port))) throw portInUse(port);
      return await launch(dataDir, port, startTimeoutMs);
    } catch (e) {
      // A picked port can be taken between the check and the child's bind: pick another.
      if (e instanceof CouchServerError && e.kind === 'port-in-use' && attempt < attempts) continue;
      throw e;
    }
  }
}

async function launch(dataDir: string, port: number, startTimeoutMs: number): Promise<CouchServer> {
  // A fresh uuid per start lets the readiness probe tell our server from another one on the same port.
  const uuid = randomUUID();
  const configPath = path.join(dataDir, 'pouchdb-server.config.json');
  const outPath = path.join(dataDir, 'pouchdb-server.out');
  const config = { couchdb: { uuid }, log: { file: path.join(dataDir, 'pouchdb-server.log') } };
  await writeFile(configPath, JSON.stringify(config, null, 2) + '\n');

  const env = { ...process.env };
  delete env.NODE_OPTIONS; // loaders of the parent (tsx, vitest) are not for pouchdb-server
  const child = spawn(
    process.execPath,
    [LAUNCHER, POUCHDB_SERVER_BIN, '-p', String(port), '-o', HOST,
      '-d', path.join(dataDir, 'databases'), '-c', configPath, '-n'],
    { cwd: dataDir, env, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const output = captureOutput(child, outPath);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`));
    child.once('error', (e) => resolve(`spawn error: ${e.message}`));
  });
  let exitStatus: string | undefined;
  void exited.then((status) => (exitStatus = status));

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (exitStatus === undefined) {
        child.kill('SIGTERM');
        const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(kill);
      }
      await output.closed;
    })());

  const url = `http://${HOST}:${port}`;
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    const state = await probe(url, uuid);
    if (state === 'ours') return { url, stop };
    if (state === 'other') {
      await stop();
      throw portInUse(port);
    }
    if (exitStatus !== undefined) {
      await output.closed;
      // pouchdb-server crashes on EADDRINUSE (it prints no message with -n): tell that case apart.
      if (!(await isPortFree(port))) throw portInUse(port);
      throw new CouchServerError('exited',
        `pouchdb-server exited during start-up (${exitStatus}); its output (${outPath}) ends with:\n${output.tail()}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new CouchServerError('timeout',
        `pouchdb-server did not answer GET ${url}/ within ${startTimeoutMs} ms; see ${outPath} and the log beside it`);
    }
    await sleep(PROBE_INTERVAL_MS);
  }
}

/** Sends the child's stdout and stderr to outPath, keeping the last characters for start-up diagnostics. */
function captureOutput(child: ChildProcess, outPath: string): { tail(): string; closed: Promise<void> } {
  const file = createWriteStream(outPath, { flags: 'a' });
  let tail = '';
  let open = 2;
  const closed = new Promise<void>((resolve) => {
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        file.write(chunk);
        tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
      });
      stream?.once('close', () => {
        if (--open === 0) file.end(resolve);
      });
    }
  });
  // The child's stdin is only its lifeline (see LAUNCHER): an EPIPE there is not our error.
  child.stdin?.on('error', () => {});
  return { tail: () => tail, closed };
}

async function probe(url: string, uuid: string): Promise<'ours' | 'other' | 'down'> {
  let res: Response;
  try {
    res = await fetch(`${url}/`, { signal: AbortSignal.timeout(2_000) });
  } catch {
    return 'down';
  }
  // Something answers HTTP on this port: it is ours only if it echoes this start's uuid.
  const body: unknown = await res.json().catch(() => null);
  return (body as { uuid?: unknown } | null)?.uuid === uuid ? 'ours' : 'other';
}

function portInUse(port: number): CouchServerError {
  return new CouchServerError('port-in-use', `pouchdb-server cannot listen on ${HOST}:${port}: the port is already in use`);
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
