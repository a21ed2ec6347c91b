/**
 * Konnectors on the QuickJS engine, made ready for the runner's one job path (runner/sandbox/job.ts runJob):
 * a QuickjsKonnector is a LoadedKonnector carrying its bytecode, with the metered, memory-capped engine as its
 * one module. runJob/runInSandbox see its `bytecode` and run it on a pool of QuickJS workers
 * (runner/quickjs/guest-worker.ts, same protocol as the component path's), so the job has the same
 * capabilities, bridge, dispatcher, wall clock, budgets, report and error codes as on the component path.
 *
 * A konnector comes from its artifact (artifact.ts, read by runner/compile/artifact.ts readArtifact) or, for
 * tests and benchmarks, from its directory through the same encoding (artifact.ts loadQuickjsKonnector). It is loaded once per process
 * (snapshot.ts): its bytecode is evaluated by the engine's `engine_init` under the pre-initializer, and each
 * job starts from that snapshot in a fresh instance of the shared engine (compiled once per process for each
 * memory cap), instead of evaluating the whole bundle again.
 */
import type { QuickjsArtifact, QuickjsArtifactHeader } from '../compile/artifact.ts';
import { WASM_PAGE_BYTES, type Limits } from '../limits.ts';
import { checkSnapshotFits, type LoadedKonnector } from '../sandbox/loader.ts';
import { checkEngineImports, compiledEngine, sha256 } from './engine.ts';
import { type KonnectorSnapshot, snapshotOffThread } from './snapshot.ts';

/**
 * With a snapshot (the default), `modules.engine` is the shared engine and `snapshots.engine` the loaded
 * konnector, which each job writes into a fresh instance; without one, the engine evaluates `bytecode` per job.
 */
export interface QuickjsKonnector extends LoadedKonnector {
  header: QuickjsArtifactHeader;
  /** QuickJS bytecode of the konnector's bundle, written by the artifact's engine build (it is tied to it). */
  bytecode: Uint8Array;
  /** The loaded konnector its jobs start from (`snapshots.engine` is its snapshot), held for the process-wide cache. */
  loaded?: KonnectorSnapshot;
}

export interface QuickjsLoadOptions {
  /** Run the engine without fuel metering (measurements); the job then reports no fuel. */
  allowUnmetered?: boolean;
  /** Start each job from a snapshot of the loaded konnector (default); false evaluates the bundle in every job. */
  snapshot?: boolean;
}

/**
 * Each konnector's snapshot, by its engine and bytecode: the pre-initialization takes a second or more (in a worker
 * thread, the main thread free), paid once per process whatever the memory caps and however often the konnector is
 * loaded again, as long as a loaded konnector holds it (`QuickjsKonnector.loaded`). Once none does (a worker host
 * dropped the konnector for a newer version), it is garbage like any other object and its entry goes with it.
 */
const snapshotting = new Map<string, Promise<KonnectorSnapshot>>();
const snapshotted = new Map<string, WeakRef<KonnectorSnapshot>>();
const forgetSnapshot = new FinalizationRegistry<string>((key) => {
  if (!snapshotted.get(key)?.deref()) snapshotted.delete(key);
});

function snapshotOnce(artifact: QuickjsArtifact): Promise<KonnectorSnapshot> {
  const key = `${artifact.header.engine.sha256}:${sha256(artifact.bytecode)}`;
  const kept = snapshotted.get(key)?.deref();
  if (kept) return Promise.resolve(kept);
  let pending = snapshotting.get(key);
  if (!pending) {
    pending = snapshotOffThread(artifact.bytecode, artifact.engine).then((loaded) => {
      snapshotted.set(key, new WeakRef(loaded));
      forgetSnapshot.register(loaded, key);
      return loaded;
    });
    snapshotting.set(key, pending);
    const settled = () => snapshotting.delete(key);
    pending.then(settled, settled);
  }
  return pending;
}

/** A QuickJS artifact made ready for runJob, its engine metered (unless told) and capped at `limits.memoryBytes`. */
export async function loadQuickjsArtifact(artifact: QuickjsArtifact, limits: Pick<Limits, 'memoryBytes'>, options: QuickjsLoadOptions = {}): Promise<QuickjsKonnector> {
  const maxMemoryPages = Math.floor(limits.memoryBytes / WASM_PAGE_BYTES);
  const metered = !options.allowUnmetered;
  checkEngineImports(await compiledEngine(artifact.engine, { fuel: false }), artifact.engineFile);
  let engine: WebAssembly.Module;
  const snapshots: LoadedKonnector['snapshots'] = {};
  let loaded: KonnectorSnapshot | undefined;
  if (options.snapshot === false) {
    engine = await compiledEngine(artifact.engine, { fuel: metered, maxMemoryPages });
  } else {
    loaded = await snapshotOnce(artifact);
    checkSnapshotFits(loaded.snapshot, maxMemoryPages);
    engine = await compiledEngine(loaded.engine, { fuel: metered, maxMemoryPages });
    snapshots.engine = loaded.snapshot;
  }
  return {
    id: `quickjs:${artifact.header.sha256}:${maxMemoryPages}:${metered ? 'metered' : 'unmetered'}:${options.snapshot === false ? 'evaluated' : 'snapshot'}`,
    header: artifact.header,
    glue: '',
    modules: { engine },
    snapshots,
    metered,
    bytecode: artifact.bytecode,
    loaded,
  };
}
