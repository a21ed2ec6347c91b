/**
 * One QuickJS engine instance and one call into it (an instance serves a
 * single call, see engine-main.c): compile a script to bytecode, or run a
 * konnector's script or bytecode. Host functions are the engine's
 * `konnector` imports; WASI is the sandbox's (sandbox-wasi.ts).
 */
import { randomFillSync } from 'node:crypto';
import { applySnapshot, FUEL_GLOBAL_EXPORT, type Snapshot } from '../wasm/index.ts';
import { encodeAnswer } from './host-calls.ts';
import { sandboxWasi, type StreamName } from './sandbox-wasi.ts';

/** What a host function call costs the guest, as on the component path (wit/konnector.wit). */
const HOST_CALL_FUEL = 1000n;
const MAX_RANDOM_BYTES = 1024 * 1024;

export interface LogLine {
  level: string;
  message: string;
}

/** What the host's functions may do to the instance they answer. */
export interface EngineControls {
  /** Takes fuel from the instance (a host call's price); no-op when unmetered. */
  charge(units: number): void;
  /** The linear memory's size now: its largest so far. */
  memoryBytes(): number;
  /** Fuel used so far, null when unmetered. */
  fuelUsed(): number | null;
}

/** The engine's host functions as a job answers them; absent ones keep the defaults below. */
export interface HostHooks {
  /** `konnector.call` (engine-main.c): the request's JSON text and bytes in, the answer block out (host-calls.ts). */
  call?(text: Uint8Array, bytes: Uint8Array): Uint8Array;
  /** `konnector.log` (`__host.log`): by default charged and given to `onLog`. */
  log?(level: string, message: string): void;
}

export interface EngineCallOptions {
  /** Fuel for the call when the engine is metered; required then. */
  budget?: bigint;
  onLog?: (line: LogLine) => void;
  /** The host functions of this call, made once the instance exists. */
  host?: (controls: EngineControls) => HostHooks;
}

export type EngineCallOutcome =
  | { outcome: 'returned'; output: Uint8Array }
  | { outcome: 'failed'; error: string }
  | { outcome: 'out-of-fuel'; error: string }
  | { outcome: 'trapped'; error: string };

export type EngineCallResult = EngineCallOutcome & {
  /** Fuel used, when the engine is metered. */
  consumed?: bigint;
  /** The linear memory's size when the call ended: the instance's largest. */
  memoryBytes?: number;
};

interface EngineExports {
  memory: WebAssembly.Memory;
  engine_alloc(len: number): number;
  engine_output_ptr(): number;
  engine_output_len(): number;
  engine_compile(source: number, sourceLen: number): number;
  engine_run(code: number, codeLen: number, isBytecode: number, job: number, jobLen: number): number;
  engine_run_loaded(job: number, jobLen: number): number;
  [FUEL_GLOBAL_EXPORT]?: WebAssembly.Global;
}

/** The engine's `konnector` imports (engine-main.c), answered below: an engine importing others is refused (engine.ts). */
export const KONNECTOR_IMPORTS = ['log', 'call', 'clock_now', 'random_fill'] as const;
type KonnectorImport = (typeof KONNECTOR_IMPORTS)[number];

const STREAM_LEVEL: Record<StreamName, string> = { stdout: 'info', stderr: 'error' };
const utf8 = new TextDecoder();

/** An engine instance not yet called: made for one call, or in advance from a snapshot (`prepareLoaded`). */
interface LiveEngine {
  instance: WebAssembly.Instance;
  exports: EngineExports;
  wasi: ReturnType<typeof sandboxWasi>;
  /** Whether the WASI is bound (a snapshot's instance: its `_initialize` ran at build time). */
  initialized: boolean;
  /** The call's log and host functions, set when the call starts. */
  log: (line: LogLine) => void;
  hooks: HostHooks;
  used: boolean;
}

/** A fresh instance of `module`, with `snapshot` written into it when given; its host functions are bound later. */
function instantiateEngine(module: WebAssembly.Module, snapshot: Snapshot | undefined): LiveEngine {
  const live = { log: () => {}, hooks: {}, initialized: false, used: false } as unknown as LiveEngine;
  const memory = () => new Uint8Array(live.exports.memory.buffer);
  // The guest's pointers are checked, never clamped: a bad one traps the call.
  // (i32 values reach JS signed: `>>> 0` reads them as the addresses they are.)
  const text = (signedPtr: number, signedLen: number) => {
    const [ptr, len] = [signedPtr >>> 0, signedLen >>> 0];
    const bytes = memory();
    if (ptr + len > bytes.length) throw new RangeError(`a host function was given bytes ${ptr}..${ptr + len}, past the ${bytes.length}-byte memory`);
    return utf8.decode(bytes.subarray(ptr, ptr + len));
  };
  const bytesAt = (signedPtr: number, signedLen: number) => {
    const [ptr, len] = [signedPtr >>> 0, signedLen >>> 0];
    const bytes = memory();
    if (ptr + len > bytes.length) throw new RangeError(`a host function was given bytes ${ptr}..${ptr + len}, past the ${bytes.length}-byte memory`);
    return bytes.slice(ptr, ptr + len);
  };
  live.wasi = sandboxWasi((stream, message) => live.log({ level: STREAM_LEVEL[stream], message }));
  const konnector: Record<KonnectorImport, (...args: never[]) => unknown> = {
    log(levelPtr: number, levelLen: number, messagePtr: number, messageLen: number) {
      if (live.hooks.log) return live.hooks.log(text(levelPtr, levelLen), text(messagePtr, messageLen));
      charge(live, HOST_CALL_FUEL + BigInt(levelLen + messageLen));
      live.log({ level: text(levelPtr, levelLen), message: text(messagePtr, messageLen) });
    },
    /** Returns the answer block's address (0: the engine had no memory for it) and writes its length at `answerLenPtr`. */
    call(textPtr: number, textLen: number, bytesPtr: number, bytesLen: number, answerLenPtr: number): number {
      const request = [bytesAt(textPtr, textLen), bytesAt(bytesPtr, bytesLen)] as const;
      const block = live.hooks.call ? live.hooks.call(...request) : encodeAnswer({ invalid: 'this engine call answers no host calls' });
      const ptr = live.exports.engine_alloc(block.length) >>> 0;
      if (ptr === 0) return 0;
      memory().set(block, ptr);
      new DataView(live.exports.memory.buffer).setUint32(answerLenPtr >>> 0, block.length, true);
      return ptr;
    },
    // Whole milliseconds, as the WASI clocks (sandbox-wasi.ts).
    clock_now: () => Date.now(),
    random_fill(ptr: number, len: number) {
      if (len >>> 0 > MAX_RANDOM_BYTES) throw new RangeError(`random_fill asked for ${len} bytes, at most ${MAX_RANDOM_BYTES} per call`);
      randomFillSync(memory(), ptr >>> 0, len >>> 0);
    },
  };
  live.instance = new WebAssembly.Instance(module, { konnector, wasi_snapshot_preview1: live.wasi.imports });
  live.exports = live.instance.exports as unknown as EngineExports;
  if (snapshot) {
    // The loaded konnector, before anything runs (its `_initialize` ran at build time and is no longer exported).
    applySnapshot(live.instance, snapshot);
    live.wasi.initialize(live.instance);
    live.initialized = true;
  }
  return live;
}

/** Takes fuel from the instance (a host call's price); nothing when it is unmetered. */
function charge(live: LiveEngine, units: bigint): void {
  const fuel = live.exports?.[FUEL_GLOBAL_EXPORT];
  if (fuel) fuel.value = (fuel.value as bigint) - units;
}

/**
 * Calls a fresh engine instance (`live`, see engine.ts) through `call` and
 * reports how the call ended. Traps (fuel, memory, stack) end it as
 * `out-of-fuel` or `trapped`; the instance is discarded either way.
 */
function callEngine(
  live: LiveEngine,
  options: EngineCallOptions,
  call: (exports: EngineExports, input: (bytes: Uint8Array) => [number, number]) => number,
): EngineCallResult {
  if (live.used) throw new Error('an engine instance serves one call');
  live.used = true;
  const { exports, instance, wasi } = live;
  live.log = options.onLog ?? (() => {});
  const memory = () => new Uint8Array(exports.memory.buffer);
  const fuel = exports[FUEL_GLOBAL_EXPORT];
  if (fuel) {
    if (options.budget === undefined) throw new RangeError('the engine is metered: give the call a fuel budget');
    fuel.value = options.budget;
  }
  live.hooks = options.host?.({
    charge: (units) => charge(live, BigInt(units)),
    memoryBytes: () => exports.memory.buffer.byteLength,
    fuelUsed: () => (fuel ? Number(options.budget! - (fuel.value as bigint)) : null),
  }) ?? {};
  const measures = () => ({
    memoryBytes: exports.memory.buffer.byteLength,
    ...(fuel ? { consumed: options.budget! - (fuel.value as bigint) } : {}),
  });
  const input = (bytes: Uint8Array): [number, number] => {
    const ptr = exports.engine_alloc(bytes.length + 1) >>> 0;
    if (ptr === 0) throw new RangeError(`the engine has no memory left for a ${bytes.length}-byte input`);
    memory().set(bytes, ptr);
    memory()[ptr + bytes.length] = 0;
    return [ptr, bytes.length];
  };
  try {
    if (!live.initialized) wasi.initialize(instance);
    const status = call(exports, input);
    const ptr = exports.engine_output_ptr() >>> 0;
    const output = memory().slice(ptr, ptr + (exports.engine_output_len() >>> 0));
    if (status === 0) return { outcome: 'returned', output, ...measures() };
    return { outcome: 'failed', error: utf8.decode(output), ...measures() };
  } catch (error) {
    if (fuel && (fuel.value as bigint) < 0n) {
      return { outcome: 'out-of-fuel', error: `the fuel budget of ${options.budget} units ran out`, consumed: options.budget!, memoryBytes: exports.memory.buffer.byteLength };
    }
    if (error instanceof WebAssembly.RuntimeError || error instanceof RangeError) {
      return { outcome: 'trapped', error: `${error.name}: ${error.message}`, ...measures() };
    }
    throw error;
  } finally {
    wasi.flush();
  }
}

const encoder = new TextEncoder();

/** Compiles a script (not a module) to QuickJS bytecode with JS_WriteObject. */
export function compileInEngine(module: WebAssembly.Module, source: string, options: EngineCallOptions = {}): EngineCallResult {
  return callEngine(instantiateEngine(module, undefined), options, (engine, input) => engine.engine_compile(...input(encoder.encode(source))));
}

export interface KonnectorCode {
  /** A script defining a global `konnector` whose `run(job)` the engine calls, or its bytecode. */
  code: string | Uint8Array;
  /** The job, given to `run` as an object. */
  job: unknown;
}

/** Runs a konnector's script or bytecode: `konnector.run(job)`, its promise settled. */
export function runInEngine(module: WebAssembly.Module, { code, job }: KonnectorCode, options: EngineCallOptions = {}): EngineCallResult {
  return callEngine(instantiateEngine(module, undefined), options, (engine, input) => {
    const isBytecode = typeof code !== 'string';
    const [codePtr, codeLen] = input(isBytecode ? code : encoder.encode(code));
    const [jobPtr, jobLen] = input(encoder.encode(JSON.stringify(job)));
    return engine.engine_run(codePtr, codeLen, isBytecode ? 1 : 0, jobPtr, jobLen);
  });
}

/** A fresh instance of a shared engine with a konnector's snapshot written into it, for one `runLoadedInEngine`. */
export interface PreparedEngine {
  readonly module: WebAssembly.Module;
  readonly snapshot: Snapshot;
  /** @internal */
  readonly live: LiveEngine;
}

/**
 * Makes the instance a job of a loaded konnector will run in, ahead of the job (a worker does it while idle:
 * writing the snapshot first touches megabytes of fresh memory). Nothing runs in it until the job's call.
 */
export function prepareLoaded(module: WebAssembly.Module, snapshot: Snapshot): PreparedEngine {
  return { module, snapshot, live: instantiateEngine(module, snapshot) };
}

/**
 * Runs a konnector loaded at build time (snapshot.ts): a fresh instance of the shared engine `module`, the
 * konnector's `snapshot` written into it (or `prepared`, made by `prepareLoaded` for the same two), then
 * `konnector.run(job)` on the context it holds, its promise settled.
 */
export function runLoadedInEngine(
  module: WebAssembly.Module,
  snapshot: Snapshot,
  job: unknown,
  options: EngineCallOptions = {},
  prepared?: PreparedEngine,
): EngineCallResult {
  const live = prepared && prepared.module === module && prepared.snapshot === snapshot && !prepared.live.used ? prepared.live : instantiateEngine(module, snapshot);
  return callEngine(live, options, (engine, input) => engine.engine_run_loaded(...input(encoder.encode(JSON.stringify(job)))));
}
