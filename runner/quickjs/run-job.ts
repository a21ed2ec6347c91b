/**
 * Runs one engine call on the QuickJS engine in a worker thread of its own, outside a job's capabilities (the
 * engine's own tests: standalone.ts answers its calls), terminated when the wall clock runs out. A konnector's
 * job, with its capabilities, budgets and report, is runner/sandbox/job.ts runJob with a QuickjsKonnector
 * (job.ts). The clock starts when the worker
 * starts the job: loading the thread is not the konnector's time.
 */
import { Worker } from 'node:worker_threads';
import type { EngineCallResult, KonnectorCode, LogLine } from './instance.ts';

export interface WorkerRequest extends KonnectorCode {
  /** The engine (engine.ts), metered when `budget` is set. */
  engine: WebAssembly.Module;
  budget?: bigint;
}

export type WorkerMessage = { started: true } | { log: LogLine } | { result: EngineCallResult };

export type JobResult = (EngineCallResult | { outcome: 'timeout'; error: string }) & { logs: LogLine[] };

const workerBoot = new URL('../sandbox/worker-boot.mjs', import.meta.url);
const workerEntry = new URL('./worker.ts', import.meta.url).href;

export function runJob(request: WorkerRequest, { wallClockMs }: { wallClockMs: number }): Promise<JobResult> {
  const logs: LogLine[] = [];
  const thread = new Worker(workerBoot, {
    workerData: { entry: workerEntry, request },
    env: {},
    // Caps the glue's JS heap; linear memory is capped in the engine module.
    resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 },
  });
  return new Promise<JobResult>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const settle = (done: () => void) => {
      clearTimeout(timer);
      void thread.terminate();
      done();
    };
    thread.on('message', (message: WorkerMessage) => {
      if ('started' in message) {
        timer = setTimeout(() => {
          void thread.terminate();
          resolve({ outcome: 'timeout', error: `the job ran past its wall-clock limit of ${wallClockMs} ms`, logs });
        }, wallClockMs);
      } else if ('log' in message) logs.push(message.log);
      else settle(() => resolve({ ...message.result, logs }));
    });
    thread.on('error', (error) => settle(() => reject(error)));
    thread.on('exit', (code) => settle(() => reject(new Error(`the QuickJS worker exited (code ${code}) before reporting a result`))));
  });
}
