/**
 * How the host runs one job. The sandbox behind runJob decides how workers
 * are made (today a fresh worker per job); the host only needs this call, so
 * a warm worker pool in runner/sandbox/sandbox.ts changes nothing here.
 */
import { runJob, type JobEnvironment, type JobReport, type JobRequest } from '../sandbox/job.ts';
import type { LoadedKonnector } from '../sandbox/loader.ts';

export interface JobExecutor {
  /** Resolves with the job's report whatever the konnector does; rejects only for host faults. */
  execute(konnector: LoadedKonnector, request: JobRequest, env: JobEnvironment): Promise<JobReport>;
}

export const sandboxExecutor: JobExecutor = { execute: runJob };
