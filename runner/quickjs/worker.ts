/**
 * Worker thread entry: one engine call, its log lines streamed to the parent
 * as they come (so a job stopped at the wall clock keeps them), then its result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runInEngine } from './instance.ts';
import type { WorkerMessage, WorkerRequest } from './run-job.ts';

const { request } = workerData as { request: WorkerRequest };
const post = (message: WorkerMessage) => parentPort!.postMessage(message);
const result = runInEngine(request.engine, { code: request.code, job: request.job }, { budget: request.budget, onLog: (log) => post({ log }) });
post({ result });
