/**
 * A sandbox worker thread. It runs jobs one after another, each in a FRESH
 * component instance; compiled modules and generated glue are kept per
 * konnector so the next job of the same konnector starts in milliseconds.
 * The worker has an empty environment; the host terminates it at a job's
 * wall-clock limit and replaces it. Everything a guest can reach is the
 * imports object below: WIT calls that cross to the host over the bridge, plus
 * clock and randomness answered here.
 */
import { parentPort, type MessagePort } from 'node:worker_threads';
import { clockImports } from '../host-api/clock.ts';
import { randomImports } from '../host-api/random.ts';
import { GuestBridge, type GuestUsage } from './bridge.ts';
import { FUEL_GLOBAL_EXPORT } from './wasm/fuel.ts';

export interface GuestJob {
  jobId: string;
  accountId: string;
  fields: string;
  parameters: string;
}

/** Host -> worker: run one job. `code` is sent the first time this worker sees the konnector. */
export interface RunMessage {
  type: 'run';
  konnectorId: string;
  code?: { glue: string; modules: Record<string, WebAssembly.Module> };
  port: MessagePort;
  signal: SharedArrayBuffer;
  job: GuestJob;
  /** The job's fuel budget; null runs an unmetered component. */
  fuel: bigint | null;
}

/** Worker -> host: how the guest's `run` ended, and what it used. */
export type GuestOutcome = GuestUsage &
  (
    | { type: 'returned' }
    | { type: 'failed'; code: string; message: string }
    | { type: 'trapped'; message: string; fuelExhausted: boolean }
  );

interface Glue {
  instantiate(
    getCoreModule: (name: string) => WebAssembly.Module,
    imports: Record<string, Record<string, unknown>>,
    instantiateCore: (module: WebAssembly.Module, imports?: WebAssembly.Imports) => WebAssembly.Instance,
  ): { run(job: GuestJob): unknown };
}

interface Konnector {
  glue: Glue;
  modules: Record<string, WebAssembly.Module>;
}

const konnectors = new Map<string, Konnector>();

function isFailure(value: unknown): value is { code: string; message: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}

/**
 * Evaluates jco's generated glue, an ES module whose only exports are
 * `instantiate` and an empty `_util`, as a function body: stack traces then
 * name `konnector-glue.js` instead of a megabyte-long data: URL.
 */
function evaluateGlue(source: string): Glue {
  const body = source
    .replace(/^export function instantiate\(/m, 'function instantiate(')
    .replace(/^export const _util = /m, 'const _util = ');
  if (/^export /m.test(body)) throw new Error('the generated glue has an export this worker does not know');
  return new Function(`'use strict';\n${body}\nreturn { instantiate };\n//# sourceURL=konnector-glue.js`)() as Glue;
}

function konnectorFor(message: RunMessage): Konnector {
  let konnector = konnectors.get(message.konnectorId);
  if (!konnector) {
    if (!message.code) throw new Error(`worker has no code for konnector ${message.konnectorId}`);
    konnector = { glue: evaluateGlue(message.code.glue), modules: message.code.modules };
    konnectors.set(message.konnectorId, konnector);
  }
  return konnector;
}

function runJob(konnector: Konnector, message: RunMessage): GuestOutcome {
  let memory: WebAssembly.Memory | undefined;
  // The metered core modules' counters of REMAINING fuel (componentize-js components have one).
  const counters: WebAssembly.Global[] = [];
  const budget = message.fuel;
  const usage = (): GuestUsage => ({
    memoryBytes: memory?.buffer.byteLength ?? 0,
    fuelUsed: budget === null ? null : Number(counters.reduce((used, counter) => used + (budget - (counter.value as bigint)), 0n)),
  });
  const charge = (fuel: number) => {
    for (const counter of counters) counter.value = (counter.value as bigint) - BigInt(fuel);
  };
  const exhausted = () => counters.some((counter) => (counter.value as bigint) < 0n);
  const bridge = new GuestBridge(message.port, message.signal, usage, charge);
  try {
    const instance = konnector.glue.instantiate(
      (name) => {
        const module = konnector.modules[name];
        if (!module) throw new Error(`the glue asked for an unknown core module ${name}`);
        return module;
      },
      {
        'cozy:konnector/http': {
          send: (request: unknown) => bridge.call('http.send', [request]),
          keepSession: (keep: boolean) => bridge.notify('http.keep-session', [keep]),
        },
        'cozy:konnector/documents': {
          save: (doctype: string, doc: string) => bridge.call('documents.save', [doctype, doc]),
          find: (doctype: string, selector: string, limit: number) => bridge.call('documents.find', [doctype, selector, limit]),
        },
        'cozy:konnector/files': {
          save: (path: string, content: Uint8Array, replace: boolean) => bridge.call('files.save', [path, content, replace]),
          stat: (path: string) => bridge.call('files.stat', [path]),
        },
        'cozy:konnector/log': { write: (level: string, text: string) => bridge.notify('log.write', [level, text]) },
        'cozy:konnector/clock': clockImports,
        'wasi:random/random': randomImports,
      },
      (module, imports) => {
        const instance = new WebAssembly.Instance(module, imports);
        const exported = instance.exports.memory;
        if (!memory && exported instanceof WebAssembly.Memory) memory = exported;
        const counter = instance.exports[FUEL_GLOBAL_EXPORT];
        if (budget !== null && counter instanceof WebAssembly.Global) {
          counter.value = budget;
          counters.push(counter);
        }
        return instance;
      },
    );
    if (budget !== null && counters.length === 0) throw new Error('the component is not fuel-metered but the job has a fuel budget');
    instance.run(message.job);
    return { type: 'returned', ...usage() };
  } catch (error) {
    // With noComponentErrorWrapping, the glue throws the WIT `err` payload as is.
    if (isFailure(error)) return { type: 'failed', code: error.code, message: error.message, ...usage() };
    const text = error instanceof Error ? error.message : String(error);
    return { type: 'trapped', message: text, fuelExhausted: exhausted(), ...usage() };
  } finally {
    message.port.close();
  }
}

parentPort!.on('message', (message: RunMessage) => {
  parentPort!.postMessage(runJob(konnectorFor(message), message));
});
parentPort!.postMessage({ type: 'ready' });
