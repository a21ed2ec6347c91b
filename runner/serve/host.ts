/**
 * One worker host: the job store (CouchDB), the konnectors, the queue
 * (in-process, or BullMQ on Redis), the processor, the scheduler, the
 * sweeper and the HTTP API, started and stopped in order.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Server } from 'node:http';
import { startEmbeddedCouchDB, type CouchServer } from '../../host-api/couchdb-server.ts';
import type { JobEnvironment } from '../sandbox/job.ts';
import { defaultLimits, type Limits } from '../limits.ts';
import { createApi, listen } from './api.ts';
import { sandboxExecutor, type JobExecutor } from './executor.ts';
import { KonnectorRegistry } from './konnectors.ts';
import { ServeMetrics } from './metrics.ts';
import { COZY_STACK_RETRY, type RetryPolicy } from './policy.ts';
import { JobProcessor } from './processor.ts';
import { EmbeddedQueue, type HostLogger, type JobQueue } from './queue.ts';
import { TriggerScheduler } from './scheduler.ts';
import { openStore, type Store } from './store.ts';
import { createMyAccounts, defaultMyAccountsOptions, type MyAccountsOptions } from './web/index.ts';
import { LiveLogs } from './web/live.ts';
import { SandboxPool } from '../sandbox/pool.ts';

export interface ServeOptions {
  konnectorsDir: string;
  /** CouchDB URL; without it an embedded CouchDB-API server keeps its data under `dataDir`/couchdb. */
  couchUrl?: string;
  dataDir: string;
  /** Redis URL: jobs go through BullMQ and any number of hosts share them. */
  redisUrl?: string;
  /** Jobs run at once by this host (cozy-stack: 2 x CPUs). */
  concurrency: number;
  listenHost: string;
  port: number;
  token: string;
  limits: Limits;
  /** How the jobs' HTTP reaches test or vendor servers (see `konnector run --connect-to`). */
  connectTo?: JobEnvironment['connectTo'];
  /** The operator's allowed hosts (see `konnector run --allow-host`). */
  allowHosts?: JobEnvironment['allowHosts'];
  resolve?: JobEnvironment['resolve'];
  /** Prefix of the host's database names (cozy-stack style: <prefix>/io-cozy-jobs). */
  dbPrefix: string;
  leaseMs: number;
  retry: RetryPolicy;
  maxInterruptions: number;
  /** How long a drain lets running jobs finish. */
  graceMs: number;
  schedulerTickMs: number;
  /** How often other hosts' trigger changes are picked up. */
  schedulerReloadMs: number;
  executor: JobExecutor;
  /** The queue, when the caller brings its own (the benchmark times each enqueue); default embedded, or BullMQ with `redisUrl`. */
  queue?: JobQueue;
  log: HostLogger;
  /** The web app's sign-in mail, public address, limits and clock (runner/serve/web). */
  myAccounts: MyAccountsOptions;
}

export const defaultServeOptions = (): Omit<ServeOptions, 'konnectorsDir' | 'token'> => ({
  dataDir: path.resolve('.data/serve'),
  concurrency: 2 * availableParallelism(),
  listenHost: '127.0.0.1',
  port: 8088,
  limits: defaultLimits,
  dbPrefix: 'konnector-serve',
  leaseMs: 30_000,
  retry: COZY_STACK_RETRY,
  maxInterruptions: 3,
  // cozy-stack's job timeout is 300 s: a drain waits for a whole job by default.
  graceMs: 300_000,
  schedulerTickMs: 1000,
  schedulerReloadMs: 10_000,
  executor: sandboxExecutor,
  log: (level, message) => process.stderr.write(`${new Date().toISOString()} ${level.padEnd(7)} ${message}\n`),
  myAccounts: defaultMyAccountsOptions(),
});

export interface ServeHost {
  url: string;
  hostId: string;
  /** The CouchDB the host uses (the embedded one's when no URL was given). */
  couchUrl: string;
  store: Store;
  processor: JobProcessor;
  metrics: ServeMetrics;
  /** Stops taking jobs, lets running ones finish for `graceMs`, gives the rest back to the queue, and stops. */
  drain(graceMs?: number): Promise<{ finished: number; requeued: number }>;
}

async function createQueue(options: ServeOptions): Promise<JobQueue> {
  if (options.queue) return options.queue;
  if (!options.redisUrl) return new EmbeddedQueue(options.concurrency, options.log);
  const { BullQueue } = await import('./bull-queue.ts');
  return BullQueue.connect(options.redisUrl, options.concurrency, options.dbPrefix, options.log);
}

export async function startServeHost(options: ServeOptions): Promise<ServeHost> {
  const hostId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const stack: Array<() => Promise<void>> = [];
  const unwind = async () => {
    for (const step of stack.reverse()) await step().catch((e: Error) => options.log('error', `while stopping: ${e.message}`));
  };
  try {
    let couchUrl = options.couchUrl;
    if (!couchUrl) {
      const embedded: CouchServer = await startEmbeddedCouchDB({ dataDir: path.join(options.dataDir, 'couchdb') });
      stack.push(() => embedded.stop());
      couchUrl = embedded.url;
    }
    const store = await openStore(couchUrl, options.dbPrefix);
    // An operator's first start has no konnectors yet: an empty catalog, and what to do next.
    await mkdir(options.konnectorsDir, { recursive: true });
    const registry = new KonnectorRegistry(options.konnectorsDir, options.limits, {
      preload: true,
      onPreloadError: (slug, error) => options.log('warning', `konnector ${slug} cannot be loaded, its jobs will fail until its artifact is replaced: ${error.message}`),
    });
    await registry.scan();
    if (registry.list().length === 0) {
      options.log('info', `no konnectors in ${options.konnectorsDir} yet: build one there, for instance ` +
        `\`konnector build konnectors/examples/example-bills --out ${path.join(options.konnectorsDir, 'example-bills.kwasm')}\`; ` +
        'the host takes new artifacts without a restart');
    }
    const queue = await createQueue(options);
    stack.push(() => queue.close());
    // One warm worker per concurrent job: a job starts without spawning a thread. QuickJS artifacts run on
    // workers of their own, started by the first jobs that need them (most hosts hold components only).
    const pools = { 'componentize-js': new SandboxPool(options.concurrency), quickjs: new SandboxPool(options.concurrency, 'quickjs') };
    await pools['componentize-js'].warm();
    for (const pool of Object.values(pools)) stack.push(() => pool.close());
    const metrics = new ServeMetrics(() => store.countJobsByState());
    const liveLogs = new LiveLogs();
    const processor = new JobProcessor({
      store, registry, queue, metrics, hostId,
      executor: options.executor,
      env: { couchUrl, limits: options.limits, connectTo: options.connectTo, allowHosts: options.allowHosts, resolve: options.resolve, pools, filesDir: path.join(options.dataDir, 'files') },
      leaseMs: options.leaseMs,
      retry: options.retry,
      maxInterruptions: options.maxInterruptions,
      log: options.log,
      onLogLine: liveLogs.publish,
    });
    await queue.start((message) => processor.process(message));
    await processor.sweep({ startup: true, stuckForMs: 0 });
    const sweeper = setInterval(() => {
      processor.sweep({ startup: false, stuckForMs: options.leaseMs })
        .catch((e: Error) => options.log('warning', `sweep failed: ${e.message}`));
    }, Math.max(100, Math.floor(options.leaseMs / 2)));
    stack.push(async () => clearInterval(sweeper));
    const scheduler = new TriggerScheduler(store, processor, options.log, { tickMs: options.schedulerTickMs, reloadMs: options.schedulerReloadMs });
    await scheduler.start();
    stack.push(() => scheduler.stop());

    let draining = false;
    let listenUrl = '';
    const web = await createMyAccounts({ store, registry, processor, scheduler, liveLogs, token: options.token, couchUrl,
      dbPrefix: options.dbPrefix, draining: () => draining, log: options.log, options: options.myAccounts, listenUrl: () => listenUrl });
    const server: Server = createApi({ store, registry, processor, scheduler, queue, metrics, hostId, token: options.token,
      concurrency: options.concurrency, draining: () => draining, web });
    const url = await listen(server, options.listenHost, options.port);
    listenUrl = url;
    stack.push(() => new Promise((resolve) => server.close(() => resolve())));
    stack.push(async () => void server.closeAllConnections());

    let drained: Promise<{ finished: number; requeued: number }> | undefined;
    return {
      url, hostId, couchUrl, store, processor, metrics,
      drain(graceMs = options.graceMs) {
        drained ??= (async () => {
          draining = true;
          await scheduler.stop();
          const result = await processor.drain(graceMs);
          await unwind();
          return result;
        })();
        return drained;
      },
    };
  } catch (error) {
    await unwind();
    throw error;
  }
}
