/**
 * Konnectors on the QuickJS engine, made ready for the runner's one job path (runner/sandbox/job.ts runJob):
 * a QuickjsKonnector is a LoadedKonnector carrying its bytecode, with the metered, memory-capped engine as its
 * one module. runJob/runInSandbox see its `bytecode` and run it on a pool of QuickJS workers
 * (runner/quickjs/guest-worker.ts, same protocol as the component path's), so the job has the same
 * capabilities, bridge, dispatcher, wall clock, budgets, report and error codes as on the component path.
 *
 * The konnector is loaded once here (snapshot.ts): its bytecode is evaluated by the engine's `engine_init`
 * under the pre-initializer, and each job starts from that snapshot in a fresh instance of the shared engine
 * (compiled once per process for each memory cap), instead of evaluating the whole bundle again.
 *
 * Not an artifact format yet (`konnector build --engine quickjs` is to come): the konnector is bundled and
 * compiled from its directory.
 */
import { createRequire } from 'node:module';
import type { ArtifactHeader } from '../compile/artifact.ts';
import { readManifest } from '../compile/manifest.ts';
import { WASM_PAGE_BYTES, type Limits } from '../limits.ts';
import type { LoadedKonnector } from '../sandbox/loader.ts';
import { bundleForQuickjs, compileToBytecode } from './bundle.ts';
import { UsageError } from '../errors.ts';
import { compileEngine, compileEngineBytes, expectedEngineSha256, readEngine, sha256 } from './engine.ts';
import { snapshotKonnector } from './snapshot.ts';

/**
 * With a snapshot (the default), `modules.engine` is the shared engine and `snapshots.engine` the loaded
 * konnector, which each job writes into a fresh instance; without one, the engine evaluates `bytecode` per job.
 */
export interface QuickjsKonnector extends LoadedKonnector {
  /** QuickJS bytecode of the konnector's bundle, written by this engine build (it is tied to it). */
  bytecode: Uint8Array;
}

const self = createRequire(import.meta.url)('../../package.json') as { name: string; version: string };

const engines = new Map<string, Promise<WebAssembly.Module>>();

/** The engine compiled once per process for each memory cap (and metering). */
export function engineFor(options: { fuel: boolean; maxMemoryPages?: number }): Promise<WebAssembly.Module> {
  const key = `${options.fuel}:${options.maxMemoryPages ?? 'none'}`;
  let engine = engines.get(key);
  if (!engine) {
    engine = compileEngine(options);
    engines.set(key, engine);
  }
  return engine;
}

/** Shared engines of snapshots (the same bytes for every konnector), compiled once per process per cap and metering. */
const snapshotEngines = new Map<string, Promise<WebAssembly.Module>>();

function snapshotEngineFor(bytes: Uint8Array<ArrayBuffer>, options: { fuel: boolean; maxMemoryPages: number }): Promise<WebAssembly.Module> {
  const key = `${sha256(bytes)}:${options.fuel}:${options.maxMemoryPages}`;
  let engine = snapshotEngines.get(key);
  if (!engine) {
    engine = compileEngineBytes(bytes, options);
    snapshotEngines.set(key, engine);
    engine.catch(() => snapshotEngines.delete(key));
  }
  return engine;
}

export interface QuickjsLoadOptions {
  /** Run the engine without fuel metering (measurements); the job then reports no fuel. */
  allowUnmetered?: boolean;
  /** Start each job from a snapshot of the loaded konnector (default); false evaluates the bundle in every job. */
  snapshot?: boolean;
}

/** Bundles and compiles the konnector in `dir` for QuickJS, its engine capped at `limits.memoryBytes`. */
export async function loadQuickjsKonnector(dir: string, limits: Pick<Limits, 'memoryBytes'>, options: QuickjsLoadOptions = {}): Promise<QuickjsKonnector> {
  const maxMemoryPages = Math.floor(limits.memoryBytes / WASM_PAGE_BYTES);
  const metered = !options.allowUnmetered;
  const [manifest, script, compiler, engineSha256] = await Promise.all([
    readManifest(dir),
    bundleForQuickjs(dir),
    engineFor({ fuel: false }),
    expectedEngineSha256(),
  ]);
  const bytecode = compileToBytecode(compiler, script);
  let engine: WebAssembly.Module;
  const snapshots: LoadedKonnector['snapshots'] = {};
  if (options.snapshot === false) {
    engine = await engineFor({ fuel: metered, maxMemoryPages });
  } else {
    const loaded = await snapshotKonnector(bytecode);
    if (loaded.snapshot.memory.pages > maxMemoryPages) {
      const { pages } = loaded.snapshot.memory;
      throw new UsageError('artifact', `the konnector's memory starts at ${pages} pages (${pages * 64} KiB), above the cap of ${maxMemoryPages} pages: raise the memory limit`);
    }
    engine = await snapshotEngineFor(loaded.engine, { fuel: metered, maxMemoryPages });
    snapshots.engine = loaded.snapshot;
  }
  const bytecodeSha256 = sha256(bytecode);
  // No QuickJS artifact file yet (`konnector build --engine quickjs`): the header says what one would hold.
  const header: ArtifactHeader = {
    format: 2,
    world: 'cozy:konnector/konnector@0.1.0',
    manifest,
    engine: { name: 'quickjs', version: `2021-03-27+${engineSha256.slice(0, 12)}`, sha256: engineSha256, bytes: (await readEngine()).length },
    reference: null,
    builtBy: { name: self.name, version: self.version },
    sourceSha256: sha256(new TextEncoder().encode(script)),
    component: { bytes: bytecode.byteLength },
    snapshots: [],
    own: { compression: 'br', bytes: bytecode.byteLength },
    metering: metered ? { fuel: true, instrumenterVersion: 'runner/wasm' } : null,
    sha256: bytecodeSha256,
  };
  return {
    id: `quickjs:${bytecodeSha256}:${maxMemoryPages}:${metered ? 'metered' : 'unmetered'}:${options.snapshot === false ? 'evaluated' : 'snapshot'}`,
    header,
    glue: '',
    modules: { engine },
    snapshots,
    metered,
    bytecode,
  };
}
