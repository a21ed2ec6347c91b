/**
 * A sandbox worker thread. It runs jobs one after another, each in a FRESH
 * component instance; compiled modules and generated glue are kept per
 * konnector, and the instance for the konnector's next job is made as soon as
 * a job ends, so that job starts with its first instruction.
 * The worker has an empty environment; the host terminates it at a job's
 * wall-clock limit and replaces it. Everything a guest can reach is the
 * imports object, built from the pool's description of the world (GuestImports,
 * runner/sandbox/capabilities.ts): WIT calls that cross to the host over the
 * bridge, plus those answered here (clock, randomness).
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { GuestBridge, type GuestUsage } from './bridge.ts';
import type { GuestImports } from './capabilities.ts';
import { applySnapshot, FUEL_GLOBAL_EXPORT, type Snapshot } from '../wasm/index.ts';

export interface GuestJob {
  jobId: string;
  accountId: string;
  fields: string;
  parameters: string;
  /** The konnector's manifest, as JSON. */
  manifest: string;
  /** The guest's process.env entries for this job. */
  environment: [string, string][];
  /** The job's response-size limit, which the guest holds the bodies it decompresses to. */
  maxResponseBytes: bigint;
}

/** Host -> worker: run one job. `code` is sent the first time this worker sees the konnector. */
export interface RunMessage {
  type: 'run';
  konnectorId: string;
  code?: {
    glue: string;
    modules: Record<string, WebAssembly.Module>;
    snapshots: Record<string, Snapshot>;
    /** A konnector on the QuickJS engine: its bytecode (runner/quickjs/guest-worker.ts runs it; `modules.engine` is the engine). */
    bytecode?: Uint8Array;
  };
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
  snapshots: Record<string, Snapshot>;
}

const konnectors = new Map<string, Konnector>();

const world = (workerData as { imports: GuestImports }).imports;

/** The functions of the interfaces answered in this worker, by interface: their modules' descriptors. */
const answeredHere = new Map(
  await Promise.all(
    world.flatMap((entry) => (entry.answeredBy === 'worker' ? [entry] : []))
      .map(async (entry) => [entry.name, ((await import(entry.module)) as { default: { functions: object } }).default.functions] as const),
  ),
);

/** A component's imports: the world's functions, those of the host over `bridge`. */
function importsObject(bridge: () => GuestBridge): Record<string, Record<string, unknown>> {
  const imports: Record<string, Record<string, unknown>> = {};
  for (const entry of world) {
    if (entry.answeredBy === 'worker') {
      imports[entry.name] = answeredHere.get(entry.name) as Record<string, unknown>;
      continue;
    }
    imports[entry.name] = Object.fromEntries(entry.functions.map(({ name, op, blocks }) =>
      [name, blocks ? (...args: unknown[]) => bridge().call(op, args) : (...args: unknown[]) => bridge().notify(op, args)]));
  }
  return imports;
}

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
    konnector = { glue: evaluateGlue(message.code.glue), modules: message.code.modules, snapshots: message.code.snapshots };
    konnectors.set(message.konnectorId, konnector);
  }
  return konnector;
}

/**
 * One component instance. It is made before its job (see `prepared`), so its
 * imports reach the job through `bridge`, set when a job takes the instance.
 * An instance runs one job at most, then is dropped.
 */
interface GuestInstance {
  konnectorId: string;
  exports: { run(job: GuestJob): unknown };
  memory: WebAssembly.Memory | undefined;
  /** The metered core modules' counters of REMAINING fuel (componentize-js components have one). */
  counters: WebAssembly.Global[];
  bridge: GuestBridge | undefined;
}

/**
 * Fuel counters hold this until a job takes the instance; the job's budget
 * then replaces it, less what instantiation spent, so that work is charged to
 * the job as if the instance had been made for it.
 */
const UNCLAIMED_FUEL = 1n << 62n;

function instantiate(konnectorId: string, konnector: Konnector): GuestInstance {
  const guest: GuestInstance = { konnectorId, exports: { run: () => undefined }, memory: undefined, counters: [], bridge: undefined };
  const bridge = (): GuestBridge => {
    if (!guest.bridge) throw new Error('the konnector called the host before its job started');
    return guest.bridge;
  };
  // A shared engine module gets this konnector's snapshot as soon as it is instantiated.
  const snapshotOf = new Map<WebAssembly.Module, Snapshot>();
  guest.exports = konnector.glue.instantiate(
    (name) => {
      const module = konnector.modules[name];
      if (!module) throw new Error(`the glue asked for an unknown core module ${name}`);
      const snapshot = konnector.snapshots[name];
      if (snapshot) snapshotOf.set(module, snapshot);
      return module;
    },
    importsObject(bridge),
    (module, imports) => {
      const instance = new WebAssembly.Instance(module, imports);
      const snapshot = snapshotOf.get(module);
      if (snapshot) applySnapshot(instance, snapshot);
      const exported = instance.exports.memory;
      if (!guest.memory && exported instanceof WebAssembly.Memory) guest.memory = exported;
      const counter = instance.exports[FUEL_GLOBAL_EXPORT];
      if (counter instanceof WebAssembly.Global) {
        counter.value = UNCLAIMED_FUEL;
        guest.counters.push(counter);
      }
      return instance;
    },
  );
  return guest;
}

/**
 * The instance the next job of the konnector this worker ran last will take:
 * made while the worker is idle, so instantiation is not on that job's start.
 */
let prepared: GuestInstance | undefined;

function prepareNext(konnectorId: string): void {
  if (prepared?.konnectorId === konnectorId) return;
  const konnector = konnectors.get(konnectorId);
  try {
    prepared = konnector && instantiate(konnectorId, konnector);
  } catch {
    // The job that needs it instantiates it again and reports why it fails.
    prepared = undefined;
  }
}

function runJob(konnector: Konnector, message: RunMessage): GuestOutcome {
  let guest: GuestInstance | undefined;
  const budget = message.fuel;
  const usage = (): GuestUsage => ({
    memoryBytes: guest?.memory?.buffer.byteLength ?? 0,
    fuelUsed: budget === null || !guest ? null : Number(guest.counters.reduce((used, counter) => used + (budget - (counter.value as bigint)), 0n)),
  });
  const charge = (fuel: number) => {
    for (const counter of guest?.counters ?? []) counter.value = (counter.value as bigint) - BigInt(fuel);
  };
  const exhausted = () => guest?.counters.some((counter) => (counter.value as bigint) < 0n) ?? false;
  try {
    if (prepared?.konnectorId === message.konnectorId) {
      guest = prepared;
      prepared = undefined;
    } else {
      guest = instantiate(message.konnectorId, konnector);
    }
    if (budget !== null) {
      if (guest.counters.length === 0) throw new Error('the component is not fuel-metered but the job has a fuel budget');
      for (const counter of guest.counters) counter.value = budget - (UNCLAIMED_FUEL - (counter.value as bigint));
    }
    guest.bridge = new GuestBridge(message.port, message.signal, usage, charge);
    guest.exports.run(message.job);
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
  setImmediate(() => prepareNext(message.konnectorId));
});
parentPort!.postMessage({ type: 'ready' });
