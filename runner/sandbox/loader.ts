import { createHash } from 'node:crypto';
import { componentWit } from '@bytecodealliance/jco-transpile/wasm-tools';
import type { ArtifactHeader, ComponentArtifact } from '../compile/artifact.ts';
import { UsageError } from '../errors.ts';
import { WASM_PAGE_BYTES, type Limits } from '../limits.ts';
import { capMemory, isFuelInstrumented, mapCoreModules, type Snapshot, splitSnapshot, WasmError } from '../wasm/index.ts';
import { ALLOWED_IMPORTS } from './capabilities.ts';
import { answerOffThread } from './off-thread.ts';
import type { TranspileAnswer, TranspileRequest } from './transpile-worker.ts';

export interface LoadedKonnector {
  /** Identifies this code in the workers' caches: the artifact and the memory cap it was compiled with. */
  id: string;
  /** The artifact's header (its manifest, hashes and build facts); the component itself is not kept. */
  header: ArtifactHeader;
  /** ES module source of the component's JS glue, generated here by jco, never read from the artifact. */
  glue: string;
  /** Compiled core modules, their memories capped: engines shared with every konnector of the same toolchain. */
  modules: Record<string, WebAssembly.Module>;
  /** What each instance of a shared engine module gets before it runs, by module name. */
  snapshots: Record<string, Snapshot>;
  /** Whether its core modules count fuel (checked in the component, not taken from the header). */
  metered: boolean;
}

export interface LoadOptions {
  /** Run a component without fuel metering (benchmarks); refused otherwise. */
  allowUnmetered?: boolean;
}

/**
 * Turns a verified artifact into what a worker instantiates: the glue that
 * lifts and lowers WIT values, and the component's core modules compiled with
 * linear memory capped at `limits.memoryBytes`. Konnectors built by the same
 * toolchain share one engine (runner/wasm/snapshot.ts): it is transpiled and
 * compiled once per memory cap, and each konnector brings only its snapshot.
 */
export async function loadKonnector(
  artifact: ComponentArtifact,
  limits: Pick<Limits, 'memoryBytes'>,
  options: LoadOptions = {},
): Promise<LoadedKonnector> {
  const maxPages = Math.floor(limits.memoryBytes / WASM_PAGE_BYTES);
  const { engineComponent, snapshots } = splitComponent(artifact.component);
  for (const snapshot of snapshots.values()) {
    if (snapshot.memory.pages > maxPages) {
      throw new UsageError('artifact', `the konnector's memory starts at ${snapshot.memory.pages} pages (${snapshot.memory.pages * 64} KiB), above the cap of ${maxPages} pages: raise the memory limit`);
    }
  }
  const engine = await engineFor(engineComponent, maxPages, [...snapshots.keys()]);
  const foreign = engine.imports.filter((name) => !ALLOWED_IMPORTS.has(name));
  if (foreign.length > 0) {
    throw new UsageError(
      'artifact',
      `the component imports ${foreign.join(', ')}, which the konnector world does not provide (it provides ${[...ALLOWED_IMPORTS].join(', ')})`,
    );
  }
  if (!engine.exports.some(([name, kind]) => name === 'run' && kind === 'function')) {
    throw new UsageError('artifact', 'the component does not export the function `run` of the konnector world');
  }
  const metered = isFuelInstrumented(artifact.component);
  if (metered !== (artifact.header.metering !== null)) {
    throw new UsageError('artifact', `the artifact's header says it is ${metered ? 'not ' : ''}fuel-metered but its component is${metered ? '' : ' not'}: it was not made by \`konnector build\``);
  }
  if (!metered && !options.allowUnmetered) {
    throw new UsageError('artifact', 'the component is not fuel-metered (built with --unmetered): its CPU use could not be bounded; rebuild it without --unmetered, or pass --allow-unmetered to run it anyway');
  }
  const byName: Record<string, Snapshot> = {};
  for (const [index, snapshot] of snapshots) byName[engine.snapshotModules.get(index)!] = snapshot;
  return { id: `${artifact.header.sha256}:${maxPages}`, header: artifact.header, metered, glue: engine.glue, modules: engine.modules, snapshots: byName };
}

/** The component with each pre-initialized core module replaced by its engine, and their snapshots by module index. */
function splitComponent(component: Uint8Array): { engineComponent: Uint8Array; snapshots: Map<number, Snapshot> } {
  const snapshots = new Map<number, Snapshot>();
  try {
    const engineComponent = mapCoreModules(component, (module, index) => {
      const split = splitSnapshot(module);
      if (!split) return module;
      snapshots.set(index, split.snapshot);
      return split.engine;
    });
    return { engineComponent, snapshots };
  } catch (error) {
    // Not a component these tools can read: the transpiler says what is wrong with it.
    if (error instanceof WasmError) return { engineComponent: component, snapshots: new Map() };
    throw error;
  }
}

interface Engine {
  imports: string[];
  exports: [string, string][];
  glue: string;
  modules: Record<string, WebAssembly.Module>;
  /** The glue's name of each core module that has a snapshot, by its index in the component. */
  snapshotModules: Map<number, string>;
}

/**
 * Engines transpiled and compiled in this process, by their bytes and memory
 * cap. A host holds one per toolchain its konnectors were built with.
 */
const engines = new Map<string, Promise<Engine>>();

function engineFor(component: Uint8Array, maxPages: number, snapshotIndexes: number[]): Promise<Engine> {
  const key = `${createHash('sha256').update(component).digest('hex')}:${maxPages}`;
  let engine = engines.get(key);
  if (!engine) {
    engine = makeEngine(component, maxPages, snapshotIndexes);
    engines.set(key, engine);
    engine.catch(() => engines.delete(key));
  }
  return engine;
}

async function makeEngine(component: Uint8Array, maxPages: number, snapshotIndexes: number[]): Promise<Engine> {
  const transpiled = await transpileOffThread({ component, maxPages });
  if (!transpiled.ok) throw new UsageError('artifact', `the artifact's component is not a valid WebAssembly component: ${transpiled.message}`);
  // The glue names core modules by file; the engine modules are found among them by their bytes.
  const nameOf = new Map(Object.entries(transpiled.modules).map(([name, bytes]) => [digest(bytes), name]));
  const coreModules: Uint8Array[] = [];
  mapCoreModules(component, (module) => {
    coreModules.push(module);
    return module;
  });
  const snapshotModules = new Map<number, string>();
  for (const index of snapshotIndexes) {
    const name = nameOf.get(digest(capMemory(coreModules[index]!, maxPages)));
    if (name === undefined) throw new Error(`core module ${index} of the engine is not among the transpiled modules`);
    snapshotModules.set(index, name);
  }
  const modules: Record<string, WebAssembly.Module> = {};
  for (const [name, bytes] of Object.entries(transpiled.modules)) modules[name] = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  return { imports: transpiled.imports, exports: transpiled.exports, glue: transpiled.glue, modules, snapshotModules };
}

const digest = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Runs runner/sandbox/transpile-worker.ts once: the main thread stays free while jco works. */
const transpileOffThread = (request: TranspileRequest) =>
  answerOffThread<TranspileAnswer>(new URL('./transpile-worker.ts', import.meta.url), request, 'transpile');

/** The component's imports and exports as WIT declares them, with versions. */
export async function describeComponent(component: Uint8Array): Promise<{ imports: string[]; exports: string[]; wit: string }> {
  let wit: string;
  try {
    wit = await componentWit(component);
  } catch (error) {
    throw new UsageError('artifact', `the artifact's component cannot be decoded: ${(error as Error).message}`);
  }
  const declared = (keyword: 'import' | 'export') =>
    [...wit.matchAll(new RegExp(`^\\s*${keyword} ([^;{]+?)\\s*(?:;|\\{)`, 'gm'))].map((m) => m[1]!.replace(/:\s*func\b.*$/, ''));
  return { imports: declared('import'), exports: declared('export'), wit };
}
