/**
 * cozy-stack's job policy for konnectors (model/job/worker.go,
 * worker/exec/konnector.go), with the sandbox's own codes placed in it.
 */
export interface RetryPolicy {
  /** Executions of a job at most, the first one included (cozy-stack: MaxExecCount 2). */
  maxAttempts: number;
  /** Back-off before the n-th retry: baseDelayMs << (n - 1), +/- 10% (cozy-stack's RetryDelay defaults to 60 ms). */
  baseDelayMs: number;
}

export const COZY_STACK_RETRY: RetryPolicy = { maxAttempts: 2, baseDelayMs: 60 };

import { needsTheUser, type JobErrorCode } from '../error-codes.ts';

/** Outcomes that would come out the same on a second run. */
const DETERMINISTIC: ReadonlySet<JobErrorCode> = new Set<JobErrorCode>(['LIMIT_EXCEEDED.MEMORY', 'LIMIT_EXCEEDED.LOG_LINES',
  'LIMIT_EXCEEDED.LOG_BYTES', 'HOST.ACCOUNT_NOT_FOUND', 'HOST.KONNECTOR_NOT_FOUND', 'HOST.INTERRUPTED']);

/** Whether a job that ended with this code is run again (while attempts remain). */
export function isRetryable(code: JobErrorCode): boolean {
  return !needsTheUser(code) && !DETERMINISTIC.has(code);
}

/**
 * Whether this code stops the automatic runs of the job's trigger until the
 * account is updated: LOGIN_FAILED and USER_ACTION_NEEDED, but not
 * USER_ACTION_NEEDED.CGU_FORM (new terms to accept on the vendor's site do not
 * make the credentials wrong).
 */
export function stopsTrigger(code: JobErrorCode): boolean {
  return needsTheUser(code) && code !== 'USER_ACTION_NEEDED.CGU_FORM';
}

/** Back-off before running a job again after its `attemptsDone`-th attempt failed. */
export function retryDelayMs(policy: RetryPolicy, attemptsDone: number, random: () => number = Math.random): number {
  const delay = policy.baseDelayMs * 2 ** Math.max(attemptsDone - 1, 0);
  return Math.round(delay * (0.9 + 0.2 * random()));
}
