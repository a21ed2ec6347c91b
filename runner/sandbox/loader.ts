import { createHash } from 'node:crypto';
import { componentWit } from '@bytecodealliance/jco-transpile/wasm-tools';
import type { ArtifactHeader, ComponentArtifact } from '../compile/artifact.ts';
import { UsageError } from '../errors.ts';
import { WASM_PAGE_BYTES, type Limits } from '../limits.ts';
import {
  capMemory,
  countImports,
  findSection,
  isFuelInstrumented,
  mapCoreModules,
  readImports,
  readMemories,
  readModule,
  SectionId,
  type Snapshot,
  snapshotOfOwnSections,
} from '../wasm/index.ts';
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
  const engine = await engineFor(artifact, maxPages);
  const snapshots = new Map<number, Snapshot>();
  for (const [index, own] of artifact.own) {
    const importedGlobals = engine.importedGlobals.get(index);
    const notSnapshot = (why = '') =>
      new UsageError('artifact', `the artifact's own part for core module ${index} is not a snapshot of its engine${why}: rebuild it with \`konnector build\``);
    let snapshot: Snapshot | null;
    try {
      snapshot = importedGlobals === undefined ? null : snapshotOfOwnSections(own, importedGlobals, artifact.reference?.get(index));
    } catch (error) {
      throw notSnapshot(` (${(error as Error).message})`);
    }
    if (!snapshot) throw notSnapshot();
    checkSnapshotFits(snapshot, maxPages);
    snapshots.set(index, snapshot);
  }
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
  const { metered } = engine;
  if (metered !== (artifact.header.metering !== null)) {
    throw new UsageError('artifact', `the artifact's header says it is ${metered ? 'not ' : ''}fuel-metered but its component is${metered ? '' : ' not'}: it was not made by \`konnector build\``);
  }
  if (!metered && !options.allowUnmetered) {
    throw new UsageError('artifact', 'the component is not fuel-metered (built with --unmetered): its CPU use could not be bounded; rebuild it without --unmetered, or pass --allow-unmetered to run it anyway');
  }
  const byName: Record<string, Snapshot> = {};
  for (const [index, snapshot] of snapshots) {
    const name = engine.moduleNames.get(index);
    if (name === undefined) throw new UsageError('artifact', `the artifact has a snapshot for core module ${index}, which its engine does not split out: rebuild it with \`konnector build\``);
    byName[name] = snapshot;
  }
  return { id: `${artifact.header.sha256}:${maxPages}`, header: artifact.header, metered, glue: engine.glue, modules: engine.modules, snapshots: byName };
}

/** Refuses a snapshot whose memory starts above the cap a konnector is loaded with (either engine's). */
export function checkSnapshotFits(snapshot: Snapshot, maxPages: number): void {
  const { pages } = snapshot.memory;
  if (pages > maxPages) {
    throw new UsageError('artifact', `the konnector's memory starts at ${pages} pages (${pages * 64} KiB), above the cap of ${maxPages} pages: raise the memory limit`);
  }
}

interface Engine {
  imports: string[];
  exports: [string, string][];
  glue: string;
  modules: Record<string, WebAssembly.Module>;
  /** Whether its core modules count fuel (read from its code, not taken from a header). */
  metered: boolean;
  /** The glue's name of each core module that can take a snapshot (its memory starts empty), by its index in the component. */
  moduleNames: Map<number, string>;
  /** How many globals each such module imports: its snapshot's global exports are numbered after them. */
  importedGlobals: Map<number, number>;
}

/**
 * Engines transpiled and compiled in this process, by their sha256 (checked
 * when the artifact was read) and memory cap. A host holds one per toolchain
 * its konnectors were built with; loading another konnector of the same
 * toolchain reads only its snapshot.
 */
const engines = new Map<string, Promise<Engine>>();

function engineFor(artifact: ComponentArtifact, maxPages: number): Promise<Engine> {
  const key = `${artifact.header.engine.sha256}:${maxPages}`;
  let engine = engines.get(key);
  if (!engine) {
    engine = makeEngine(artifact.engine, maxPages);
    engines.set(key, engine);
    engine.catch(() => engines.delete(key));
  }
  return engine;
}

async function makeEngine(component: Uint8Array, maxPages: number): Promise<Engine> {
  const transpiled = await transpileOffThread({ component, maxPages });
  if (!transpiled.ok) throw new UsageError('artifact', `the artifact's engine is not a valid WebAssembly component: ${transpiled.message}`);
  // The glue names core modules by file; the engine modules are found among them by their bytes.
  const nameOf = new Map(Object.entries(transpiled.modules).map(([name, bytes]) => [digest(bytes), name]));
  const moduleNames = new Map<number, string>();
  const importedGlobals = new Map<number, number>();
  mapCoreModules(component, (module, index) => {
    const sections = readModule(module);
    const imports = readImports(findSection(sections, SectionId.import));
    // A module whose own memory starts at 0 pages is where the build took a snapshot out.
    const memories = readMemories(findSection(sections, SectionId.memory));
    if (countImports(imports).memory === 0 && memories.length === 1 && memories[0]!.min === 0) {
      const name = nameOf.get(digest(capMemory(module, maxPages)));
      if (name !== undefined) {
        moduleNames.set(index, name);
        importedGlobals.set(index, countImports(imports).global);
      }
    }
    return module;
  });
  const modules: Record<string, WebAssembly.Module> = {};
  for (const [name, bytes] of Object.entries(transpiled.modules)) modules[name] = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  return { imports: transpiled.imports, exports: transpiled.exports, glue: transpiled.glue, modules, metered: isFuelInstrumented(component), moduleNames, importedGlobals };
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
