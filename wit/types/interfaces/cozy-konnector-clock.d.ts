/** @module Interface cozy:konnector/clock@0.1.0 **/
/**
 * Milliseconds since the Unix epoch.
 */
export function now(): bigint;
/**
 * Blocks the konnector for `ms` milliseconds: what its timers (setTimeout)
 * wait on, to pace requests as a vendor asks. Waiting spends no fuel; it
 * counts against the job's wall-clock limit, which ends a job that sleeps
 * past it.
 */
export function sleep(ms: number): void;
