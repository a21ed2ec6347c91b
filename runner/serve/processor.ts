/**
 * Runs jobs: claims a queued job in CouchDB (a write at the revision read, so
 * one host wins; a job created with a slot free is written running at once
 * instead), holds a lease on it while it runs (renewed, with the log so
 * far), writes its outcome, retries it after a back-off, and updates its
 * trigger's state. The sweeper puts back in the queue the jobs whose host
 * died (lease expired) and the queued jobs no queue message carries.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobEnvironment, JobReport } from '../sandbox/job.ts';
import type { LoadedKonnector } from '../sandbox/loader.ts';
import type { HostErrorCode } from '../error-codes.ts';
import { ServeError } from './errors.ts';
import type { JobExecutor } from './executor.ts';
import { JobGate } from './job-gate.ts';
import type { KonnectorRegistry } from './konnectors.ts';
import type { ServeMetrics } from './metrics.ts';
import type { AccountDoc, JobDoc, JobLogLine, TriggerDoc } from './model.ts';
import type { RetryPolicy } from './policy.ts';
import { MessageDeclined, type HostLogger, type JobQueue, type QueueMessage } from './queue.ts';
import type { Store } from './store.ts';
import * as transition from './transitions.ts';

export interface ProcessorOptions {
  store: Store;
  registry: KonnectorRegistry;
  executor: JobExecutor;
  queue: JobQueue;
  /** What every job runs with, but its log and its claim (see job-gate.ts). */
  env: Omit<JobEnvironment, 'onLog' | 'guard' | 'signal'>;
  hostId: string;
  /** How long a running job's claim lasts without renewal; renewed every third of it. */
  leaseMs: number;
  retry: RetryPolicy;
  /** Host deaths or drains a job survives; one more ends it HOST.INTERRUPTED. */
  maxInterruptions: number;
  metrics: ServeMetrics;
  log: HostLogger;
  /** Called when a job this host runs writes a log line (My Accounts follows jobs live; see `logSoFar`). */
  onLogLine?: (jobId: string) => void;
}

const isConflict = (e: unknown) => e instanceof ServeError && e.kind === 'conflict';
const isNotFound = (e: unknown) => e instanceof ServeError && e.kind === 'not-found';
/** Queued job documents kept in memory for their message (see `enqueue`). */
const QUEUED_DOCS_KEPT = 10_000;
const iso = (ms: number) => new Date(ms).toISOString();
/** Queued jobs per sweep; the next sweep takes the rest. */
const SWEEP_BATCH = 1000;

/** How a konnector started for a job ends: its report, or the host's failure around it. */
type Execution = Promise<{ report: JobReport } | { failure: string }>;

/**
 * One job this host holds, from the moment its claim lands (while its
 * konnector still loads) until its outcome is written. The lease is renewed
 * on its own timer every third of its length; if no renewal has landed a
 * sixth of the lease before it would lapse, the host gives the job up at
 * once (its gate revoked: the konnector stops and no further call is
 * served), since another host may then take it: a job's side effects come
 * from one attempt.
 */
class RunningJob {
  /** Set when the host gave the job up (lease lost or lapsing, drain): its outcome is not written. */
  released = false;
  /** The account's revision, written with the job's outcome (a trigger's stop lasts while the account stays at it). */
  accountRev: string | undefined;
  private writing: Promise<unknown> = Promise.resolve();
  private readonly renewal: NodeJS.Timeout;
  private lapse: NodeJS.Timeout | undefined;
  private settle!: () => void;
  /** Resolves once the host is done with the job: outcome written, or given up. */
  readonly done = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(
    public doc: JobDoc,
    readonly attempt: number,
    /** This attempt's log lines, as the konnector writes them. */
    readonly lines: JobLogLine[],
    readonly gate: JobGate,
    private readonly holder: { renew(run: RunningJob): Promise<void>; giveUp(run: RunningJob, why: string): void; leaseMs: number },
  ) {
    this.renewal = setInterval(() => void this.serialize(() => this.holder.renew(this)), Math.max(50, Math.floor(holder.leaseMs / 3)));
    this.leaseWrittenAt(Date.parse(doc.lease!.expires_at) - holder.leaseMs);
  }

  /** A lease write started at `startedAt` landed: the job is ours until a sixth of the lease before it lapses. */
  leaseWrittenAt(startedAt: number): void {
    clearTimeout(this.lapse);
    const giveUpAt = startedAt + this.holder.leaseMs - Math.ceil(this.holder.leaseMs / 6);
    this.lapse = setTimeout(
      () => this.holder.giveUp(this, `no lease renewal landed within ${Date.now() - startedAt} ms (lease ${this.holder.leaseMs} ms): the host is too busy or CouchDB too slow`),
      Math.max(0, giveUpAt - Date.now()),
    );
  }

  /** Writes of one job's document one after the other, so each is based on the revision of the one before. */
  serialize<T>(write: () => Promise<T>): Promise<T> {
    const next = this.writing.then(write);
    this.writing = next.catch(() => {});
    return next;
  }

  stop(): void {
    clearInterval(this.renewal);
    clearTimeout(this.lapse);
  }

  /** The host is done with the job. */
  end(): void {
    this.stop();
    this.settle();
  }

  /** The stored log plus the lines of this attempt not written yet. */
  logs(): JobLogLine[] {
    return [...this.doc.logs.filter((line) => line.attempt !== this.attempt), ...this.lines];
  }
}

export class JobProcessor {
  private readonly running = new Map<string, RunningJob>();
  private readonly queuedDocs = new Map<string, JobDoc>();
  /** Claims under way: a drain waits for them, or a claim landing after it looked would leave its job running on a host that is gone. */
  private readonly claiming = new Set<Promise<unknown>>();
  private draining = false;

  constructor(private readonly opts: ProcessorOptions) {}

  get runningCount(): number {
    return this.running.size;
  }

  /** The whole log of a job this host runs, with the lines not saved yet; undefined for other jobs. */
  logSoFar(jobId: string): JobLogLine[] | undefined {
    return this.running.get(jobId)?.logs();
  }

  /**
   * A new job for an account. `id` makes creation idempotent (scheduled
   * runs). When this host's own queue has a free slot and nobody waits, the
   * job is written running and starts at once: one write instead of queued
   * then claimed, and the account just read. Its konnector starts while that
   * write lands, behind a gate as a claimed job's (job-gate.ts): nothing acts
   * for the job before its document exists, and a write that fails stops it.
   */
  async createJob(account: AccountDoc, options: { triggerId?: string; manual: boolean; id?: string }): Promise<JobDoc> {
    const at = Date.now();
    const queued = transition.newJob(account, { ...options, id: options.id ?? randomUUID().replace(/-/g, '') }, this.opts.retry, at);
    const slot = this.draining ? undefined : this.opts.queue.takeSlot?.();
    if (!slot) {
      const job = await this.opts.store.jobs.put(queued);
      await this.enqueue(job);
      return job;
    }
    const job = transition.claim(queued, this.leaseFrom(at));
    const written = this.opts.store.jobs.put(job);
    const lines: JobLogLine[] = [];
    const gate = new JobGate(written.then(() => true));
    const held = written.then((saved) => this.hold(saved, saved.attempts, lines, gate));
    void this.runOwned(job, account, { lines, gate, held })
      .catch((error: Error) => this.opts.log('error', `job ${job._id}: ${error.message} (its lease will expire and the job run again)`))
      .finally(slot);
    await this.whileClaiming(held);
    return written;
  }

  /** `claim`, counted as under way until it settles. */
  private whileClaiming<T>(claim: Promise<T>): Promise<T> {
    this.claiming.add(claim);
    const settled = () => this.claiming.delete(claim);
    claim.then(settled, settled);
    return claim;
  }

  /**
   * Queues a message for the job at its current seq. The document is kept in
   * memory until its message comes back, so the claim is written without
   * reading it again. A queue that fails now leaves the job queued in
   * CouchDB: the sweeper hands it out later.
   */
  private async enqueue(job: JobDoc, delayMs = 0): Promise<void> {
    this.queuedDocs.delete(job._id);
    this.queuedDocs.set(job._id, job);
    // Messages handed to other hosts (Redis) are never taken here: keep the newest only.
    if (this.queuedDocs.size > QUEUED_DOCS_KEPT) this.queuedDocs.delete(this.queuedDocs.keys().next().value!);
    try {
      await this.opts.queue.add({ jobId: job._id, seq: job.seq }, delayMs);
    } catch (error) {
      this.opts.log('warning', `job ${job._id}: the queue refused it (${(error as Error).message}); the sweeper will queue it again`);
    }
  }

  /** The job as this host last queued it, or as CouchDB has it; null when it was deleted. */
  private async queuedDoc(message: QueueMessage, from: 'memory-or-store' | 'store'): Promise<{ job: JobDoc; fromMemory: boolean } | null> {
    const kept = this.queuedDocs.get(message.jobId);
    if (from === 'memory-or-store' && kept?.seq === message.seq) {
      this.queuedDocs.delete(message.jobId);
      return { job: kept, fromMemory: true };
    }
    try {
      return { job: await this.opts.store.jobs.get(message.jobId), fromMemory: false };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  /** The account a job runs for; null when it was deleted. */
  private readAccount(id: string): Promise<AccountDoc | null> {
    return this.opts.store.accounts.get(id).catch((e: unknown) => {
      if (isNotFound(e)) return null;
      throw e;
    });
  }

  /**
   * Starts taking the job the message names for this host. Null when the
   * message has nothing to run (stale, not due yet, deleted). Otherwise the
   * claim is being written (the queued revision, so it fails if another host
   * took the job first or the job changed: `claimed` is then null) and the
   * job's account is being read.
   */
  private async claim(message: QueueMessage): Promise<{ job: JobDoc; account: Promise<AccountDoc | null>; claimed: Promise<JobDoc | null> } | null> {
    const found = await this.queuedDoc(message, 'memory-or-store');
    const runnable = async (job: JobDoc): Promise<boolean> => {
      if (job.state !== 'queued' || job.seq !== message.seq) {
        this.opts.metrics.staleMessages.inc();
        return false;
      }
      const wait = Date.parse(job.due_at) - Date.now();
      if (wait > 0) await this.enqueue(job, wait);
      return wait <= 0;
    };
    if (!found || !(await runnable(found.job))) return null;
    const write = async (job: JobDoc, fromMemory: boolean): Promise<JobDoc | null> => {
      try {
        return await this.opts.store.jobs.put(transition.claim(job, this.leaseFrom(Date.now())));
      } catch (e) {
        if (!isConflict(e)) throw e;
        if (!fromMemory) return null; // another host claimed it first
        // The revision kept in memory may be stale: read it before concluding another host has it.
        const fresh = await this.queuedDoc(message, 'store');
        return fresh && (await runnable(fresh.job)) ? write(fresh.job, false) : null;
      }
    };
    // The account first: the konnector starts once it is read, and runs while the claim is written.
    const account = this.readAccount(found.job.message.account);
    const claimed = write(found.job, found.fromMemory);
    // Each is awaited only on the paths that need it.
    claimed.catch(() => {});
    account.catch(() => {});
    return { job: found.job, account, claimed };
  }

  /** The konnector a job runs, or why it cannot run. */
  private async konnectorFor(job: JobDoc): Promise<{ konnector: LoadedKonnector } | { unrunnable: string }> {
    const { registry } = this.opts;
    try {
      const konnector = await registry.get(job.message.konnector);
      return konnector ? { konnector } : { unrunnable: `no artifact in ${registry.dir} is the konnector "${job.message.konnector}"` };
    } catch (error) {
      return { unrunnable: `the konnector ${job.message.konnector} cannot be loaded: ${(error as Error).message}` };
    }
  }

  /**
   * The queue's handler. The konnector starts while the claim is written,
   * as soon as its account is read: its capabilities wait for the claim, and
   * it is stopped, having done nothing, if another host has the job. The
   * lease is held from the moment the claim lands.
   */
  async process(message: QueueMessage): Promise<void> {
    if (this.draining) throw new MessageDeclined(message);
    const claiming = this.claimAndHold(message);
    // Under way until the job is held or the claim failed; the konnector starts meanwhile.
    void this.whileClaiming(claiming.then((claimed) => claimed?.held)).catch(() => {});
    const claimed = await claiming;
    if (!claimed) return;
    const { claim, attempt, lines, gate, held } = claimed;
    const [account, found] = await Promise.all([claim.account, this.konnectorFor(claim.job)]);
    if (!account || 'unrunnable' in found) {
      const run = await held;
      if (!run) return;
      if (!account) return this.endUnrun(run, 'HOST.ACCOUNT_NOT_FOUND', `the account ${run.doc.message.account} was deleted before the job ran`);
      return this.endUnrun(run, 'HOST.KONNECTOR_NOT_FOUND', (found as { unrunnable: string }).unrunnable);
    }
    const execution = this.start(claim.job, attempt, account, found.konnector, gate, lines);
    const run = await held.catch(async (error: unknown) => {
      await execution; // stopped before any of its host calls was served
      throw error;
    });
    if (!run) {
      await execution;
      return;
    }
    await this.track(run, account, execution);
  }

  /** Claims the job for `process`; `held` resolves with the running job once the claim landed, or false. */
  private async claimAndHold(message: QueueMessage) {
    const claim = await this.claim(message);
    if (!claim) return null;
    const attempt = claim.job.attempts + 1;
    const lines: JobLogLine[] = [];
    const gate = new JobGate(claim.claimed.then(Boolean));
    const held = claim.claimed.then((claimed) => claimed && this.hold(claimed, attempt, lines, gate));
    held.catch(() => {});
    return { claim, attempt, lines, gate, held };
  }

  /**
   * A job this host writes running at its creation (`createJob`): nobody else can have it. Its konnector starts
   * before `held` (the write landed); if the write fails, the konnector is stopped by its gate and the job does not exist.
   */
  private async runOwned(job: JobDoc, account: AccountDoc, { lines, gate, held }: { lines: JobLogLine[]; gate: JobGate; held: Promise<RunningJob> }): Promise<void> {
    const found = await this.konnectorFor(job);
    const execution = 'unrunnable' in found ? undefined : this.start(job, job.attempts, account, found.konnector, gate, lines);
    const run = await held.catch(() => undefined);
    if (!run) {
      await execution; // createJob reports why the write failed
      return;
    }
    if (!execution) return this.endUnrun(run, 'HOST.KONNECTOR_NOT_FOUND', (found as { unrunnable: string }).unrunnable);
    await this.track(run, account, execution);
  }

  /** Holds the lease of a job whose claim landed: renewed from now on, and no sweep of this host requeues it. */
  private hold(claimed: JobDoc, attempt: number, lines: JobLogLine[], gate: JobGate): RunningJob {
    const run = new RunningJob(claimed, attempt, lines, gate, this);
    this.running.set(claimed._id, run);
    this.opts.metrics.running.inc();
    return run;
  }

  /** The host is done with a job it held. */
  private letGo(run: RunningJob): void {
    if (this.running.get(run.doc._id) === run) this.running.delete(run.doc._id);
    this.opts.metrics.running.dec();
    run.end();
  }

  /** Starts the job's konnector; its capabilities act for the job while the gate is open (job-gate.ts). */
  private start(job: JobDoc, attempt: number, account: AccountDoc, konnector: LoadedKonnector, gate: JobGate, lines: JobLogLine[]): Execution {
    return this.opts.executor
      .execute(
        konnector,
        { jobId: job._id, accountId: account._id, instance: job.instance, fields: account.auth, parameters: {}, manual: job.manual },
        { ...this.opts.env, ...gate.environment((line) => {
          lines.push({ ...line, attempt });
          this.opts.onLogLine?.(job._id);
        }) },
      )
      .then((report) => ({ report }), (error: Error) => ({ failure: error.message }));
  }

  /** Holds the lease while the konnector runs, then writes its outcome. */
  private async track(run: RunningJob, account: AccountDoc, execution: Execution): Promise<void> {
    run.accountRev = account._rev;
    this.opts.metrics.queueWait.observe(Math.max(0, Date.parse(run.doc.started_at!) - Date.parse(run.doc.due_at)) / 1000);
    try {
      const result = await execution;
      run.stop();
      if (run.released) return;
      await run.serialize(() => this.finish(run, 'report' in result ? result.report : undefined, 'failure' in result ? result.failure : undefined));
    } finally {
      this.letGo(run);
    }
  }

  /** Stops renewing and stops the konnector: its outcome is not written. False if it was released already. */
  private release(run: RunningJob, why: string): boolean {
    if (run.released) return false;
    run.released = true;
    run.stop();
    run.gate.revoke(why);
    return true;
  }

  /** Gives the job up (its lease lost or lapsing): another host may run it once the lease has lapsed. */
  giveUp(run: RunningJob, why: string): void {
    if (!this.release(run, why)) return;
    this.opts.log('warning', `job ${run.doc._id}: given up, ${why}; its konnector is stopped and its outcome dropped (the job runs again after its lease)`);
  }

  get leaseMs(): number {
    return this.opts.leaseMs;
  }

  /** This host's lease on a job, from `at`. */
  private leaseFrom(at: number): transition.LeaseTerms {
    return { host: this.opts.hostId, at, leaseMs: this.opts.leaseMs };
  }

  /** Renews the lease and saves the log so far. Losing the job (a conflict) gives it up. */
  async renew(run: RunningJob): Promise<void> {
    if (run.released) return;
    const startedAt = Date.now();
    try {
      run.doc = await this.opts.store.jobs.put(transition.renewLease(run.doc, this.leaseFrom(startedAt), run.logs()));
      if (!run.released) run.leaseWrittenAt(startedAt);
    } catch (e) {
      if (!isConflict(e)) {
        this.opts.log('warning', `job ${run.doc._id}: cannot renew its lease (${(e as Error).message}); trying again`);
        return;
      }
      this.giveUp(run, 'another host took its lease over');
    }
  }

  private async finish(run: RunningJob, report: JobReport | undefined, failure: string | undefined): Promise<void> {
    if (run.released) return;
    const { doc } = run;
    const now = Date.now();
    const end: transition.AttemptEnd = { attempt: run.attempt, host: this.opts.hostId, at: now, logs: run.logs(), accountRev: run.accountRev, report };
    const failed = report
      ? { ...end, error: report.error, message: report.message }
      : { ...end, error: 'HOST.FAILURE' as const, message: `the host failed around the job: ${failure}` };
    const next = report?.state === 'done' ? transition.ack(doc, { ...end, report }) : transition.nack(doc, failed, this.opts.retry);
    let saved: JobDoc;
    try {
      saved = await this.opts.store.jobs.put(next);
    } catch (e) {
      if (!isConflict(e)) throw e;
      this.opts.log('warning', `job ${doc._id}: another host took it over while it ran; this run's outcome is dropped`);
      return;
    }
    const slug = doc.message.konnector;
    if (report) this.opts.metrics.observeAttempt(report);
    if (saved.state === 'queued') {
      this.opts.metrics.retried.inc({ konnector: slug, error: saved.error! });
      await this.enqueue(saved, Date.parse(saved.due_at) - now);
    } else {
      this.opts.metrics.finished.inc({ konnector: slug, state: saved.state, error: saved.error ?? '' });
      await this.recordOnTrigger(saved);
    }
  }

  /** Ends a held job that cannot run (no account, no konnector); the attempt it did not make does not count. */
  private async endUnrun(run: RunningJob, code: HostErrorCode, message: string): Promise<void> {
    run.stop();
    try {
      await run.serialize(async () => {
        if (run.released) return;
        const saved = await this.opts.store.jobs.put(transition.unrunnable(run.doc, { error: code, message, at: Date.now() }));
        this.opts.metrics.finished.inc({ konnector: run.doc.message.konnector, state: 'errored', error: code });
        await this.recordOnTrigger(saved);
      });
    } catch (e) {
      if (!isConflict(e)) throw e;
    } finally {
      this.letGo(run);
    }
  }

  /** The trigger's current_state, as cozy-stack keeps it; a stop lasts while the account stays at the job's revision. */
  private async recordOnTrigger(job: JobDoc): Promise<void> {
    if (!job.trigger_id || !job.finished_at) return;
    try {
      await this.opts.store.triggers.modify(job.trigger_id, (trigger: TriggerDoc) => transition.recordOnTrigger(trigger, job));
    } catch (e) {
      if (!isNotFound(e)) throw e; // the trigger was deleted meanwhile
    }
  }

  /**
   * A job whose host died or drained goes back to the queue without counting
   * the interrupted attempt, unless it was interrupted too often.
   */
  private async requeueInterrupted(doc: JobDoc, why: string, logs?: JobLogLine[]): Promise<JobDoc | null> {
    let saved: JobDoc;
    try {
      saved = await this.opts.store.jobs.put(transition.interrupt(doc, { reason: why, at: Date.now(), logs }, this.opts.maxInterruptions));
    } catch (e) {
      if (isConflict(e)) return null; // another host requeued it, or its host came back and finished it
      throw e;
    }
    this.opts.metrics.requeued.inc({ reason: why.startsWith('drain') ? 'drain' : 'lease-expired' });
    if (saved.state === 'errored') {
      this.opts.metrics.finished.inc({ konnector: doc.message.konnector, state: 'errored', error: 'HOST.INTERRUPTED' });
      await this.recordOnTrigger(saved);
    } else {
      await this.enqueue(saved);
    }
    return saved;
  }

  /**
   * Requeues running jobs whose lease expired, and queues the queued jobs no
   * message may carry any more: every one at start-up, then those due for
   * longer than `stuckForMs` (a message lost with a dead host or a full queue).
   */
  async sweep(options: { startup: boolean; stuckForMs: number }): Promise<void> {
    const { jobs } = this.opts.store;
    const now = Date.now();
    const expired = await jobs.find({ state: 'running', 'lease.expires_at': { $lt: iso(now) } }, { limit: SWEEP_BATCH });
    for (const job of expired) {
      if (this.running.has(job._id)) continue; // ours and alive: the renewal is only late
      await this.requeueInterrupted(job, `its host ${job.lease?.host ?? '?'} stopped renewing its lease`);
    }
    const dueAt = options.startup ? { $gte: '' } : { $lte: iso(now - options.stuckForMs) };
    const due = await jobs.find({ state: 'queued', due_at: dueAt }, { limit: SWEEP_BATCH, sort: [{ state: 'asc' }, { due_at: 'asc' }] });
    for (const job of due) await this.enqueue(job, Date.parse(job.due_at) - now);
  }

  /**
   * Stops taking jobs, lets the running ones finish for `graceMs`, then gives
   * the others back to the queue (their attempt does not count).
   */
  async drain(graceMs: number): Promise<{ finished: number; requeued: number }> {
    this.draining = true;
    await this.opts.queue.pause();
    // Claims under way land (or fail) first, so that every job this host holds is finished or given back below.
    await Promise.allSettled([...this.claiming]);
    const inFlight = [...this.running.values()];
    const allDone = Promise.allSettled(inFlight.map((run) => run.done));
    const timer = sleep(graceMs, 'timeout' as const, { ref: false });
    if ((await Promise.race([allDone.then(() => 'done' as const), timer])) === 'done') return { finished: inFlight.length, requeued: 0 };
    let requeued = 0;
    const why = `drained: its host stopped after a ${graceMs} ms grace period`;
    for (const [id, run] of this.running) {
      run.stop();
      await run.serialize(async () => {
        // Stopped before it is given back, so nothing it does lands after another host has it.
        if (!this.release(run, why)) return;
        const saved = await this.requeueInterrupted(run.doc, why, run.logs());
        if (saved) requeued++;
        else this.opts.log('warning', `job ${id}: could not give it back to the queue: it changed meanwhile`);
      });
    }
    return { finished: inFlight.length - requeued, requeued };
  }
}
