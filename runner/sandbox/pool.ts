import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { GUEST_IMPORTS } from './capabilities.ts';
import type { RunMessage } from './guest-worker.ts';

const workerBoot = new URL('./worker-boot.mjs', import.meta.url);
/** The worker thread's code by engine: the component path's, or QuickJS's (same protocol). */
const WORKER_ENTRIES = {
  'componentize-js': new URL('./guest-worker.ts', import.meta.url).href,
  quickjs: new URL('../quickjs/guest-worker.ts', import.meta.url).href,
} as const;

export type EngineName = keyof typeof WORKER_ENTRIES;

/** One sandbox worker thread and the konnectors whose code it already holds. */
export class SandboxWorker {
  readonly knows = new Set<string>();
  /** The konnector whose fresh instance the worker makes after each job (see guest-worker.ts). */
  prepared: string | undefined;
  readonly ready: Promise<void>;

  constructor(readonly thread: Worker) {
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (message: { type?: string }) => {
        if (message.type !== 'ready') return;
        thread.off('message', onMessage);
        thread.off('error', reject);
        resolve();
      };
      thread.on('message', onMessage);
      thread.once('error', reject);
    });
  }

  post(message: RunMessage): void {
    this.thread.postMessage(message, [message.port]);
  }
}

/**
 * Warm worker threads, reused from job to job. A worker whose job ended
 * normally (returned, failed or trapped: the instance is discarded either way)
 * goes back to the pool; one that was terminated or crashed is replaced.
 * Idle workers do not keep the process alive.
 */
export class SandboxPool {
  private readonly idle: SandboxWorker[] = [];
  private busy = 0;
  private readonly waiting: Array<(worker: SandboxWorker) => void> = [];

  constructor(
    readonly size: number = availableParallelism() * 2,
    readonly engine: EngineName = 'componentize-js',
  ) {}

  private spawn(): SandboxWorker {
    const thread = new Worker(workerBoot, {
      workerData: { entry: WORKER_ENTRIES[this.engine], imports: GUEST_IMPORTS },
      env: {},
      // Caps the JS heap of the glue; linear memory is capped in the module itself.
      resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
    });
    thread.unref();
    return new SandboxWorker(thread);
  }

  /** Starts `count` workers ahead of the first jobs. */
  async warm(count = this.size): Promise<void> {
    const fresh = Array.from({ length: Math.max(0, Math.min(count, this.size) - this.idle.length - this.busy) }, () => this.spawn());
    await Promise.all(fresh.map((worker) => worker.ready));
    this.idle.push(...fresh);
  }

  /** An idle worker for the konnector: one with its instance ready, else one holding its code, else any. */
  private takeIdle(konnectorId: string): SandboxWorker | undefined {
    let chosen = this.idle.length - 1;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const worker = this.idle[i]!;
      if (worker.prepared === konnectorId) {
        chosen = i;
        break;
      }
      if (worker.knows.has(konnectorId) && !this.idle[chosen]!.knows.has(konnectorId)) chosen = i;
    }
    return chosen < 0 ? undefined : this.idle.splice(chosen, 1)[0];
  }

  /** A worker for one job of the konnector; waits when `size` jobs already run. */
  async acquire(konnectorId: string): Promise<SandboxWorker> {
    let worker = this.takeIdle(konnectorId) ?? (this.busy < this.size ? this.spawn() : undefined);
    if (worker) this.busy += 1;
    // A waiter is handed a worker by release/discard, which keep it counted as busy.
    else worker = await new Promise<SandboxWorker>((resolve) => this.waiting.push(resolve));
    worker.thread.ref();
    try {
      await worker.ready;
    } catch (error) {
      await this.discard(worker);
      throw error;
    }
    return worker;
  }

  /** Gives back a worker whose thread is still sound. */
  release(worker: SandboxWorker): void {
    worker.thread.unref();
    const next = this.waiting.shift();
    if (next) return next(worker);
    this.busy -= 1;
    this.idle.push(worker);
  }

  /** Stops a worker (wall clock, crash) and makes room for a fresh one. */
  async discard(worker: SandboxWorker): Promise<void> {
    await worker.thread.terminate();
    const next = this.waiting.shift();
    if (next) return next(this.spawn());
    this.busy -= 1;
  }

  async close(): Promise<void> {
    const all = this.idle.splice(0);
    await Promise.all(all.map((worker) => worker.thread.terminate()));
  }
}

const shared = new Map<EngineName, SandboxPool>();

/** The process-wide pool of an engine's workers: what `runInSandbox` uses by default. */
export function sharedPool(engine: EngineName = 'componentize-js'): SandboxPool {
  let pool = shared.get(engine);
  if (!pool) {
    pool = new SandboxPool(undefined, engine);
    shared.set(engine, pool);
  }
  return pool;
}
