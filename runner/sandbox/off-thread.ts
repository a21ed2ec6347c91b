/**
 * One synchronous, seconds-long piece of work run in a worker thread of its own, so that a host's main thread
 * stays free meanwhile (a worker host must keep renewing its leases): the worker entry (TypeScript, loaded through
 * worker-boot.mjs) reads `workerData.request`, posts one answer and is then terminated.
 */
import { Worker } from 'node:worker_threads';

const workerBoot = new URL('./worker-boot.mjs', import.meta.url);

export function answerOffThread<Answer>(entry: URL, request: unknown, what: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerBoot, { workerData: { entry: entry.href, request }, env: {} });
    worker.once('message', (answer: Answer) => {
      resolve(answer);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the ${what} worker exited (code ${code}) without an answer`)));
  });
}
