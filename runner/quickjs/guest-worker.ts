/**
 * A sandbox worker thread for konnectors on the QuickJS engine: the same protocol as the component path's
 * (runner/sandbox/guest-worker.ts: a RunMessage in, a GuestOutcome out), so the same pool, wall clock, bridge,
 * dispatcher and report serve both engines (runner/sandbox/sandbox.ts). Each job gets a FRESH engine instance.
 *
 * The guest reaches the world through the engine's one generic import (`konnector.call`, engine-main.c) with
 * `{ op, args }` (host-calls.ts). The ops are those of the pool's description of the world (GuestImports,
 * runner/sandbox/capabilities.ts, derived from the capabilities' descriptors): a host-answered function goes
 * over the bridge as on the component path (same fuel price, same checks), one answered in the worker
 * (clock, randomness) is its descriptor's function, called here.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { shortName } from '../../host-api/capability.ts';
import { GuestBridge, HOST_CALL_FUEL, type GuestUsage } from '../sandbox/bridge.ts';
import type { GuestImports, HostOp } from '../sandbox/capabilities.ts';
import type { GuestOutcome, RunMessage } from '../sandbox/guest-worker.ts';
import { FAILURE_OP, FAILURE_PREFIX } from './failure.ts';
import { decodeCall, encodeAnswer, MalformedCall } from './host-calls.ts';
import type { Snapshot } from '../wasm/index.ts';
import { prepareLoaded, runInEngine, runLoadedInEngine, type EngineCallOptions, type EngineControls, type PreparedEngine } from './instance.ts';


const world = (workerData as { imports: GuestImports }).imports;

type Route = { answeredBy: 'host'; op: HostOp; blocks: boolean } | { answeredBy: 'worker'; fn: (...args: unknown[]) => unknown };

/** Every function of the world by op (`http.send`, `clock.now`), as the generated guest modules name them. */
const routes = new Map<string, Route>();
for (const entry of world) {
  if (entry.answeredBy === 'host') {
    for (const { name, op, blocks } of entry.functions) routes.set(`${shortName(entry.name)}.${name}`, { answeredBy: 'host', op, blocks });
  } else {
    const functions = ((await import(entry.module)) as { default: { functions: Record<string, (...args: unknown[]) => unknown> } }).default.functions;
    for (const [name, fn] of Object.entries(functions)) routes.set(`${shortName(entry.name)}.${name}`, { answeredBy: 'worker', fn });
  }
}

interface Konnector {
  engine: WebAssembly.Module;
  bytecode: Uint8Array;
  /** The loaded konnector (runner/quickjs/snapshot.ts): `engine` is then the shared engine it is written into. */
  snapshot: Snapshot | undefined;
}

const konnectors = new Map<string, Konnector>();

function konnectorFor(message: RunMessage): Konnector {
  let konnector = konnectors.get(message.konnectorId);
  if (!konnector) {
    const engine = message.code?.modules.engine;
    const bytecode = message.code?.bytecode;
    if (!engine || !bytecode) throw new Error(`worker has no QuickJS code for konnector ${message.konnectorId}`);
    konnector = { engine, bytecode, snapshot: message.code?.snapshots.engine };
    konnectors.set(message.konnectorId, konnector);
  }
  return konnector;
}

/**
 * The instance the next job of the konnector this worker ran last will take, its snapshot already written:
 * made while the worker is idle, as the component worker does, so that the first touch of the snapshot's
 * memory is not on that job's clock. Each job still gets a fresh instance.
 */
let prepared: { konnectorId: string; engine: PreparedEngine } | undefined;

function takePrepared(konnectorId: string): PreparedEngine | undefined {
  const engine = prepared?.konnectorId === konnectorId ? prepared.engine : undefined;
  prepared = undefined;
  return engine;
}

function prepareNext(konnectorId: string): void {
  const konnector = konnectors.get(konnectorId);
  if (!konnector?.snapshot || prepared?.konnectorId === konnectorId) return;
  try {
    prepared = { konnectorId, engine: prepareLoaded(konnector.engine, konnector.snapshot) };
  } catch {
    // The job that needs it instantiates it again and reports why it fails.
    prepared = undefined;
  }
}

/**
 * One call of the guest: answered as the wire says (host-calls.ts); what the host does not answer traps the job.
 * A call the bridge carries is charged there (GuestBridge); one the worker answers is free, as for a component
 * (clock, random); a malformed one or an unknown op pays a host call's price for the bytes read.
 */
function answerCall(bridge: GuestBridge, charge: (fuel: number) => void, text: Uint8Array, bytes: Uint8Array, failed: (failure: Failure) => void): Uint8Array {
  const refuse = (message: string) => {
    charge(HOST_CALL_FUEL + text.byteLength + bytes.byteLength);
    return encodeAnswer({ invalid: message });
  };
  let call;
  try {
    call = decodeCall(text, bytes);
  } catch (error) {
    if (error instanceof MalformedCall) return refuse(error.message);
    throw error;
  }
  if (call.op === FAILURE_OP) {
    // The failure the bundle's `konnector.run` is about to end with (failure.ts): kept, used only if the run ends so.
    const [code, message] = call.args;
    if (call.args.length !== 2 || typeof code !== 'string' || typeof message !== 'string') return refuse(`${FAILURE_OP} takes a code and a message`);
    charge(HOST_CALL_FUEL + text.byteLength + bytes.byteLength);
    failed({ code, message });
    return encodeAnswer({ ok: undefined });
  }
  const route = routes.get(call.op);
  if (!route) return refuse(`${call.op} is not a function of the konnector world; it has ${[...routes.keys()].join(', ')}`);
  if (route.answeredBy === 'worker') {
    try {
      return encodeAnswer({ ok: route.fn(...call.args) });
    } catch (error) {
      return encodeAnswer({ invalid: `${call.op}: ${(error as Error).message}` });
    }
  }
  if (!route.blocks) {
    bridge.notify(route.op, call.args);
    return encodeAnswer({ ok: undefined });
  }
  try {
    return encodeAnswer({ ok: bridge.call(route.op, call.args) });
  } catch (error) {
    if (error && typeof error === 'object' && 'payload' in error) return encodeAnswer({ err: (error as { payload: unknown }).payload });
    if (error instanceof TypeError) return encodeAnswer({ invalid: error.message });
    throw error;
  }
}

interface Failure {
  code: string;
  message: string;
}

/** How the konnector's run ended, in the component path's terms (runner/sandbox/sandbox.ts maps them to codes). */
function runJob(konnector: Konnector, message: RunMessage): GuestOutcome {
  let controls: EngineControls | undefined;
  let failure: Failure | undefined;
  const usage = (): GuestUsage => ({ memoryBytes: controls?.memoryBytes() ?? 0, fuelUsed: controls?.fuelUsed() ?? null });
  try {
    const job = { ...message.job, maxResponseBytes: Number(message.job.maxResponseBytes) };
    const options: EngineCallOptions = {
      ...(message.fuel === null ? {} : { budget: message.fuel }),
      host: (made) => {
        controls = made;
        const bridge = new GuestBridge(message.port, message.signal, usage, made.charge);
        return {
          call: (text, bytes) => answerCall(bridge, made.charge, text, bytes, (told) => (failure = told)),
          log: (level, text) => bridge.notify('log.write', [level, text]),
        };
      },
    };
    const result = konnector.snapshot
      ? runLoadedInEngine(konnector.engine, konnector.snapshot, job, options, takePrepared(message.konnectorId))
      : runInEngine(konnector.engine, { code: konnector.bytecode, job }, options);
    const measured = { memoryBytes: result.memoryBytes ?? usage().memoryBytes, fuelUsed: result.consumed === undefined ? usage().fuelUsed : Number(result.consumed) };
    switch (result.outcome) {
      case 'returned':
        return { type: 'returned', ...measured };
      case 'failed':
        if (result.error.startsWith(FAILURE_PREFIX) && failure) return { type: 'failed', code: failure.code, message: failure.message, ...measured };
        return { type: 'trapped', message: result.error, fuelExhausted: false, ...measured };
      case 'out-of-fuel':
        return { type: 'trapped', message: result.error, fuelExhausted: true, ...measured };
      case 'trapped':
        return { type: 'trapped', message: result.error, fuelExhausted: false, ...measured };
    }
  } catch (error) {
    return { type: 'trapped', message: error instanceof Error ? error.message : String(error), fuelExhausted: false, ...usage() };
  } finally {
    message.port.close();
  }
}

parentPort!.on('message', (message: RunMessage) => {
  parentPort!.postMessage(runJob(konnectorFor(message), message));
  setImmediate(() => prepareNext(message.konnectorId));
});
parentPort!.postMessage({ type: 'ready' });
