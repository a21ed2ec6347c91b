/**
 * Benchmarks of the worker host (`konnector serve`) against the baseline
 * cozy-stack uses today: one `node` process per job, running the same
 * konnector code (bundled for Node, its host calls answered in that process
 * by the same http and documents code) against the same vendor site and
 * CouchDB. Both sides are measured in the same run:
 *
 *   - job start latency: from enqueue (the job's document written and the
 *     job handed to the queue, or straight to a free slot) to the
 *     konnector's first host call (its first log line, as the host serves
 *     it); example-bills, one job at a time. The baseline's start is
 *     cozy-stack's: the job marked running in CouchDB, then the process
 *     spawned. Also
 *     from POST /jobs, which adds the API, the account check and the job's
 *     first write, work the baseline's spawn leaves out;
 *   - memory per concurrently running job: RSS growth per job while
 *     `concurrency` example-bills jobs wait on the vendor's bills page;
 *   - throughput of a trivial konnector (one log line), jobs/s at the host's
 *     concurrency (2 x CPUs, as cozy-stack).
 *
 * Run: node --import tsx bench/serve.ts [options]   (prints a Markdown table; --help lists the options)
 *
 * With --profile, the throughput run also says where each job's time and CPU
 * go: CouchDB requests per job by kind (counted on the host's fetch), the
 * CPU of the host process (main thread, other threads) and of pouchdb-server
 * per job, and the median time of each phase of a job.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';
import nano from 'nano';
import { startEmbeddedCouchDB } from '../host-api/couchdb-server.ts';
import { konnectorFolderPath } from '../host-api/files/index.ts';
import { parseConnectTo } from '../host-api/http/index.ts';
import { startVendorSite } from '../konnectors/examples/example-bills/vendor-site.mts';
import { buildKonnector } from '../runner/compile/index.ts';
import { entryModuleSource, GUEST_RESOLUTION } from '../runner/compile/bundle.ts';
import { runJob } from '../runner/sandbox/job.ts';
import type { JobExecutor } from '../runner/serve/executor.ts';
import { defaultServeOptions, startServeHost } from '../runner/serve/host.ts';
import { EmbeddedQueue, type QueueMessage } from '../runner/serve/queue.ts';
import { quantile } from './quantile.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const now = () => performance.timeOrigin + performance.now();
const INSTANCE = 'bench.cozy.example';
const VENDOR_HOST = 'energy.example';

export interface ServeBenchOptions {
  /** Jobs of the latency run, per side. */
  latencyJobs: number;
  /** Jobs of the throughput run, per side. */
  throughputJobs: number;
  concurrency: number;
  /** Runs to leave out (the table shows a dash for them). */
  skip?: ReadonlySet<'latency' | 'memory' | 'throughput' | 'node'>;
  /** POST /jobs requests in flight at once in the throughput run (default 1: each job posted once the previous one is answered). */
  clients?: number;
  /** Measure where the throughput run's time goes (see the file's comment). */
  profile?: boolean;
  /** Write a CPU profile of the host's main thread during the wasm throughput run to this file (.cpuprofile). */
  cpuProfile?: string;
}

export interface ServeBenchResult {
  latencyMs: { wasm: { median: number; p95: number }; node: { median: number; p95: number }; wasmFromApi: { median: number; p95: number } };
  memoryPerJobMiB: { wasm: number; node: number };
  jobsPerSecond: { wasm: number; node: number };
  /** With `profile`: the throughput run's breakdown, as Markdown. */
  profile?: string;
  markdown: string;
}

/** CouchDB requests by kind: the database (host prefix or an instance's) and what was done. */
function couchRequestKind(method: string, url: URL): string {
  // The database's name is the path's first segment ("konnector-serve%2Fio-cozy-jobs": its "/" encoded).
  const [db = '', first] = url.pathname.slice(1).split('/').map(decodeURIComponent);
  const doctype = db.replace(/^.*\//, '');
  const what = first === undefined || first === '' ? '(database)' : first.startsWith('_') ? first : 'doc';
  return `${method} ${doctype || '(server)'} ${what}`;
}

/** Counts the process's fetch requests to CouchDB by kind, with the time each kind took. */
function countCouchRequests(couchUrl: string) {
  const origin = new URL(couchUrl).origin;
  const counts = new Map<string, { n: number; ms: number }>();
  const original = globalThis.fetch;
  let counting = false;
  globalThis.fetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    if (!counting || url.origin !== origin) return original(input, init);
    const kind = couchRequestKind((init?.method ?? 'GET').toUpperCase(), url);
    const started = performance.now();
    try {
      return await original(input, init);
    } finally {
      const entry = counts.get(kind) ?? { n: 0, ms: 0 };
      entry.n += 1;
      entry.ms += performance.now() - started;
      counts.set(kind, entry);
    }
  }) as typeof fetch;
  return {
    start() {
      counts.clear();
      counting = true;
    },
    stop() {
      counting = false;
      return new Map(counts);
    },
    restore() {
      globalThis.fetch = original;
    },
  };
}

/** CPU time (ms) of this process's threads: the main thread's and the others' (sandbox workers, libuv, GC). */
async function threadCpuMs(): Promise<{ main: number; others: number }> {
  const tick = 1000 / 100; // USER_HZ
  const { readdir } = await import('node:fs/promises');
  let main = 0;
  let others = 0;
  for (const tid of await readdir('/proc/self/task')) {
    const stat = await readFile(`/proc/self/task/${tid}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ms = (Number(fields[11]) + Number(fields[12])) * tick;
    if (Number(tid) === process.pid) main += ms;
    else others += ms;
  }
  return { main, others };
}

/** CPU time (ms) of this process's child processes still running (pouchdb-server during the wasm runs). */
async function childrenCpuMs(): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  let total = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) !== process.pid) continue;
    total += (Number(fields[11]) + Number(fields[12])) * 10;
  }
  return total;
}

/** Each interface of the world and its functions, as the component's glue names them (camelCase). */
async function worldFunctions(): Promise<Record<string, string[]>> {
  const wit = await readFile(path.join(repoRoot, 'wit/konnector.wit'), 'utf8');
  const interfaces: Record<string, string[]> = {};
  for (const [, name, body] of wit.matchAll(/^interface ([a-z-]+) \{([\s\S]*?)^\}/gm)) {
    interfaces[name!] = [...body!.matchAll(/^\s*([a-z][a-z-]*): func\(/gm)].map((m) => m[1]!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()));
  }
  return interfaces;
}

/** The konnector's code with its `cozy:konnector/*` imports answered by bench/fixtures/node-baseline/child.ts, as one Node file. */
async function bundleForNode(konnectorDir: string, out: string): Promise<void> {
  const entry = path.join(konnectorDir, 'index.js');
  const world = await worldFunctions();
  const plugin: esbuild.Plugin = {
    name: 'node-baseline',
    setup(build) {
      build.onResolve({ filter: /^konnector-entry$/ }, () => ({ path: 'entry', namespace: 'konnector' }));
      build.onLoad({ filter: /.*/, namespace: 'konnector' }, () => ({ contents: entryModuleSource(entry), resolveDir: konnectorDir, loader: 'js' }));
      build.onResolve({ filter: /^cozy:konnector\// }, (args) => ({ path: /^cozy:konnector\/([a-z]+)@/.exec(args.path)![1]!, namespace: 'host' }));
      build.onLoad({ filter: /.*/, namespace: 'host' }, (args) => ({
        contents: (world[args.path] ?? []).map((fn) => `export const ${fn} = (...a) => globalThis.__cozyHost.${args.path}.${fn}(...a);`).join('\n'),
        loader: 'js',
      }));
    },
  };
  await esbuild.build({
    entryPoints: [path.join(repoRoot, 'bench/fixtures/node-baseline/child.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    alias: GUEST_RESOLUTION.alias,
    // CommonJS dependencies require Node built-ins at run time.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    plugins: [plugin],
    outfile: out,
    logLevel: 'silent',
  });
}

/** A proxy in front of the vendor site that can hold the bills page, to keep jobs running. */
async function startGate(vendorPort: number) {
  let open = true;
  let held: Array<() => void> = [];
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const upstream = request({ host: '127.0.0.1', port: vendorPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };
  const server = createServer((req, res) => {
    if (!open && req.url?.startsWith('/bills')) held.push(() => forward(req, res));
    else forward(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    held: () => held.length,
    close() {
      open = false;
    },
    open() {
      open = true;
      for (const release of held) release();
      held = [];
    },
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function waitUntil(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

const MiB = 1024 * 1024;
const SETTLE_MS = 100;

export async function runServeBench(options: ServeBenchOptions): Promise<ServeBenchResult> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-serve-'));
  const konnectorsDir = path.join(tmp, 'konnectors');
  await import('node:fs/promises').then((fs) => fs.mkdir(konnectorsDir));
  const sources = { bills: path.join(repoRoot, 'konnectors/examples/example-bills'), trivial: path.join(repoRoot, 'bench/fixtures/serve-trivial') };
  process.stderr.write('bench serve: building the konnectors (component and Node bundle)...\n');
  await buildKonnector(sources.bills, path.join(konnectorsDir, 'example-bills.kwasm'));
  await buildKonnector(sources.trivial, path.join(konnectorsDir, 'serve-trivial.kwasm'));
  const nodeBundles = { bills: path.join(tmp, 'example-bills.node.mjs'), trivial: path.join(tmp, 'serve-trivial.node.mjs') };
  await bundleForNode(sources.bills, nodeBundles.bills);
  await bundleForNode(sources.trivial, nodeBundles.trivial);
  const manifests = {
    bills: JSON.parse(await readFile(path.join(sources.bills, 'manifest.konnector'), 'utf8')),
    trivial: JSON.parse(await readFile(path.join(sources.trivial, 'manifest.konnector'), 'utf8')),
  };

  const couch = await startEmbeddedCouchDB({ dataDir: path.join(tmp, 'couch') });
  const nodeFilesDir = path.join(tmp, 'node-files');
  const site = await startVendorSite();
  const gate = await startGate(site.port);
  const connectTo = `${VENDOR_HOST}:80:127.0.0.1:${gate.port}`;

  // The queue notes when each job is first handed to it.
  const enqueued = new Map<string, number>();
  const queue = new (class extends EmbeddedQueue {
    override add(message: QueueMessage, delayMs?: number) {
      if (!enqueued.has(message.jobId)) enqueued.set(message.jobId, now());
      return super.add(message, delayMs);
    }
  })(options.concurrency, () => {});
  // The wasm side: a host in this process; its executor notes each job's first log line and end.
  const firstLog = new Map<string, number>();
  /** Per job, when each phase began (profile): see `phaseTable`. */
  const marks = new Map<string, Record<string, number>>();
  const mark = (id: string, phase: string, at = now()) => {
    const m = marks.get(id) ?? {};
    m[phase] ??= at;
    marks.set(id, m);
  };
  const reports = new Map<string, string>();
  /** Resolves once the job's outcome is written (its document done or errored). */
  const endings = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  const ending = (id: string) => {
    let entry = endings.get(id);
    if (!entry) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      entry = { promise, resolve };
      endings.set(id, entry);
    }
    return entry;
  };
  const executor: JobExecutor = {
    async execute(konnector, req, env) {
      // A job started at once, its document written running, was never queued: it is handed over now.
      if (!enqueued.has(req.jobId!)) enqueued.set(req.jobId!, now());
      mark(req.jobId!, 'execute');
      const report = await runJob(konnector, req, {
        ...env,
        onLog: (line) => {
          if (!firstLog.has(req.jobId!)) firstLog.set(req.jobId!, now());
          mark(req.jobId!, 'firstLog');
          env.onLog?.(line);
        },
      });
      reports.set(req.jobId!, report.error ? `${report.error}: ${report.message}` : report.state);
      mark(req.jobId!, 'ran');
      return report;
    },
  };
  const host = await startServeHost({
    ...defaultServeOptions(),
    konnectorsDir, couchUrl: couch.url, dataDir: tmp, port: 0, token: 'bench-token-0123456789',
    concurrency: options.concurrency, connectTo: [parseConnectTo(connectTo)], executor, queue,
    log: process.env.BENCH_SERVE_LOG ? (level, message) => process.stderr.write(`host ${level}: ${message}\n`) : () => {},
  });
  // The job writes the host makes: when the first running write and the outcome's write start and land.
  const jobs = host.store.jobs;
  const put = jobs.put.bind(jobs);
  jobs.put = async (doc) => {
    const started = now();
    const saved = await put(doc);
    const ends = doc.state === 'done' || doc.state === 'errored';
    if (doc.state === 'running' && doc.logs.length === 0) {
      mark(doc._id, 'runningWrite', started);
      mark(doc._id, 'runningWritten');
    }
    if (ends) {
      mark(doc._id, 'endWrite', started);
      mark(doc._id, 'endWritten');
      ending(doc._id).resolve();
    }
    return saved;
  };
  const couchRequests = options.profile ? countCouchRequests(couch.url) : undefined;
  const api = async (route: string, body: unknown) => {
    const res = await fetch(`${host.url}${route}`, {
      method: 'POST', headers: { authorization: 'Bearer bench-token-0123456789', 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    return (await res.json()) as { _id: string };
  };
  const billsAccount = (await api('/accounts', { account_type: 'example-bills', instance: INSTANCE, auth: site.credentials }))._id;
  const trivialAccount = (await api('/accounts', { account_type: 'serve-trivial', instance: INSTANCE, auth: {} }))._id;

  const wasmJob = async (account: string) => {
    const posted = now();
    const { _id } = await api('/jobs', { account });
    mark(_id, 'posted', posted);
    mark(_id, 'answered');
    return { id: _id, posted };
  };
  /** Waits until the job's outcome is written; it must be done. */
  const wasmDone = async (id: string) => {
    const timeout = setTimeout(() => ending(id).resolve(), 120_000);
    await ending(id).promise;
    clearTimeout(timeout);
    if (reports.get(id) !== 'done') throw new Error(`bench: the wasm job ${id} did not end done (${reports.get(id)})`);
  };

  // The baseline: one node process per job, fields in its environment as cozy-stack passes them.
  const baselineJobs = nano(couch.url).use<{ state: string }>('node-baseline-jobs');
  await nano(couch.url).db.create('node-baseline-jobs');
  let nodeJobs = 0;
  const nodeJob = async (which: 'bills' | 'trivial', instance = INSTANCE) => {
    const id = `node-${++nodeJobs}`;
    // As cozy-stack: the job's document is written when it is pushed to the queue, and the worker
    // marks it running (AckConsumed) before it spawns the konnector.
    const queued = await baselineJobs.insert({ _id: id, state: 'queued' });
    const enqueued = now();
    await baselineJobs.insert({ _id: id, _rev: queued.rev, state: 'running' });
    const child = spawn(process.execPath, [nodeBundles[which]], {
      env: {
        PATH: process.env.PATH, COUCH_URL: couch.url, COZY_INSTANCE: instance, COZY_JOB_ID: id, COZY_ACCOUNT: `${which}-account`,
        COZY_FIELDS: JSON.stringify(which === 'bills' ? site.credentials : {}), KONNECTOR_SLUG: manifests[which].slug,
        KONNECTOR_PERMISSIONS: JSON.stringify(manifests[which].permissions), CONNECT_TO: JSON.stringify([connectTo]),
        // What webpack embeds in a cozy-stack konnector's bundle (cozy-konnector-libs' manifest.data).
        KONNECTOR_MANIFEST: JSON.stringify(manifests[which]),
        KONNECTOR_FOLDER: konnectorFolderPath(manifests[which].folders, { konnector: manifests[which].name, account: `${which}-account` }),
        FILES_DIR: nodeFilesDir,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let first: number | undefined;
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk;
      const line = out.split('\n')[0];
      if (first === undefined && out.includes('\n')) first = (JSON.parse(line!) as { time: number }).time;
    });
    // A baseline job that fails would measure something else: stop the bench loudly.
    const exit = new Promise<number>((resolve, reject) => child.on('exit', (code) => {
      if (code === 0) resolve(code);
      else reject(new Error(`bench: the node baseline job ${id} exited ${code}:\n${out}`));
    }));
    return { child, enqueued, firstLog: () => first, exit };
  };

  try {
    // Warm-up: the first wasm job compiles the konnector (once per sha256), the first node job warms the disk cache.
    for (const account of [billsAccount, trivialAccount]) await wasmDone((await wasmJob(account)).id);
    if (!options.skip?.has('node')) for (const which of ['bills', 'trivial'] as const) await (await nodeJob(which)).exit;

    const skip = options.skip ?? new Set();
    const latency = { wasm: [] as number[], node: [] as number[], wasmFromApi: [] as number[] };
    const latencyIds: string[] = [];
    if (!skip.has('latency')) {
      process.stderr.write('bench serve: job start latency...\n');
      for (let i = 0; i < options.latencyJobs; i++) {
        const job = await wasmJob(billsAccount);
        await wasmDone(job.id);
        latencyIds.push(job.id);
        latency.wasm.push(firstLog.get(job.id)! - enqueued.get(job.id)!);
        latency.wasmFromApi.push(firstLog.get(job.id)! - job.posted);
        // Each side starts on a quiet machine, not during the other's wind-down (its last writes, a child exiting).
        await sleep(SETTLE_MS);
        if (skip.has('node')) continue;
        const baseline = await nodeJob('bills');
        await baseline.exit;
        latency.node.push(baseline.firstLog()! - baseline.enqueued);
        await sleep(SETTLE_MS);
      }
    }

    let wasmGrowth = NaN;
    let nodeRss = NaN;
    if (!skip.has('memory')) {
      process.stderr.write('bench serve: memory per running job...\n');
      const held = options.concurrency;
      gate.close();
      global.gc?.();
      await sleep(200);
      const before = process.memoryUsage().rss;
      // One instance per held job: concurrent runs of one account would race on the same bills.
      const heldAccounts = await Promise.all(Array.from({ length: held }, async (_, i) =>
        (await api('/accounts', { account_type: 'example-bills', instance: `held${i}.${INSTANCE}`, auth: site.credentials }))._id as string));
      const wasmHeld = await Promise.all(heldAccounts.map((account) => wasmJob(account)));
      await waitUntil('the wasm jobs to wait on the vendor', () => gate.held() === held);
      await sleep(200);
      wasmGrowth = (process.memoryUsage().rss - before) / held;
      gate.open();
      await Promise.all(wasmHeld.map((job) => wasmDone(job.id)));
      if (!skip.has('node')) {
        gate.close();
        const nodeHeld = await Promise.all(Array.from({ length: held }, (_, i) => nodeJob('bills', `held${i}.node.${INSTANCE}`)));
        await waitUntil('the node jobs to wait on the vendor', () => gate.held() === held);
        await sleep(200);
        nodeRss = (await Promise.all(nodeHeld.map((job) => rssOf(job.child.pid!)))).reduce((a, b) => a + b, 0) / held;
        gate.open();
        await Promise.all(nodeHeld.map((job) => job.exit));
      }
    }

    let wasmRate = NaN;
    let nodeRate = NaN;
    let profile: string | undefined;
    if (!skip.has('throughput')) {
      process.stderr.write('bench serve: throughput of a trivial konnector...\n');
      // A few jobs first: the trivial konnector's instances made in every worker.
      await Promise.all(Array.from({ length: options.concurrency }, async () => wasmDone((await wasmJob(trivialAccount)).id)));
      await sleep(SETTLE_MS);
      couchRequests?.start();
      const cpuBefore = { threads: await threadCpuMs(), children: await childrenCpuMs() };
      const inspector = options.cpuProfile ? new (await import('node:inspector')).Session() : undefined;
      const post = (method: string, params?: object) => new Promise<unknown>((resolve, reject) =>
        inspector!.post(method, params, (error, result) => (error ? reject(error) : resolve(result))));
      if (inspector) {
        inspector.connect();
        await post('Profiler.enable');
        await post('Profiler.start');
      }
      const wasmStart = now();
      const trivialJobs: Array<{ id: string; posted: number }> = [];
      let posted = 0;
      await Promise.all(Array.from({ length: options.clients ?? 1 }, async () => {
        while (posted < options.throughputJobs) {
          posted++;
          trivialJobs.push(await wasmJob(trivialAccount));
        }
      }));
      await Promise.all(trivialJobs.map((job) => wasmDone(job.id)));
      const wasmMs = now() - wasmStart;
      wasmRate = options.throughputJobs / (wasmMs / 1000);
      if (inspector) {
        const { profile: cpu } = (await post('Profiler.stop')) as { profile: unknown };
        await writeFile(options.cpuProfile!, JSON.stringify(cpu));
        inspector.disconnect();
      }
      if (couchRequests) {
        const requests = couchRequests.stop();
        const threads = await threadCpuMs();
        const children = await childrenCpuMs();
        const cpu = {
          main: threads.main - cpuBefore.threads.main, others: threads.others - cpuBefore.threads.others, couch: children - cpuBefore.children,
        };
        profile = profileTable(options.throughputJobs, options.clients ?? 1, wasmMs, requests, cpu, trivialJobs.map((job) => marks.get(job.id)!), latencyIds.map((id) => marks.get(id)!));
      }
      if (!skip.has('node')) {
        const nodeStart = now();
        let next = 0;
        await Promise.all(Array.from({ length: options.concurrency }, async () => {
          while (next < options.throughputJobs) {
            next++;
            await (await nodeJob('trivial')).exit;
          }
        }));
        nodeRate = options.throughputJobs / ((now() - nodeStart) / 1000);
      }
    }

    const result = {
      latencyMs: {
        wasm: { median: q(latency.wasm, 0.5), p95: q(latency.wasm, 0.95) },
        node: { median: q(latency.node, 0.5), p95: q(latency.node, 0.95) },
        wasmFromApi: { median: q(latency.wasmFromApi, 0.5), p95: q(latency.wasmFromApi, 0.95) },
      },
      memoryPerJobMiB: { wasm: wasmGrowth / MiB, node: nodeRss / MiB },
      jobsPerSecond: { wasm: wasmRate, node: nodeRate },
    };
    return { ...result, profile, markdown: table(result, options) };
  } finally {
    couchRequests?.restore();
    await host.drain(0);
    await gate.stop();
    await site.stop();
    await couch.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

const q = (values: number[], share: number) => (values.length ? quantile(values, share) : NaN);

/** Phases of a job, each from one mark to the next (see `mark` in runServeBench). */
const PHASES: Array<[string, string, string]> = [
  ['posted', 'answered', 'POST /jobs answered (API, account read, job written)'],
  ['posted', 'runningWrite', 'POST to the running write sent (API, body, account read; queue wait when queued)'],
  ['runningWrite', 'runningWritten', 'the running write (created running, or the claim)'],
  ['runningWritten', 'execute', 'written running to runJob called (processor; negative when a queued job starts while its claim is written)'],
  ['execute', 'firstLog', 'runJob to the konnector\'s first log line (capabilities, worker, instance, guest)'],
  ['firstLog', 'ran', 'first log line to runJob returned (guest, outcome, report)'],
  ['ran', 'endWrite', 'runJob returned to the outcome\'s write sent (processor)'],
  ['endWrite', 'endWritten', 'the outcome\'s write'],
  ['posted', 'endWritten', 'POST to outcome written (whole job)'],
];

function phaseRows(jobs: Array<Record<string, number>>): string[] {
  return PHASES.flatMap(([from, to, what]) => {
    const spans = jobs.filter((m) => m?.[from] !== undefined && m[to] !== undefined).map((m) => m[to]! - m[from]!);
    return spans.length ? [`| ${what} | ${spans.length} | ${q(spans, 0.5).toFixed(1)} | ${q(spans, 0.95).toFixed(1)} |`] : [];
  });
}

function profileTable(
  jobs: number,
  clients: number,
  wallMs: number,
  requests: Map<string, { n: number; ms: number }>,
  cpu: { main: number; others: number; couch: number },
  throughputMarks: Array<Record<string, number>>,
  latencyMarks: Array<Record<string, number>>,
): string {
  const per = (n: number) => (n / jobs).toFixed(2);
  const total = [...requests.values()].reduce((a, b) => ({ n: a.n + b.n, ms: a.ms + b.ms }), { n: 0, ms: 0 });
  return [
    `Throughput run: ${jobs} jobs (${clients} POST at a time) in ${wallMs.toFixed(0)} ms (${(jobs / (wallMs / 1000)).toFixed(1)} jobs/s).`,
    '',
    '| CPU per job | ms |',
    '| --- | --- |',
    `| host process, main thread | ${per(cpu.main)} |`,
    `| host process, other threads (sandbox workers, libuv, GC) | ${per(cpu.others)} |`,
    `| pouchdb-server | ${per(cpu.couch)} |`,
    `| all | ${per(cpu.main + cpu.others + cpu.couch)} |`,
    '',
    '| CouchDB request (method, doctype, what) | per job | mean ms |',
    '| --- | --- | --- |',
    ...[...requests.entries()].sort((a, b) => b[1].n - a[1].n).map(([kind, { n, ms }]) => `| ${kind} | ${per(n)} | ${(ms / n).toFixed(1)} |`),
    `| all | ${per(total.n)} | ${(total.ms / Math.max(1, total.n)).toFixed(1)} |`,
    '',
    '| phase, throughput run | jobs | median ms | p95 ms |',
    '| --- | --- | --- | --- |',
    ...phaseRows(throughputMarks),
    ...(latencyMarks.length ? ['', '| phase, latency run (example-bills, one job at a time) | jobs | median ms | p95 ms |', '| --- | --- | --- | --- |',
      ...phaseRows(latencyMarks)] : []),
  ].join('\n');
}

function table(r: Omit<ServeBenchResult, 'markdown'>, options: ServeBenchOptions): string {
  const f = (n: number, digits = 1) => n.toFixed(digits);
  const ratio = (a: number, b: number) => `${f(a / b, 2)}x`;
  return [
    `| measure (${os.cpus().length} CPUs, concurrency ${options.concurrency}) | wasm host | node process per job | ratio | target |`,
    '| --- | --- | --- | --- | --- |',
    `| job start latency from enqueue, median (ms) | ${f(r.latencyMs.wasm.median)} | ${f(r.latencyMs.node.median)} | ${ratio(r.latencyMs.node.median, r.latencyMs.wasm.median)} faster | >= 10x faster |`,
    `| job start latency from enqueue, p95 (ms) | ${f(r.latencyMs.wasm.p95)} | ${f(r.latencyMs.node.p95)} | ${ratio(r.latencyMs.node.p95, r.latencyMs.wasm.p95)} faster | >= 10x faster |`,
    `| same from POST /jobs (API, account check; the job written meanwhile), median (ms) | ${f(r.latencyMs.wasmFromApi.median)} | ${f(r.latencyMs.node.median)} | ${ratio(r.latencyMs.node.median, r.latencyMs.wasmFromApi.median)} faster | >= 10x faster (issue 15) |`,
    `| same from POST /jobs, p95 (ms) | ${f(r.latencyMs.wasmFromApi.p95)} | ${f(r.latencyMs.node.p95)} | ${ratio(r.latencyMs.node.p95, r.latencyMs.wasmFromApi.p95)} faster | - |`,
    `| memory per running job (MiB RSS) | ${f(r.memoryPerJobMiB.wasm)} | ${f(r.memoryPerJobMiB.node)} | ${ratio(r.memoryPerJobMiB.wasm, r.memoryPerJobMiB.node)} of the baseline | <= 0.25x |`,
    `| throughput, trivial konnector (jobs/s) | ${f(r.jobsPerSecond.wasm)} | ${f(r.jobsPerSecond.node)} | ${ratio(r.jobsPerSecond.wasm, r.jobsPerSecond.node)} | - |`,
  ].join('\n');
}

const USAGE = `Usage: node --import tsx bench/serve.ts [options]

  --jobs N             jobs of the throughput run, per side (default 200)
  --latency-jobs N     jobs of the latency run, per side (default 30)
  --concurrency N      the host's concurrency (default 2 x CPUs)
  --clients N          POST /jobs requests in flight at once in the throughput run (default 1)
  --skip WHAT,...      leave runs out: latency, memory, throughput, node (the baseline)
  --cpu-profile FILE   a CPU profile of the host's main thread during the wasm throughput run
  --profile            where the throughput run's time goes: CPU and CouchDB requests per job, phases
  --help               this text

BENCH_SERVE_JSON=<file> also writes the results as JSON.
`;

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      jobs: { type: 'string', default: '200' },
      'latency-jobs': { type: 'string', default: '30' },
      concurrency: { type: 'string', default: String(2 * os.availableParallelism()) },
      skip: { type: 'string', default: '' },
      clients: { type: 'string', default: '1' },
      profile: { type: 'boolean', default: false },
      'cpu-profile': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const skip = new Set(values.skip.split(',').filter(Boolean));
  for (const what of skip) if (!['latency', 'memory', 'throughput', 'node'].includes(what)) throw new Error(`--skip: unknown run "${what}"\n${USAGE}`);
  const result = await runServeBench({
    latencyJobs: Number(values['latency-jobs']), throughputJobs: Number(values.jobs), concurrency: Number(values.concurrency),
    skip: skip as ServeBenchOptions['skip'], profile: values.profile, cpuProfile: values['cpu-profile'], clients: Number(values.clients),
  });
  process.stdout.write(`${result.markdown}\n`);
  if (result.profile) process.stdout.write(`\n${result.profile}\n`);
  const out = process.env.BENCH_SERVE_JSON;
  if (out) await writeFile(out, JSON.stringify(result, null, 2));
}
