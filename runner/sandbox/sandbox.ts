import { MessageChannel } from 'node:worker_threads';
import { BudgetExceeded } from '../../host-api/budget.ts';
import type { JobCapabilities } from '../../host-api/index.ts';
import { cutLine } from '../../host-api/log.ts';
import { serveGuest, type GuestMessage, type GuestUsage, type HostAnswer } from './bridge.ts';
import { dispatch } from './capabilities.ts';
import { cozyErrorCode, type CozyErrorCode, type SandboxErrorCode } from '../error-codes.ts';
import type { GuestJob, GuestOutcome, RunMessage } from './guest-worker.ts';
import type { Limits } from '../limits.ts';
import type { LoadedKonnector } from './loader.ts';
import { sharedPool, type EngineName, type SandboxPool } from './pool.ts';

export type JobInput = GuestJob;

/** The engine a loaded konnector runs on: QuickJS's carry their bytecode (runner/quickjs/job.ts). */
export const engineOf = (konnector: LoadedKonnector): EngineName => ('bytecode' in konnector ? 'quickjs' : 'componentize-js');

export interface JobOutcome {
  state: 'done' | 'errored';
  error: CozyErrorCode | SandboxErrorCode | null;
  message: string | null;
  durationMs: number;
  memoryPeakBytes: number;
  /** Fuel the guest spent (for a job the host stopped: as of its last host call); null when unmetered. */
  fuelUsed: number | null;
}

/** Host faults that end the job (the guest is not answered). */
class JobEnded extends Error {
  constructor(
    readonly code: SandboxErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The caller stopped the job (see `stop` in runInSandbox): it has no outcome of its own. */
export class JobStopped extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'JobStopped';
  }
}

/** A host call, answered by the job's capability (runner/sandbox/capabilities.ts); a spent budget ends the job. */
async function answer(message: GuestMessage, caps: JobCapabilities): Promise<HostAnswer | undefined> {
  try {
    return await dispatch(message.op, message.args, caps);
  } catch (error) {
    if (error instanceof BudgetExceeded) throw new JobEnded(`LIMIT_EXCEEDED.${error.budget}`, error.message);
    throw error;
  }
}

/**
 * A refused memory.grow surfaces in the guest as SpiderMonkey's catchable "out
 * of memory" error, or as an `unreachable` trap. Taken for the memory limit: a
 * trap near the cap or saying so; a failure the konnector left as the engine's
 * bare "out of memory" (one allocation larger than what is left under the cap
 * fails far below it); any "out of memory" failure near the cap.
 */
function hitMemoryCap(outcome: { message: string; memoryBytes: number; code?: string }, limits: Limits, trapped: boolean): boolean {
  const slack = Math.max(16 * 1024 * 1024, limits.memoryBytes / 8);
  const nearCap = outcome.memoryBytes >= limits.memoryBytes - slack;
  const saysOutOfMemory = /out of memory/i.test(outcome.message);
  if (trapped) return nearCap || saysOutOfMemory;
  const enginesOwn = outcome.code === 'unknown-error' && outcome.message.trim().toLowerCase() === 'out of memory';
  return enginesOwn || (nearCap && saysOutOfMemory);
}

/**
 * Runs one job in a fresh component instance on a pooled worker. Resolves
 * with the outcome whatever the guest does: returning, failing with a code,
 * trapping, looping forever or exhausting memory. Never rejects for guest
 * behaviour.
 *
 * An aborted `stop` stops the guest at once and serves none of its further
 * calls: runInSandbox then rejects with JobStopped, saying the signal's reason.
 */
export async function runInSandbox(
  konnector: LoadedKonnector,
  job: JobInput,
  caps: JobCapabilities,
  limits: Limits,
  pool: SandboxPool = sharedPool(engineOf(konnector)),
  stop?: AbortSignal,
): Promise<JobOutcome> {
  if (pool.engine !== engineOf(konnector)) throw new Error(`a konnector for ${engineOf(konnector)} cannot run on a pool of ${pool.engine} workers`);
  const started = performance.now();
  const worker = await pool.acquire(konnector.id);
  const { port1: hostPort, port2: guestPort } = new MessageChannel();
  const signal = new SharedArrayBuffer(4);
  let memoryPeakBytes = 0;
  let fuelUsed: number | null = konnector.metered ? 0 : null;
  const noteUsage = (usage: GuestUsage) => {
    memoryPeakBytes = Math.max(memoryPeakBytes, usage.memoryBytes);
    if (usage.fuelUsed !== null) fuelUsed = Math.max(fuelUsed ?? 0, usage.fuelUsed);
  };
  let workerSound = true;
  let stoppedBecause: string | undefined;

  const outcome = await new Promise<Omit<JobOutcome, 'durationMs' | 'memoryPeakBytes' | 'fuelUsed'>>((resolve) => {
    let settled = false;
    const finish = (result: Omit<JobOutcome, 'durationMs' | 'memoryPeakBytes' | 'fuelUsed'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop?.removeEventListener('abort', onAbort);
      worker.thread.off('message', onOutcome).off('error', onError).off('exit', onExit);
      resolve(result);
    };
    /** Ends the job from the host side: the worker is stopped mid-flight and replaced. */
    const end = (code: SandboxErrorCode, message: string) => {
      if (settled) return;
      workerSound = false;
      caps.log.write('error', message, 'runner');
      finish({ state: 'errored', error: code, message });
    };
    /** The caller stopped the job: it has no outcome (JobStopped below). */
    const onAbort = () => {
      if (settled) return;
      stoppedBecause = String(stop!.reason);
      workerSound = false;
      finish({ state: 'errored', error: 'UNKNOWN_ERROR.CRASH', message: stoppedBecause }); // a placeholder, never reported
    };
    const timer = setTimeout(
      () => end('LIMIT_EXCEEDED.WALL_CLOCK', `the job ran longer than its wall-clock limit of ${limits.wallClockMs} ms`),
      limits.wallClockMs,
    );

    const server = serveGuest(
      hostPort,
      signal,
      async (message) => {
        noteUsage(message);
        if (settled) return undefined;
        return answer(message, caps);
      },
      (fault) => {
        if (fault instanceof JobEnded) end(fault.code, fault.message);
        else end('UNKNOWN_ERROR.CRASH', `host fault while serving the konnector: ${(fault as Error).message}`);
      },
    );

    // The outcome comes on the worker's port, the guest's last log lines on
    // the job's port: handle those lines first.
    const onOutcome = (result: GuestOutcome) => void server.drain().then(() => settle(result));
    const settle = (result: GuestOutcome) => {
      noteUsage(result);
      // The guest's message goes into the report (and serve's job document): bounded like a log line.
      const guestMessage = 'message' in result ? cutLine(result.message, limits.log.maxLineBytes) : '';
      switch (result.type) {
        case 'returned':
          return finish({ state: 'done', error: null, message: null });
        case 'failed': {
          const code = hitMemoryCap(result, limits, false) ? 'LIMIT_EXCEEDED.MEMORY' : cozyErrorCode(result.code);
          caps.log.write('error', `the konnector failed with ${code}: ${guestMessage}`, 'runner');
          return finish({ state: 'errored', error: code, message: guestMessage });
        }
        case 'trapped': {
          if (result.fuelExhausted) {
            const message = `the konnector ran out of fuel: the job exceeded its FUEL budget (limit ${limits.fuel}, used ${result.fuelUsed})`;
            caps.log.write('error', message, 'runner');
            return finish({ state: 'errored', error: 'LIMIT_EXCEEDED.FUEL', message });
          }
          const message = `the konnector crashed: ${guestMessage}`;
          caps.log.write('error', message, 'runner');
          return finish({ state: 'errored', error: hitMemoryCap(result, limits, true) ? 'LIMIT_EXCEEDED.MEMORY' : 'UNKNOWN_ERROR.CRASH', message });
        }
      }
    };
    const onError = (error: Error & { code?: string }) => {
      if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') end('LIMIT_EXCEEDED.MEMORY', `the konnector's glue heap ran out of memory`);
      else end('UNKNOWN_ERROR.CRASH', `the sandbox worker failed: ${error.message}`);
    };
    const onExit = (exitCode: number) => end('UNKNOWN_ERROR.CRASH', `the sandbox worker exited (code ${exitCode}) before the job ended`);
    worker.thread.on('message', onOutcome).on('error', onError).on('exit', onExit);
    stop?.addEventListener('abort', onAbort);
    if (stop?.aborted) return onAbort();

    const code = worker.knows.has(konnector.id)
      ? undefined
      : { glue: konnector.glue, modules: konnector.modules, snapshots: konnector.snapshots, ...('bytecode' in konnector ? { bytecode: konnector.bytecode as Uint8Array } : {}) };
    worker.knows.add(konnector.id);
    const fuel = konnector.metered ? BigInt(limits.fuel) : null;
    try {
      worker.post({ type: 'run', konnectorId: konnector.id, code, port: guestPort, signal, job, fuel } satisfies RunMessage);
    } catch (error) {
      end('UNKNOWN_ERROR.CRASH', `the job could not be handed to its worker: ${(error as Error).message}`);
    }
  });

  hostPort.close();
  if (stoppedBecause !== undefined) {
    await pool.discard(worker);
    throw new JobStopped(stoppedBecause);
  }
  if (workerSound) {
    worker.prepared = konnector.id;
    pool.release(worker);
  }
  else await pool.discard(worker);
  return { ...outcome, durationMs: Math.round(performance.now() - started), memoryPeakBytes, fuelUsed };
}
