/**
 * The worker host's load scenario, shared by test/serve/load.test.ts (every
 * job ends once, as expected) and bench/load.ts (the same, counted and timed,
 * with every core busy): jobs of the serve-worker konnector across 16 benign
 * accounts and 4 hostile ones taking 5% of the jobs, interleaved; then an
 * audit of the job documents and of the documents the konnector saved.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobDoc } from '../../runner/serve/model.ts';
import type { Store } from '../../runner/serve/store.ts';
import { storedDocs } from './couch.ts';
import type { Api } from './serve-api.ts';
import { SLUG } from './serve-worker.ts';

const BENIGN_ACCOUNTS = 16;
const HOSTILE_SHARE = 0.05;
const POSTS_AT_ONCE = 25;
/** Where the serve-worker konnector saves one document per job, its id the job's. */
const RUNS_DOCTYPE = 'io.cozy.serveruns';

/** How each hostile account misbehaves, and how its jobs must end (retryable codes run twice, as cozy-stack). */
const HOSTILE = [
  { auth: { mode: 'fail', code: 'login-failed' }, error: 'LOGIN_FAILED', attempts: 1 },
  { auth: { mode: 'fail', code: 'vendor-down' }, error: 'VENDOR_DOWN', attempts: 2 },
  { auth: { mode: 'allocate' }, error: 'LIMIT_EXCEEDED.MEMORY', attempts: 1 },
  { auth: { mode: 'crash' }, error: 'UNKNOWN_ERROR.CRASH', attempts: 2 },
];

export interface PlannedJob {
  account: string;
  instance: string;
  /** What the konnector saves as `login` (benign jobs only save). */
  login: string | null;
  expected: { state: 'done' } | { state: 'errored'; error: string; attempts: number };
}

export interface Load {
  /** Every job created, by id. */
  jobs: Map<string, PlannedJob>;
  instances: string[];
  /** When the first POST /jobs left and when the last one was answered (ms since the epoch). */
  postedFrom: number;
  postedUntil: number;
}

/**
 * Creates the 20 accounts, then `total` jobs (5% hostile, in a seeded shuffle:
 * the same order on every run), POSTed 25 at a time.
 */
export async function enqueueLoad(api: Api, total: number): Promise<Load> {
  const createAccount = async (instance: string, auth: Record<string, unknown>): Promise<string> => {
    const answer = await api('POST', '/accounts', { account_type: SLUG, instance, auth });
    if (answer.status !== 201) throw new Error(`POST /accounts for ${instance}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body._id;
  };
  const benign: PlannedJob[] = [];
  for (let i = 0; i < BENIGN_ACCOUNTS; i++) {
    const instance = `user${i}.cozy.example`;
    const login = `user${i}@example.org`;
    benign.push({ account: await createAccount(instance, { login }), instance, login, expected: { state: 'done' } });
  }
  const hostile: PlannedJob[] = [];
  for (const [i, behaviour] of HOSTILE.entries()) {
    const instance = `hostile${i}.cozy.example`;
    hostile.push({ account: await createAccount(instance, behaviour.auth), instance, login: null,
      expected: { state: 'errored', error: behaviour.error, attempts: behaviour.attempts } });
  }
  const hostileJobs = Math.round(total * HOSTILE_SHARE);
  const plan = [
    ...Array.from({ length: hostileJobs }, (_, j) => hostile[j % hostile.length]!),
    ...Array.from({ length: total - hostileJobs }, (_, j) => benign[j % benign.length]!),
  ];
  let seed = 42;
  for (let i = plan.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [plan[i], plan[j]] = [plan[j]!, plan[i]!];
  }

  const jobs = new Map<string, PlannedJob>();
  const postedFrom = Date.now();
  for (let i = 0; i < plan.length; i += POSTS_AT_ONCE) {
    const batch = plan.slice(i, i + POSTS_AT_ONCE);
    const answers = await Promise.all(batch.map((planned) => api('POST', '/jobs', { account: planned.account })));
    answers.forEach((answer, k) => {
      if (answer.status !== 201) throw new Error(`POST /jobs: ${answer.status} ${JSON.stringify(answer.body)}`);
      jobs.set(answer.body._id, batch[k]!);
    });
  }
  return { jobs, instances: [...benign, ...hostile].map((planned) => planned.instance), postedFrom, postedUntil: Date.now() };
}

/**
 * Waits until no job of the host is queued or running, polling its by-state
 * view every second. False when some still are after `timeoutMs`.
 */
export async function waitForLoadToEnd(store: Store, timeoutMs: number, onPoll?: (counts: Record<string, number>) => void): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await store.countJobsByState();
    onPoll?.(counts);
    if (!counts.queued && !counts.running) return true;
    if (Date.now() > deadline) return false;
    await sleep(1000);
  }
}

interface SavedRun {
  _id: string;
  account: string;
  login: string | null;
  runs: number;
}

export interface LoadOutcome {
  /** The planned jobs' documents, by id (a job without one is missing). */
  jobs: Map<string, JobDoc>;
  /** What the konnector saved, in every instance of the load. */
  saved: Array<SavedRun & { instance: string }>;
}

export async function readOutcome(host: { store: Store; couchUrl: string }, load: Load): Promise<LoadOutcome> {
  const ids = [...load.jobs.keys()];
  const docs = await host.store.jobs.find({ _id: { $in: ids } }, { limit: ids.length });
  const saved: LoadOutcome['saved'] = [];
  for (const instance of load.instances) {
    // A hostile instance's database does not exist: its konnector never saved anything.
    for (const doc of await storedDocs(host.couchUrl, instance, RUNS_DOCTYPE)) saved.push({ ...(doc as SavedRun), instance });
  }
  return { jobs: new Map(docs.map((doc) => [doc._id, doc])), saved };
}

export interface Finding {
  job: string;
  what: string;
}

/** What went wrong, by kind; every list empty when every job ended once as its account's behaviour says. */
export interface LoadAudit {
  /** Not done or errored when the wait ended: no document, or still queued or running. */
  lost: Finding[];
  /** Run to an end (not interrupted) more times than its behaviour calls for. */
  extraAttempts: Finding[];
  /** Attempts given up by their host (its lease lapsed, or a drain) and run again. */
  interrupted: Finding[];
  benignErrored: Finding[];
  /** Hostile jobs done, ended with another code, or not retried as their code says. */
  hostileWrong: Finding[];
  /** Benign jobs done without their document. */
  missingSideEffects: Finding[];
  /** Documents saved by more than one run of their job (the konnector counts its runs in `runs`). */
  duplicateSideEffects: Finding[];
  /** Documents that should not exist or hold another job's data: saved by a hostile or unknown job, wrong account or login. */
  wrongSideEffects: Finding[];
}

export function auditLoad(load: Load, outcome: LoadOutcome): LoadAudit {
  const audit: LoadAudit = { lost: [], extraAttempts: [], interrupted: [], benignErrored: [], hostileWrong: [],
    missingSideEffects: [], duplicateSideEffects: [], wrongSideEffects: [] };
  const savedIds = new Set(outcome.saved.map((doc) => doc._id));
  for (const [id, planned] of load.jobs) {
    const job = outcome.jobs.get(id);
    if (!job || (job.state !== 'done' && job.state !== 'errored')) {
      audit.lost.push({ job: id, what: job ? `still ${job.state} after ${job.attempts} attempt(s)` : 'no job document' });
      continue;
    }
    const completed = job.history.filter((attempt) => attempt.state !== 'interrupted');
    const interrupted = job.history.filter((attempt) => attempt.state === 'interrupted');
    if (interrupted.length > 0) audit.interrupted.push({ job: id, what: interrupted.map((a) => `attempt ${a.attempt} interrupted: ${a.message}`).join('; ') });
    const expectedAttempts = planned.expected.state === 'done' ? 1 : planned.expected.attempts;
    if (completed.length > expectedAttempts) {
      audit.extraAttempts.push({ job: id, what: `${completed.length} completed attempts (${completed.map((a) => a.error ?? a.state).join(', ')}), ${expectedAttempts} expected` });
    }
    if (planned.expected.state === 'done') {
      if (job.state === 'errored') audit.benignErrored.push({ job: id, what: `${job.error}: ${job.error_message}` });
      else if (!savedIds.has(id)) audit.missingSideEffects.push({ job: id, what: `done, no ${RUNS_DOCTYPE} document in ${planned.instance}` });
    } else {
      const { error, attempts } = planned.expected;
      const errors = completed.map((attempt) => attempt.error);
      if (job.state !== 'errored' || job.error !== error || completed.length < attempts || errors.some((e) => e !== error)) {
        audit.hostileWrong.push({ job: id, what: `${job.state} ${job.error ?? ''} after attempts ended ${errors.join(', ')}; expected ${error} x${attempts}` });
      }
    }
  }
  for (const doc of outcome.saved) {
    const planned = load.jobs.get(doc._id);
    if (doc.runs > 1) audit.duplicateSideEffects.push({ job: doc._id, what: `saved by ${doc.runs} runs in ${doc.instance}` });
    if (!planned || planned.expected.state !== 'done') {
      audit.wrongSideEffects.push({ job: doc._id, what: `${planned ? 'a hostile job' : 'no planned job'} saved a document in ${doc.instance}` });
    } else if (doc.instance !== planned.instance || doc.account !== planned.account || doc.login !== planned.login) {
      audit.wrongSideEffects.push({ job: doc._id, what: `saved ${JSON.stringify({ instance: doc.instance, account: doc.account, login: doc.login })}, ` +
        `expected ${JSON.stringify({ instance: planned.instance, account: planned.account, login: planned.login })}` });
    }
  }
  return audit;
}
