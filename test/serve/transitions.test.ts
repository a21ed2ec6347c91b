/**
 * The job document's transitions as pure functions: the document and the
 * facts of an event in, the next document out (runner/serve/transitions.ts).
 */
import { describe, expect, it } from 'vitest';
import type { JobReport } from '../../runner/sandbox/job.ts';
import type { AccountDoc, JobDoc, JobLogLine, TriggerDoc } from '../../runner/serve/model.ts';
import { ack, claim, interrupt, nack, newJob, recordOnTrigger, renewLease, unrunnable, type AttemptEnd } from '../../runner/serve/transitions.ts';

const T0 = Date.parse('2024-05-01T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const policy = { maxAttempts: 2, baseDelayMs: 1000 };
const lease = (at: number, host = 'host-a') => ({ host, at, leaseMs: 30_000 });
/** Back-off draws in the middle of their +/- 10% range. */
const middle = () => 0.5;

const account: AccountDoc = {
  _id: 'account-1', _rev: '3-abc', account_type: 'bank', instance: 'alice.cozy.example', auth: { login: 'alice' },
  cozyMetadata: { createdAt: iso(T0), updatedAt: iso(T0) },
};

function line(message: string, attempt: number): JobLogLine {
  return { time: iso(T0), level: 'info', source: 'konnector', message, attempt };
}

function report(state: 'done' | 'errored', error: JobReport['error'] = null, message: string | null = null): JobReport {
  return { jobId: 'job-1', slug: 'bank', state, error, message, durationMs: 10, memoryPeakBytes: 1, fuelUsed: null, requests: 0, bytesIn: 0,
    bytesOut: 0, saved: {}, logLines: 0, fuelLimit: null, budgets: {} as JobReport['budgets'] };
}

const queued = (): JobDoc => newJob(account, { id: 'job-1', triggerId: 'trigger-1', manual: false }, policy, T0);
const running = (at = T0 + 100): JobDoc => claim({ ...queued(), _rev: '1-q' }, lease(at));
const ending = (at: number, attempt = 1): AttemptEnd => ({ attempt, host: 'host-a', at, logs: [line('hello', attempt)], accountRev: '3-abc' });

describe('a job from creation to its claim', () => {
  it('is created queued and due now, for the account and its konnector, with the policy\'s attempts', () => {
    expect(queued()).toEqual({
      _id: 'job-1', worker: 'konnector', instance: 'alice.cozy.example', message: { account: 'account-1', konnector: 'bank' },
      trigger_id: 'trigger-1', manual: false, state: 'queued', queued_at: iso(T0), due_at: iso(T0), attempts: 0, max_attempts: 2,
      interruptions: 0, seq: 0, history: [], logs: [],
    });
    expect(newJob(account, { id: 'job-2', manual: true }, policy, T0)).not.toHaveProperty('trigger_id');
  });

  it('is claimed running under the host\'s lease, one more attempt started, its revision kept for the write', () => {
    expect(running(T0 + 100)).toMatchObject({
      _rev: '1-q', state: 'running', attempts: 1, started_at: iso(T0 + 100), lease: { host: 'host-a', expires_at: iso(T0 + 30_100) }, seq: 0,
    });
  });

  it('renews its lease from the write\'s start and saves the log so far, changing nothing else', () => {
    const job = running();
    const logs = [line('so far', 1)];
    expect(renewLease(job, lease(T0 + 10_000), logs)).toEqual({ ...job, lease: { host: 'host-a', expires_at: iso(T0 + 40_000) }, logs });
  });
});

describe('ack and nack: how an attempt ends', () => {
  it('acks a done attempt: done, its report without the job id, the attempt in its history, no lease', () => {
    const done = ack(running(), { ...ending(T0 + 5000), report: report('done') });
    expect(done).toMatchObject({
      state: 'done', finished_at: iso(T0 + 5000), error: null, error_message: null, account_rev: '3-abc', logs: [line('hello', 1)],
      history: [{ attempt: 1, host: 'host-a', started_at: iso(T0 + 100), finished_at: iso(T0 + 5000), state: 'done', error: null, message: null }],
    });
    expect(done.report).toMatchObject({ slug: 'bank', state: 'done' });
    expect(done.report).not.toHaveProperty('jobId');
    expect(done).not.toHaveProperty('lease');
  });

  it('nacks a retryable failure with attempts left back to the queue, due after the back-off, under a new seq', () => {
    const retried = nack(running(), { ...ending(T0 + 5000), error: 'VENDOR_DOWN', message: 'down' }, policy, middle);
    expect(retried).toMatchObject({ state: 'queued', seq: 1, due_at: iso(T0 + 6000), attempts: 1, error: 'VENDOR_DOWN', error_message: 'down',
      history: [{ attempt: 1, state: 'errored', error: 'VENDOR_DOWN', message: 'down' }] });
    expect(retried).not.toHaveProperty('finished_at');
    expect(retried).not.toHaveProperty('lease');
  });

  it('errors a retryable failure on the last attempt, and a failure the user must fix on the first', () => {
    const second = claim(nack(running(), { ...ending(T0 + 5000), error: 'VENDOR_DOWN', message: 'down' }, policy, middle), lease(T0 + 7000));
    expect(second.attempts).toBe(2);
    const last = nack(second, { ...ending(T0 + 9000, 2), error: 'VENDOR_DOWN', message: 'still down' }, policy, middle);
    expect(last).toMatchObject({ state: 'errored', finished_at: iso(T0 + 9000), seq: 1, error: 'VENDOR_DOWN' });
    expect(last.history.map((attempt) => attempt.attempt)).toEqual([1, 2]);

    const login = nack(running(), { ...ending(T0 + 5000), error: 'LOGIN_FAILED', message: 'wrong password' }, policy, middle);
    expect(login).toMatchObject({ state: 'errored', seq: 0, error: 'LOGIN_FAILED', finished_at: iso(T0 + 5000) });
  });

  it('keeps the report of a failed attempt, and none when the host failed around the konnector', () => {
    const failed = report('errored', 'LIMIT_EXCEEDED.MEMORY', 'out of memory');
    expect(nack(running(), { ...ending(T0 + 1), report: failed, error: 'LIMIT_EXCEEDED.MEMORY', message: 'out of memory' }, policy).report)
      .toMatchObject({ error: 'LIMIT_EXCEEDED.MEMORY' });
    expect(nack(running(), { ...ending(T0 + 1), error: 'HOST.FAILURE', message: 'boom' }, policy, middle)).not.toHaveProperty('report');
  });
});

describe('jobs the host does not see through', () => {
  it('errors a job that cannot run without counting the attempt it did not make', () => {
    expect(unrunnable(running(), { error: 'HOST.KONNECTOR_NOT_FOUND', message: 'no artifact', at: T0 + 200 })).toEqual({
      ...queued(), _rev: '1-q', state: 'errored', attempts: 0, started_at: iso(T0 + 100), error: 'HOST.KONNECTOR_NOT_FOUND',
      error_message: 'no artifact', finished_at: iso(T0 + 200),
    });
  });

  it('requeues an interrupted job due now, the attempt not counted and recorded as interrupted by its host', () => {
    const requeued = interrupt(running(), { reason: 'its host stopped renewing its lease', at: T0 + 60_000 }, 3);
    expect(requeued).toMatchObject({
      state: 'queued', attempts: 0, interruptions: 1, seq: 1, due_at: iso(T0 + 60_000),
      history: [{ attempt: 1, host: 'host-a', started_at: iso(T0 + 100), finished_at: iso(T0 + 60_000), state: 'interrupted',
        message: 'its host stopped renewing its lease' }],
    });
    expect(requeued).not.toHaveProperty('lease');
    const logs = [line('before the drain', 1)];
    expect(interrupt(running(), { reason: 'drained', at: T0 + 1, logs }, 3).logs).toEqual(logs);
  });

  it('gives up a job interrupted more than the maximum: errored HOST.INTERRUPTED', () => {
    let job = running();
    for (let n = 1; n <= 3; n++) job = claim(interrupt(job, { reason: 'drained', at: T0 + n * 1000 }, 3), lease(T0 + n * 1000 + 1));
    const given = interrupt(job, { reason: 'drained', at: T0 + 9000 }, 3);
    expect(given).toMatchObject({ state: 'errored', interruptions: 4, attempts: 1, error: 'HOST.INTERRUPTED', finished_at: iso(T0 + 9000),
      error_message: 'the job was interrupted 4 times (drained)' });
    expect(given.history).toHaveLength(4);
  });
});

describe("the trigger's state once its job ended", () => {
  const trigger: TriggerDoc = {
    _id: 'trigger-1', type: '@every', arguments: '1h', worker: 'konnector', message: { account: 'account-1', konnector: 'bank' },
    current_state: { status: 'never' }, cozyMetadata: { createdAt: iso(T0), updatedAt: iso(T0) },
  };

  it('records a success, then a failure with its code and the account revision it ran with', () => {
    const done = ack(running(), { ...ending(T0 + 5000), report: report('done') });
    const afterDone = recordOnTrigger(trigger, done)!;
    expect(afterDone.current_state).toEqual({ status: 'done', last_execution: iso(T0 + 5000), last_executed_job_id: 'job-1',
      last_account_rev: '3-abc', last_success: iso(T0 + 5000), last_successful_job_id: 'job-1' });

    const failed = nack(running(T0 + 6000), { ...ending(T0 + 7000), error: 'LOGIN_FAILED', message: 'no' }, policy);
    expect(recordOnTrigger(afterDone, failed)!.current_state).toMatchObject({ status: 'errored', last_execution: iso(T0 + 7000),
      last_success: iso(T0 + 5000), last_failure: iso(T0 + 7000), last_failed_job_id: 'job-1', last_error: 'LOGIN_FAILED' });
  });

  it('leaves the trigger as it is for a job that has not ended or that a later job already followed', () => {
    expect(recordOnTrigger(trigger, running())).toBeNull();
    const later = recordOnTrigger(trigger, ack(running(), { ...ending(T0 + 9000), report: report('done') }))!;
    expect(recordOnTrigger(later, ack(running(), { ...ending(T0 + 5000), report: report('done') }))).toBeNull();
  });
});
