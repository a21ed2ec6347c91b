/**
 * Runs ONE job's component instance inside a worker thread. The worker has an
 * empty environment and is terminated by the host at the wall-clock limit.
 * Everything the guest can reach is the imports object below: WIT calls that
 * cross to the host over the bridge, plus clock and randomness answered here.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { clockImports } from '../host-api/clock.ts';
import { randomImports } from '../host-api/random.ts';
import { GuestBridge } from './bridge.ts';

export interface GuestWorkerData {
  entry: string;
  glue: string;
  modules: Record<string, WebAssembly.Module>;
  port: MessagePort;
  signal: SharedArrayBuffer;
  job: { jobId: string; accountId: string; fields: string; parameters: string };
}

/** What the worker tells the host when the guest's `run` returns or traps. */
export type GuestOutcome =
  | { type: 'returned'; memoryBytes: number }
  | { type: 'failed'; code: string; message: string; memoryBytes: number }
  | { type: 'trapped'; message: string; memoryBytes: number };

interface Glue {
  instantiate(
    getCoreModule: (name: string) => WebAssembly.Module,
    imports: Record<string, Record<string, unknown>>,
    instantiateCore: (module: WebAssembly.Module, imports?: WebAssembly.Imports) => WebAssembly.Instance,
  ): { run(job: GuestWorkerData['job']): unknown };
}

const data = workerData as GuestWorkerData;
let memory: WebAssembly.Memory | undefined;
const memoryBytes = () => memory?.buffer.byteLength ?? 0;
const bridge = new GuestBridge(data.port, data.signal, memoryBytes);

function isFailure(value: unknown): value is { code: string; message: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}

function outcomeOf(run: () => unknown): GuestOutcome {
  try {
    run();
    return { type: 'returned', memoryBytes: memoryBytes() };
  } catch (error) {
    // With noComponentErrorWrapping, the glue throws the WIT `err` payload as is.
    if (isFailure(error)) return { type: 'failed', code: error.code, message: error.message, memoryBytes: memoryBytes() };
    return { type: 'trapped', message: error instanceof Error ? error.message : String(error), memoryBytes: memoryBytes() };
  }
}

const glue = (await import(`data:text/javascript;base64,${Buffer.from(data.glue).toString('base64')}`)) as Glue;

const outcome = outcomeOf(() => {
  const instance = glue.instantiate(
    (name) => {
      const module = data.modules[name];
      if (!module) throw new Error(`the glue asked for an unknown core module ${name}`);
      return module;
    },
    {
      'cozy:konnector/http': { send: (request: unknown) => bridge.call('http.send', [request]) },
      'cozy:konnector/documents': {
        save: (doctype: string, doc: string) => bridge.call('documents.save', [doctype, doc]),
        find: (doctype: string, selector: string, limit: number) => bridge.call('documents.find', [doctype, selector, limit]),
      },
      'cozy:konnector/log': { write: (level: string, message: string) => bridge.notify('log.write', [level, message]) },
      'cozy:konnector/clock': clockImports,
      'wasi:random/random': randomImports,
    },
    (module, imports) => {
      const instance = new WebAssembly.Instance(module, imports);
      const exported = instance.exports.memory;
      if (!memory && exported instanceof WebAssembly.Memory) memory = exported;
      return instance;
    },
  );
  instance.run(data.job);
});

parentPort!.postMessage(outcome);
