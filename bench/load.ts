/**
 * What a burst of jobs, 5% of them hostile, does to the worker host when
 * every core is busy: the scenario of test/serve/load.test.ts (1,000 jobs of
 * the serve-worker konnector across 20 accounts, test/support/serve-load.ts) run
 * once with the CPU quiet, the baseline, then with a busy loop on every core
 * for the whole run, each on a fresh host (embedded CouchDB, the production
 * defaults: concurrency 2 x CPUs, 30 s lease unless told, cozy-stack's retries, 256 MiB
 * memory cap). From the job documents and what the konnector saved it counts
 * lost jobs, extra attempts, duplicate side effects and wrong outcomes, and
 * times each job's start:
 *
 *   - start latency: from the job's `queued_at` (set when POST /jobs creates
 *     it) to its first attempt's `started_at` (set as the host writes it
 *     running: the claim of a queued job, or its creation when a slot was
 *     free). With every job POSTed at once this is mostly the wait behind
 *     the jobs before it;
 *   - claim to first log line: from that `started_at` to the konnector's
 *     first log line (its first host call, timed by the host): the
 *     sandbox's start, queueing left out;
 *   - wall time: from the first POST /jobs to the last `finished_at`.
 *
 * The load average and the machine's busy share say how quiet the baseline
 * really was: the host's own threads keep the CPU busy too.
 *
 * Run: node --import tsx bench/load.ts [--jobs N] [--lease-ms N]   (prints a Markdown table)
 *   --lease-ms: the jobs' lease (default 30 s); the tests run with 3 s
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { saturateCpu } from '../test/support/cpu-load.ts';
import { apiClient } from '../test/support/serve-api.ts';
import { auditLoad, enqueueLoad, readOutcome, waitForLoadToEnd, type LoadAudit, type Load, type LoadOutcome } from '../test/support/serve-load.ts';
import { konnectorsDir, SLUG } from '../test/support/serve-worker.ts';
import { defaultServeOptions, startServeHost } from '../runner/serve/host.ts';
import { quantile } from './quantile.ts';

const TOKEN = 'bench-token-0123456789';
/** How long a phase may take before its unfinished jobs count as lost. */
const DEADLINE_MS = 60 * 60_000;
const PROGRESS_EVERY_MS = 30_000;

type Phase = 'quiet' | 'saturated';

interface PhaseResult {
  phase: Phase;
  jobs: number;
  hostileJobs: number;
  loadAverage: { mean: number; max: number };
  /** From the load's first POST to the end of the wait: cores the bench process (host, its sandbox workers, the client) used, and the whole machine's busy share. */
  cpu: { benchCores: number; machineBusy: number };
  audit: LoadAudit;
  /** Host log lines of level warning or error. */
  hostWarnings: number;
  startMs: number[];
  firstLogMs: number[];
  postingMs: number;
  wallMs: number;
}

/** The 1-minute load average every 5 s while a phase runs. */
function sampleLoadAverage() {
  const samples: number[] = [];
  const take = () => samples.push(os.loadavg()[0]!);
  take();
  const timer = setInterval(take, 5000);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { mean: samples.reduce((a, b) => a + b, 0) / samples.length, max: Math.max(...samples) };
    },
  };
}

/** Busy and total CPU time of the whole machine so far (/proc/stat, in clock ticks). */
async function machineCpu(): Promise<{ busy: number; total: number }> {
  // The first line: "cpu user nice system idle iowait irq softirq steal ...".
  const ticks = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - ticks[3]! - ticks[4]!, total };
}

/** CPU used from now until `stop()`: by this process (every thread), in cores, and by the machine, as a busy share. */
async function measureCpu() {
  const [machine, process0, wall0] = [await machineCpu(), process.cpuUsage(), performance.now()];
  return {
    async stop() {
      const [now, used, wallMs] = [await machineCpu(), process.cpuUsage(process0), performance.now() - wall0];
      return { benchCores: (used.user + used.system) / 1000 / wallMs, machineBusy: (now.busy - machine.busy) / (now.total - machine.total) };
    },
  };
}

function timings(load: Load, outcome: LoadOutcome) {
  const startMs: number[] = [];
  const firstLogMs: number[] = [];
  let lastFinished = load.postedUntil;
  for (const id of load.jobs.keys()) {
    const job = outcome.jobs.get(id);
    const first = job?.history[0];
    if (!job || !first) continue;
    startMs.push(Date.parse(first.started_at) - Date.parse(job.queued_at));
    // An interrupted attempt's log lines are replaced by its rerun's, which started later.
    const line = first.state !== 'interrupted' && job.logs.find((l) => l.attempt === first.attempt && l.source === 'konnector');
    if (line) firstLogMs.push(Date.parse(line.time) - Date.parse(first.started_at));
    if (job.finished_at) lastFinished = Math.max(lastFinished, Date.parse(job.finished_at));
  }
  return { startMs, firstLogMs, wallMs: lastFinished - load.postedFrom };
}

async function runPhase(phase: Phase, jobs: number, leaseMs: number, konnectors: string): Promise<PhaseResult> {
  const say = (message: string) => process.stderr.write(`bench load (${phase}): ${message}\n`);
  const spinners = phase === 'saturated' ? saturateCpu(DEADLINE_MS + 10 * 60_000) : undefined;
  const sampler = sampleLoadAverage();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bench-load-'));
  let hostWarnings = 0;
  let measured: Omit<PhaseResult, 'loadAverage' | 'hostWarnings'>;
  let loadAverage: PhaseResult['loadAverage'];
  try {
    const host = await startServeHost({
      ...defaultServeOptions(), konnectorsDir: konnectors, dataDir, port: 0, token: TOKEN, leaseMs,
      log: (level, message) => {
        if (level === 'info') return;
        hostWarnings++;
        say(`host ${level}: ${message}`);
      },
    });
    try {
      const api = apiClient(host.url, TOKEN);
      // Warm-up, outside the load: the first job loads the konnector (transpile, compile) once per host.
      const warmup = await api('POST', '/accounts', { account_type: SLUG, instance: 'warmup.cozy.example', auth: { login: 'warmup' } });
      await api('POST', '/jobs', { account: warmup.body._id });
      if (!(await waitForLoadToEnd(host.store, 10 * 60_000))) throw new Error('bench load: the warm-up job did not end in 10 min');

      say(`${jobs} jobs...`);
      const cpuUse = await measureCpu();
      const load = await enqueueLoad(api, jobs);
      let nextProgress = Date.now() + PROGRESS_EVERY_MS;
      const ended = await waitForLoadToEnd(host.store, DEADLINE_MS, (counts) => {
        if (Date.now() < nextProgress) return;
        nextProgress += PROGRESS_EVERY_MS;
        say(`${JSON.stringify(counts)} (warm-up job included), load average ${os.loadavg()[0]!.toFixed(2)}`);
      });
      const cpu = await cpuUse.stop();
      if (!ended) say(`deadline of ${DEADLINE_MS / 60_000} min reached: the jobs not ended count as lost`);
      const outcome = await readOutcome(host, load);
      const hostileJobs = [...load.jobs.values()].filter((planned) => planned.expected.state === 'errored').length;
      measured = { phase, cpu, jobs: load.jobs.size, hostileJobs, audit: auditLoad(load, outcome), postingMs: load.postedUntil - load.postedFrom,
        ...timings(load, outcome) };
    } finally {
      await host.drain(0);
    }
  } finally {
    loadAverage = sampler.stop();
    await spinners?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  return { ...measured, loadAverage, hostWarnings };
}

const FINDINGS: Array<[keyof LoadAudit, string]> = [
  ['lost', 'jobs lost (not done or errored at the end)'],
  ['extraAttempts', 'jobs run to an end more often than their behaviour calls for'],
  ['duplicateSideEffects', 'duplicate side effects (a document saved by two runs)'],
  ['missingSideEffects', 'benign jobs done without their document'],
  ['wrongSideEffects', 'documents saved by a hostile or unknown job, or with the wrong account'],
  ['benignErrored', 'benign jobs errored'],
  ['hostileWrong', 'hostile jobs with the wrong code or retries'],
  ['interrupted', 'jobs with an attempt interrupted (lease lapsed) and run again'],
];

function table(quiet: PhaseResult, saturated: PhaseResult, leaseMs: number): string {
  const s = (ms: number) => (ms / 1000).toFixed(1);
  const rows: Array<[string, (r: PhaseResult) => string, ((r: PhaseResult) => number)?]> = [
    ['load average (1 min) during the run, mean / max', (r) => `${r.loadAverage.mean.toFixed(1)} / ${r.loadAverage.max.toFixed(1)}`],
    ['machine CPU busy, all processes (%)', (r) => (100 * r.cpu.machineBusy).toFixed(0)],
    ['CPU used by the bench process: host, sandbox workers, client (cores)', (r) => r.cpu.benchCores.toFixed(2), (r) => r.cpu.benchCores],
    ['jobs (hostile)', (r) => `${r.jobs} (${r.hostileJobs})`],
    ...FINDINGS.map(([kind, label]): [string, (r: PhaseResult) => string] => [label, (r) => String(r.audit[kind].length)]),
    ['host warnings and errors logged', (r) => String(r.hostWarnings)],
    ['start latency (queued_at to first started_at), p50 (s)', (r) => s(quantile(r.startMs, 0.5)), (r) => quantile(r.startMs, 0.5)],
    ['start latency, p95 (s)', (r) => s(quantile(r.startMs, 0.95)), (r) => quantile(r.startMs, 0.95)],
    ['start latency, max (s)', (r) => s(Math.max(...r.startMs)), (r) => Math.max(...r.startMs)],
    ['claim to konnector\'s first log line, p50 (ms)', (r) => quantile(r.firstLogMs, 0.5).toFixed(0), (r) => quantile(r.firstLogMs, 0.5)],
    ['claim to konnector\'s first log line, p95 (ms)', (r) => quantile(r.firstLogMs, 0.95).toFixed(0), (r) => quantile(r.firstLogMs, 0.95)],
    ['POSTing every job, 25 at a time (s)', (r) => s(r.postingMs), (r) => r.postingMs],
    ['total wall time, first POST to last finished_at (s)', (r) => s(r.wallMs), (r) => r.wallMs],
    ['throughput (jobs/s)', (r) => (r.jobs / (r.wallMs / 1000)).toFixed(1), (r) => r.jobs / (r.wallMs / 1000)],
  ];
  return [
    `| measure (${os.availableParallelism()} CPUs, Node ${process.version}, concurrency ${defaultServeOptions().concurrency}, lease ${leaseMs / 1000} s) | CPU quiet | CPU saturated | saturated / quiet |`,
    '| --- | --- | --- | --- |',
    ...rows.map(([label, show, value]) => {
      const ratio = value && value(quiet) > 0 ? `${(value(saturated) / value(quiet)).toFixed(2)}x` : '-';
      return `| ${label} | ${show(quiet)} | ${show(saturated)} | ${ratio} |`;
    }),
  ].join('\n');
}

/** Every finding, by phase and kind: which job, and what happened to it. */
function findings(phases: PhaseResult[]): string {
  const lines: string[] = [];
  for (const phase of phases) {
    for (const [kind] of FINDINGS) {
      for (const finding of phase.audit[kind]) lines.push(`- ${phase.phase}, ${kind}: job ${finding.job}: ${finding.what}`);
    }
  }
  return lines.length ? `\n${lines.join('\n')}\n` : '\nNo findings: every job ended once, as its account\'s behaviour says.\n';
}

const flag = (name: string, fallback: number) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const jobs = flag('--jobs', 1000);
const leaseMs = flag('--lease-ms', defaultServeOptions().leaseMs);
process.stderr.write('bench load: building the serve-worker konnector (cached across runs)...\n');
const konnectors = await konnectorsDir();
try {
  const quiet = await runPhase('quiet', jobs, leaseMs, konnectors);
  const saturated = await runPhase('saturated', jobs, leaseMs, konnectors);
  process.stdout.write(`${table(quiet, saturated, leaseMs)}\n${findings([quiet, saturated])}`);
} finally {
  await rm(konnectors, { recursive: true, force: true });
}
