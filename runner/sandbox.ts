import { MessageChannel, Worker } from 'node:worker_threads';
import type { Documents } from '../host-api/documents.ts';
import { DocumentsError } from '../host-api/documents.ts';
import { HttpError } from '../host-api/http/errors.ts';
import type { Http } from '../host-api/http/index.ts';
import { JobLog, LogBudgetExceeded, type LogLevel } from '../host-api/log.ts';
import { serveGuest, type GuestMessage, type HostAnswer } from './bridge.ts';
import { cozyErrorCode, type CozyErrorCode, type SandboxErrorCode } from './error-codes.ts';
import type { GuestOutcome, GuestWorkerData } from './guest-worker.ts';
import type { Limits } from './limits.ts';
import type { LoadedKonnector } from './loader.ts';

/** The capabilities one job's guest reaches: one instance of each, private to the job. */
export interface JobCapabilities {
  http: Http;
  documents: Documents;
  log: JobLog;
}

export type JobInput = GuestWorkerData['job'];

export interface JobOutcome {
  state: 'done' | 'errored';
  error: CozyErrorCode | SandboxErrorCode | null;
  message: string | null;
  durationMs: number;
  memoryPeakBytes: number;
}

const workerBoot = new URL('./worker-boot.mjs', import.meta.url);
const workerEntry = new URL('./guest-worker.ts', import.meta.url).href;

/** Host faults that end the job (the guest is not answered). */
class JobEnded extends Error {
  constructor(
    readonly code: SandboxErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Host calls: which capability answers, with typed errors turned into WIT `err` payloads. */
async function answer(message: GuestMessage, caps: JobCapabilities): Promise<HostAnswer | undefined> {
  const [a, b, c] = message.args;
  try {
    switch (message.op) {
      case 'log.write':
        caps.log.write(a as LogLevel, String(b));
        return undefined;
      case 'http.send':
        return { ok: await caps.http.send(a as Parameters<Http['send']>[0]) };
      case 'documents.save':
        return { ok: await caps.documents.save(String(a), String(b)) };
      case 'documents.find':
        return { ok: await caps.documents.find(String(a), String(b), Number(c)) };
    }
  } catch (error) {
    if (error instanceof HttpError || error instanceof DocumentsError) {
      return { err: { kind: error.kind, message: error.message } };
    }
    if (error instanceof LogBudgetExceeded) throw new JobEnded('LIMIT_EXCEEDED.LOG', error.message);
    throw error;
  }
  throw new Error(`unknown host call ${String(message.op)}`);
}

/**
 * The engine turns a refused memory.grow into an `unreachable` trap, so a trap
 * with linear memory within one large allocation of its cap is taken for the
 * memory limit. (Fuel metering will price memory.grow and tell for sure.)
 */
function trapCode(outcome: Extract<GuestOutcome, { type: 'trapped' }>, limits: Limits): SandboxErrorCode {
  const slack = Math.max(16 * 1024 * 1024, limits.memoryBytes / 8);
  const nearCap = outcome.memoryBytes >= limits.memoryBytes - slack;
  return nearCap || /out of memory/i.test(outcome.message) ? 'LIMIT_EXCEEDED.MEMORY' : 'UNKNOWN_ERROR.CRASH';
}

/**
 * Runs one job in a fresh worker and a fresh component instance. Resolves
 * with the outcome whatever the guest does: returning, failing with a code,
 * trapping, looping forever or exhausting memory. Never rejects for guest
 * behaviour.
 */
export async function runInSandbox(
  konnector: LoadedKonnector,
  job: JobInput,
  caps: JobCapabilities,
  limits: Limits,
): Promise<JobOutcome> {
  const started = performance.now();
  const { port1: hostPort, port2: guestPort } = new MessageChannel();
  const signal = new SharedArrayBuffer(4);
  let memoryPeakBytes = 0;

  const worker = new Worker(workerBoot, {
    workerData: {
      entry: workerEntry,
      glue: konnector.glue,
      modules: konnector.modules,
      port: guestPort,
      signal,
      job,
    } satisfies GuestWorkerData,
    transferList: [guestPort],
    env: {},
    // Caps the JS heap of the glue; linear memory is capped in the module itself.
    resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
  });

  const outcome = await new Promise<Omit<JobOutcome, 'durationMs' | 'memoryPeakBytes'>>((resolve) => {
    let settled = false;
    const finish = (result: Omit<JobOutcome, 'durationMs' | 'memoryPeakBytes'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
      void worker.terminate();
    };
    const end = (code: SandboxErrorCode, message: string) => {
      if (settled) return;
      caps.log.write('error', message, 'runner');
      finish({ state: 'errored', error: code, message });
    };
    const timer = setTimeout(
      () => end('LIMIT_EXCEEDED.WALL_CLOCK', `the job ran longer than its wall-clock limit of ${limits.wallClockMs} ms`),
      limits.wallClockMs,
    );

    serveGuest(
      hostPort,
      signal,
      async (message) => {
        memoryPeakBytes = Math.max(memoryPeakBytes, message.memoryBytes);
        if (settled) return undefined;
        return answer(message, caps);
      },
      (fault) => {
        if (fault instanceof JobEnded) end(fault.code, fault.message);
        else end('UNKNOWN_ERROR.CRASH', `host fault while serving the konnector: ${(fault as Error).message}`);
      },
    );

    worker.on('message', (result: GuestOutcome) => {
      memoryPeakBytes = Math.max(memoryPeakBytes, result.memoryBytes);
      switch (result.type) {
        case 'returned':
          return finish({ state: 'done', error: null, message: null });
        case 'failed': {
          const code = cozyErrorCode(result.code);
          caps.log.write('error', `the konnector failed with ${code}: ${result.message}`, 'runner');
          return finish({ state: 'errored', error: code, message: result.message });
        }
        case 'trapped':
          return end(trapCode(result, limits), `the konnector crashed: ${result.message}`);
      }
    });
    worker.on('error', (error: Error & { code?: string }) => {
      if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') end('LIMIT_EXCEEDED.MEMORY', `the konnector's glue heap ran out of memory`);
      else end('UNKNOWN_ERROR.CRASH', `the sandbox worker failed: ${error.message}`);
    });
    worker.on('exit', (exitCode) => end('UNKNOWN_ERROR.CRASH', `the sandbox worker exited (code ${exitCode}) before the job ended`));
  });

  hostPort.close();
  return { ...outcome, durationMs: Math.round(performance.now() - started), memoryPeakBytes };
}
