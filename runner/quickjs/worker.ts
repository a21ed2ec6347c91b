/**
 * Worker thread entry of the engine's own runs outside a job (standalone.ts: no http, documents or files): says it starts (the wall clock runs from there), makes
 * one engine call, streams its log lines to the parent as they come (so a job
 * stopped at the wall clock keeps them), then posts its result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runInEngine } from './instance.ts';
import { standaloneHost } from './standalone.ts';
import type { WorkerMessage, WorkerRequest } from './run-job.ts';

const { request } = workerData as { request: WorkerRequest };
const post = (message: WorkerMessage) => parentPort!.postMessage(message);
post({ started: true });
const result = runInEngine(request.engine, { code: request.code, job: request.job }, { budget: request.budget, ...standaloneHost((log) => post({ log })) });
post({ result });
