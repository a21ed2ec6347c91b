/**
 * How a job document changes, one named transition per event, as cozy-stack's
 * model/job names Ack and Nack. Each takes the document and the facts of the
 * event and returns the next document: no I/O, no clock. The processor
 * (processor.ts) decides when each applies and writes the result at the
 * revision it read, so a host that lost the race writes nothing.
 *
 *   newJob ──> queued ──claim──> running ──ack──────────> done
 *                ^                  │ └──nack───────────> queued after a back-off, or errored
 *                │                  ├──interrupt────────> queued (attempt not counted), or errored HOST.INTERRUPTED
 *                │                  ├──unrunnable───────> errored (no account or konnector; attempt not counted)
 *                │                  └──renewLease──┐
 *                └── (requeued)              <─────┘ running, lease extended
 */
import type { HostErrorCode, JobErrorCode } from '../error-codes.ts';
import type { JobReport } from '../sandbox/job.ts';
import type { AccountDoc, JobAttempt, JobDoc, JobLogLine, TriggerDoc } from './model.ts';
import { isRetryable, retryDelayMs, type RetryPolicy } from './policy.ts';

const iso = (ms: number) => new Date(ms).toISOString();

/** Who holds a job, since when, and for how long without renewal. */
export interface LeaseTerms {
  host: string;
  at: number;
  leaseMs: number;
}

/** What the host knows when an attempt it ran ends. */
export interface AttemptEnd {
  attempt: number;
  host: string;
  at: number;
  /** The job's whole log, this attempt's lines included. */
  logs: JobLogLine[];
  /** The account's revision the attempt ran with: a trigger's stop lasts while the account stays at it. */
  accountRev?: string;
  /** The sandbox's report; none when the host failed around the konnector. */
  report?: JobReport;
}

/** A job for an account, queued and due now. */
export function newJob(account: AccountDoc, options: { id: string; triggerId?: string; manual: boolean }, policy: RetryPolicy, at: number): JobDoc {
  const now = iso(at);
  return {
    _id: options.id,
    worker: 'konnector',
    instance: account.instance,
    message: { account: account._id, konnector: account.account_type },
    ...(options.triggerId ? { trigger_id: options.triggerId } : {}),
    manual: options.manual,
    state: 'queued',
    queued_at: now,
    due_at: now,
    attempts: 0,
    max_attempts: policy.maxAttempts,
    interruptions: 0,
    seq: 0,
    history: [],
    logs: [],
  };
}

/** A host takes a queued job: running under its lease, one more attempt started. */
export function claim(job: JobDoc, lease: LeaseTerms): JobDoc {
  return { ...job, state: 'running', attempts: job.attempts + 1, started_at: iso(lease.at), lease: leaseUntil(lease) };
}

/** The host still runs the job: its lease extended, the log so far saved with it. */
export function renewLease(job: JobDoc, lease: LeaseTerms, logs: JobLogLine[]): JobDoc {
  return { ...job, lease: leaseUntil(lease), logs };
}

/** The attempt succeeded: the job is done. */
export function ack(job: JobDoc, end: AttemptEnd & { report: JobReport }): JobDoc {
  return { ...ended(job, end, 'done', end.report.error, end.report.message), state: 'done', finished_at: iso(end.at) };
}

/**
 * The attempt failed with `error`: the job runs again after a back-off while
 * the policy retries the code and attempts remain, else it is errored.
 */
export function nack(
  job: JobDoc,
  end: AttemptEnd & { error: JobErrorCode | null; message: string | null },
  policy: RetryPolicy,
  random: () => number = Math.random,
): JobDoc {
  const next = ended(job, end, 'errored', end.error, end.message);
  const retry = end.error !== null && isRetryable(end.error) && end.attempt < job.max_attempts;
  return retry
    ? { ...next, state: 'queued', seq: job.seq + 1, due_at: iso(end.at + retryDelayMs(policy, end.attempt, random)) }
    : { ...next, state: 'errored', finished_at: iso(end.at) };
}

/** A claimed job that cannot run (its account or konnector is gone): errored; the attempt it did not make does not count. */
export function unrunnable(job: JobDoc, why: { error: HostErrorCode; message: string; at: number }): JobDoc {
  const { lease: _lease, ...rest } = job;
  return { ...rest, attempts: job.attempts - 1, state: 'errored', error: why.error, error_message: why.message, finished_at: iso(why.at) };
}

/**
 * The job's host died (its lease expired) or drained: the job goes back to
 * the queue without counting the interrupted attempt, unless it was
 * interrupted more than `maxInterruptions` times (errored HOST.INTERRUPTED).
 */
export function interrupt(job: JobDoc, why: { reason: string; at: number; logs?: JobLogLine[] }, maxInterruptions: number): JobDoc {
  const now = iso(why.at);
  const interruptions = job.interruptions + 1;
  const history: JobAttempt[] = [...job.history, {
    attempt: job.attempts, host: job.lease?.host ?? 'unknown', started_at: job.started_at ?? now, finished_at: now, state: 'interrupted', message: why.reason,
  }];
  const { lease: _lease, ...rest } = job;
  const logs = why.logs ?? job.logs;
  return interruptions > maxInterruptions
    ? { ...rest, state: 'errored', interruptions, history, logs, finished_at: now, error: 'HOST.INTERRUPTED',
        error_message: `the job was interrupted ${interruptions} times (${why.reason})` }
    : { ...rest, state: 'queued', interruptions, history, logs, attempts: job.attempts - 1, seq: job.seq + 1, due_at: now };
}

/**
 * The trigger's current_state once one of its jobs ended, as cozy-stack keeps
 * it (a stop lasts while the account stays at the job's revision); null when
 * the job has not ended or a later job already recorded.
 */
export function recordOnTrigger(trigger: TriggerDoc, job: JobDoc): TriggerDoc | null {
  const at = job.finished_at;
  if (!at || (job.state !== 'done' && job.state !== 'errored')) return null;
  const last = trigger.current_state.last_execution;
  if (last && last > at) return null;
  const state = { ...trigger.current_state, status: job.state, last_execution: at, last_executed_job_id: job._id,
    ...(job.account_rev ? { last_account_rev: job.account_rev } : {}) };
  if (job.state === 'done') Object.assign(state, { last_success: at, last_successful_job_id: job._id });
  else Object.assign(state, { last_failure: at, last_failed_job_id: job._id, last_error: job.error ?? 'UNKNOWN_ERROR' });
  return { ...trigger, current_state: state };
}

function leaseUntil(lease: LeaseTerms): NonNullable<JobDoc['lease']> {
  return { host: lease.host, expires_at: iso(lease.at + lease.leaseMs) };
}

/** The job leaves its attempt: no lease, the attempt in its history, its outcome and log kept. */
function ended(job: JobDoc, end: AttemptEnd, state: 'done' | 'errored', error: JobErrorCode | null, message: string | null): Omit<JobDoc, 'lease'> {
  const { lease: _lease, ...rest } = job;
  return {
    ...rest,
    ...(end.accountRev ? { account_rev: end.accountRev } : {}),
    error,
    error_message: message,
    ...(end.report ? { report: withoutJobId(end.report) } : {}),
    history: [...job.history, { attempt: end.attempt, host: end.host, started_at: job.started_at!, finished_at: iso(end.at), state, error, message }],
    logs: end.logs,
  };
}

function withoutJobId(report: JobReport): Omit<JobReport, 'jobId'> {
  const { jobId: _jobId, ...rest } = report;
  return rest;
}
