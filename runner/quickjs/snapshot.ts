/**
 * A konnector loaded once, at build time, and every job started from that state (the Javy/Wizer way):
 * the engine's `engine_init` (engine-main.c) reads the konnector's bytecode from stdin and evaluates its top
 * level; the project's deterministic pre-initializer (runner/compile/preinit/) writes the instance's memory
 * and globals back into the module; `splitSnapshot` (runner/wasm/snapshot.ts) parts that module into the
 * engine (the same bytes for every konnector: compiled once per host, metered and capped there) and the
 * konnector's snapshot (its memory image and globals), which a job writes into a fresh instance before calling
 * `engine_run_loaded`.
 *
 * During the initialization the engine may call no `konnector` import (log, clock, random, call): the
 * pre-initializer fails the build if the bundle's top level reaches one, so nothing the host would answer per
 * job (time, randomness, a request) is frozen into the snapshot.
 */
import { UsageError, type UsageErrorKind } from '../errors.ts';
import { answerOffThread } from '../sandbox/off-thread.ts';
import { PreinitError, preinitialize } from '../compile/preinit/index.ts';
import { splitSnapshot, type Snapshot } from '../wasm/index.ts';
import { readEngine } from './engine.ts';
import { KONNECTOR_IMPORTS } from './instance.ts';

/** The engine's initialization export, called by the pre-initializer. */
export const INIT_EXPORT = 'engine_init';

export interface KonnectorSnapshot {
  /** The engine without any konnector's state: the same bytes for every konnector (unmetered, uncapped). */
  engine: Uint8Array<ArrayBuffer>;
  /** What an instance of `engine` gets before it runs: the loaded konnector. */
  snapshot: Snapshot;
}

const utf8 = new TextDecoder();

/**
 * Loads `bytecode` in `engine` (the one that wrote it; the committed engine.wasm by default) once and returns the
 * shared engine and the konnector's snapshot.
 */
export async function snapshotKonnector(bytecode: Uint8Array, engine?: Uint8Array<ArrayBuffer>): Promise<KonnectorSnapshot> {
  engine ??= await readEngine();
  let initialized: Uint8Array<ArrayBuffer>;
  try {
    initialized = preinitialize(engine, { initFunc: INIT_EXPORT, allowWasi: true, preopens: [], env: {}, stdin: bytecode });
  } catch (error) {
    if (error instanceof PreinitError && error.kind === 'forbidden-import') {
      throw new UsageError('source', `the konnector's top level calls the host (${error.message.split('\n')[0]}): log, the clock, randomness and the world's functions are for run(), not for loading`);
    }
    throw error;
  }
  loadError(initialized);
  const split = splitSnapshot(initialized);
  if (!split) throw new Error('the pre-initialized QuickJS engine cannot be split into engine and snapshot: this is a bug in runner/quickjs/snapshot.ts');
  return split;
}

export interface SnapshotRequest {
  bytecode: Uint8Array;
  engine: Uint8Array<ArrayBuffer>;
}

export type SnapshotAnswer = { ok: true; loaded: KonnectorSnapshot } | { ok: false; usage: UsageErrorKind | null; message: string };

/** snapshotKonnector in a worker thread (snapshot-worker.ts), the host's main thread free meanwhile. */
export async function snapshotOffThread(bytecode: Uint8Array, engine: Uint8Array<ArrayBuffer>): Promise<KonnectorSnapshot> {
  const answer = await answerOffThread<SnapshotAnswer>(new URL('./snapshot-worker.ts', import.meta.url), { bytecode, engine } satisfies SnapshotRequest, 'QuickJS snapshot');
  if (answer.ok) return answer.loaded;
  throw answer.usage ? new UsageError(answer.usage, answer.message) : new Error(answer.message);
}

/** Throws what the engine's initialization reported, if it failed (a top-level exception, bad bytecode). */
function loadError(initialized: Uint8Array<ArrayBuffer>): void {
  const refuse = () => {
    throw new Error('a pre-initialized QuickJS engine calls the host before any job');
  };
  const wasi = new Proxy({}, { get: () => refuse });
  const konnector = Object.fromEntries(KONNECTOR_IMPORTS.map((name) => [name, refuse]));
  const instance = new WebAssembly.Instance(new WebAssembly.Module(initialized), { konnector, wasi_snapshot_preview1: wasi });
  const exports = instance.exports as { memory: WebAssembly.Memory; engine_load_status(): number; engine_output_ptr(): number; engine_output_len(): number };
  if (exports.engine_load_status() === 0) return;
  const ptr = exports.engine_output_ptr() >>> 0;
  const message = utf8.decode(new Uint8Array(exports.memory.buffer, ptr, exports.engine_output_len() >>> 0));
  throw new UsageError('source', `QuickJS cannot load the konnector: ${message}`);
}
