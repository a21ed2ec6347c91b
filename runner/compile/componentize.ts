import { createHash } from 'node:crypto';
import { constants, readdirSync, readFileSync } from 'node:fs';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { componentize, version as engineVersion } from '@bytecodealliance/componentize-js';
import { build as esbuild } from 'esbuild';
import { UsageError } from '../errors.ts';
import { encodeModule, findSection, mapCoreModules, readModule, setSection, SNAPSHOT_SECTIONS, type Section } from '../wasm/index.ts';
import { type BuildCache, cacheKey } from './cache.ts';
import { withMachineLock } from './machine-lock.ts';

const witDir = fileURLToPath(new URL('../../wit/', import.meta.url));
const preinitDir = fileURLToPath(new URL('./preinit/', import.meta.url));

export const engine = { name: 'componentize-js' as const, version: engineVersion as string };

/**
 * WASI features the component does NOT get. Only `random` stays (backed by the
 * host CSPRNG): no stdio, no clocks (time comes from our clock interface), no
 * wasi:http, no fetch-event.
 */
const DISABLED_FEATURES = ['stdio', 'clocks', 'http', 'fetch-event'] as const;

let queue: Promise<unknown> = Promise.resolve();

/** The componentize-js release whose splicer `cacheEngineWork` knows. */
const SPLICER_KNOWN_VERSION = '0.23.0';
/** The module componentize() imports its splicer from (the package's exports do not name it). */
const splicerModule = new URL('../../node_modules/@bytecodealliance/componentize-js/lib/spidermonkey-embedding-splicer.js', import.meta.url).href;
/** The wasm-tools object whose functions componentize() calls through jco (jco-transpile, pinned in package.json). */
const wasmToolsModule = new URL('../../node_modules/@bytecodealliance/jco-transpile/vendor/wasm-tools.js', import.meta.url).href;

interface Splicer {
  spliceBindings(engine: Uint8Array, features: string[], witWorld: string | undefined, witPath: string, worldName: string, debug: boolean): Spliced;
  stubWasi(wasm: Uint8Array, features: string[], witWorld: string | undefined, witPath: string, worldName: string): Uint8Array;
}
interface WasmTools {
  componentNew(module: Uint8Array, adapters: [string, Uint8Array][]): Uint8Array;
  metadataAdd(component: Uint8Array, metadata: unknown): Uint8Array;
}
interface Spliced {
  wasm: Uint8Array;
  jsBindings: string;
  exports: unknown;
  imports: unknown;
}

const withSnapshotOf = (engine: readonly Section[], snapshot: readonly Section[]) =>
  SNAPSHOT_SECTIONS.reduce((sections, id) => setSection(sections, id, findSection(snapshot, id) ?? null), [...engine]);
const engineSections = (sections: readonly Section[]) => withSnapshotOf(sections, []);

/**
 * componentize-js rewrites its whole 12 MB engine three times per build: once to
 * splice in the world's bindings, once after preinitialization to stub the
 * WASI imports of disabled features, once more to wrap it in a component
 * with the WASI adapter; together, most of a build's time. All three depend
 * on the engine and the WIT alone, not on the konnector (whose state lives in
 * the snapshot sections, which they leave as they are). The splicer and
 * wasm-tools are plain objects that componentize() calls through, so wrapping
 * their functions with the build cache lets later builds skip the work.
 * Other releases are left as they are (builds are then slower).
 */
async function cacheEngineWork(cache: BuildCache): Promise<() => void> {
  if (!cache.dir || engineVersion !== SPLICER_KNOWN_VERSION) return () => {};
  const { splicer } = (await import(splicerModule)) as { splicer: Splicer };
  const { tools } = (await import(wasmToolsModule)) as { tools: WasmTools };
  const { spliceBindings, stubWasi } = splicer;
  const { componentNew, metadataAdd } = tools;
  const world = (features: string[], witWorld: string | undefined, witPath: string, worldName: string) =>
    [engineVersion, features.join(','), witWorld ?? '', witFiles(witPath), worldName];

  splicer.spliceBindings = (engine, features, witWorld, witPath, worldName, debug) => {
    const key = cacheKey('spliced', engine, String(debug), ...world(features, witWorld, witPath, worldName));
    const cached = cache.get(key);
    if (cached) {
      const metaBytes = cached.readUInt32LE(0);
      return { ...JSON.parse(cached.subarray(4, 4 + metaBytes).toString()), wasm: cached.subarray(4 + metaBytes) } as Spliced;
    }
    const spliced = spliceBindings(engine, features, witWorld, witPath, worldName, debug);
    const meta = Buffer.from(JSON.stringify({ jsBindings: spliced.jsBindings, exports: spliced.exports, imports: spliced.imports }));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(meta.length);
    cache.put(key, Buffer.concat([length, meta, spliced.wasm]));
    return spliced;
  };

  splicer.stubWasi = (wasm, features, witWorld, witPath, worldName) => {
    const snapshot = readModule(wasm);
    const key = cacheKey('stubbed', encodeModule(engineSections(snapshot)), ...world(features, witWorld, witPath, worldName));
    const cached = cache.get(key);
    if (cached) return encodeModule(withSnapshotOf(readModule(cached), snapshot));
    const stubbed = stubWasi(wasm, features, witWorld, witPath, worldName);
    const stubbedSections = readModule(stubbed);
    // Kept only when stubbing left the snapshot untouched, so that the entry fits any konnector's snapshot.
    const snapshotKept = SNAPSHOT_SECTIONS.every((id) => samePayload(findSection(stubbedSections, id), findSection(snapshot, id)));
    if (snapshotKept) cache.put(key, encodeModule(engineSections(stubbedSections)));
    return stubbed;
  };

  // The component's module is the snapshot module: both steps are cached on the engine without the snapshot.
  let made: { component: Uint8Array; key: string; sections: Section[] } | undefined;
  tools.componentNew = (module, adapters) => {
    const sections = readModule(module);
    const key = cacheKey('component', encodeModule(engineSections(sections)), ...adapters.flat());
    const component = withCachedEngine(cache, key, sections, () => componentNew(module, adapters));
    made = { component, key, sections };
    return component;
  };
  tools.metadataAdd = (component, metadata) => {
    if (component !== made?.component) return metadataAdd(component, metadata);
    const key = cacheKey('metadata', made.key, JSON.stringify(metadata));
    return withCachedEngine(cache, key, made.sections, () => metadataAdd(component, metadata));
  };

  return () => {
    Object.assign(splicer, { spliceBindings, stubWasi });
    Object.assign(tools, { componentNew, metadataAdd });
  };
}

const samePayload = (a: Section | undefined, b: Section | undefined) => Buffer.from(a?.payload ?? []).equals(b?.payload ?? new Uint8Array());

/**
 * A component holding the module of `sections`, from the cache entry `key`
 * (the component with that module's snapshot taken out) or else from `make`.
 * An entry is kept only when putting the snapshot back gives `make`'s bytes.
 */
function withCachedEngine(cache: BuildCache, key: string, sections: readonly Section[], make: () => Uint8Array): Uint8Array {
  const cached = cache.get(key);
  if (cached) return withModuleSnapshot(cached.subarray(4), cached.readUInt32LE(0), sections);
  const component = make();
  let index = -1;
  const engineOnly = mapCoreModules(component, (core, at) => {
    const coreSections = readModule(core);
    if (!SNAPSHOT_SECTIONS.every((id) => samePayload(findSection(coreSections, id), findSection(sections, id)))) return core;
    index = at;
    return encodeModule(engineSections(coreSections));
  });
  if (index >= 0 && Buffer.from(withModuleSnapshot(engineOnly, index, sections)).equals(component)) {
    const at = Buffer.alloc(4);
    at.writeUInt32LE(index);
    cache.put(key, Buffer.concat([at, engineOnly]));
  }
  return component;
}

/** `component` with the snapshot of `sections` put into its core module number `index`. */
const withModuleSnapshot = (component: Uint8Array, index: number, sections: readonly Section[]) =>
  mapCoreModules(component, (core, at) => (at === index ? encodeModule(withSnapshotOf(readModule(core), sections)) : core));

/** The WIT package's files, names and contents, as one string for a cache key. */
function witFiles(dir: string): string {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.wit'))
    .sort()
    .map((name) => `${name}\n${readFileSync(path.join(dir, name), 'utf8')}`)
    .join('\n');
}

/**
 * componentize-js reads the wall clock and Math.random of THIS process (for the
 * stub clock it bakes in and for its work directory, whose path the snapshot
 * sees). Both are pinned while it runs, and calls are serialized so the pinned
 * values never leak into concurrent work.
 */
async function withPinnedEntropy<T>(seed: string, work: () => Promise<T>): Promise<T> {
  const run = queue.then(async () => {
    const realNow = Date.now;
    const realRandom = Math.random;
    const realTmp = process.env.TMPDIR;
    const seedState = createHash('sha256').update(seed).digest().readUInt32LE(0) || 1;
    let state = seedState;
    const next = () => {
      state = (state * 16807) % 2147483647;
      return state / 2147483647;
    };
    // componentize-js names its work directory after its first Math.random()
    // and fails if it exists: clear what a killed build of the same source left.
    await rm(path.join('/tmp', createHash('sha256').update(next().toString()).digest('hex').slice(0, 12)), { recursive: true, force: true });
    state = seedState;
    Date.now = () => 0;
    Math.random = next;
    process.env.TMPDIR = '/tmp';
    try {
      return await work();
    } finally {
      Date.now = realNow;
      Math.random = realRandom;
      if (realTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = realTmp;
    }
  });
  queue = run.catch(() => undefined);
  return run;
}

/**
 * Compiles one bundled ES module to a component of the konnector world. The
 * source goes to a directory named after its hash: its path is passed to the
 * engine, so it must not vary between builds. componentize-js's own work
 * directory is named after the pinned Math.random, so it too is the same for
 * the same sources: builds of the same sources in other processes take turns.
 */
export async function componentizeBundle(code: string, cache: BuildCache, progress: (step: string) => void = () => {}): Promise<Uint8Array> {
  const sourceHash = createHash('sha256').update(code).digest('hex').slice(0, 16);
  const sourceDir = path.join('/tmp', `konnector-build-${sourceHash}`);
  const waiting = () => progress('waiting for another build of the same sources on this machine');
  // Bundled beside the first steps; waited for only by componentize-js's pre-initialization.
  const preinitBinDir = await mkdtemp(path.join(os.tmpdir(), 'konnector-preinit-'));
  const preinitBin = writePreinitBin(preinitBinDir);
  preinitBin.catch(() => {}); // Awaited below; a failure before then is not unhandled.
  try {
    return await withMachineLock(`konnector-build-${sourceHash}`, waiting, async () => {
      await rm(sourceDir, { recursive: true, force: true });
      await mkdir(sourceDir, { recursive: true });
      const sourcePath = path.join(sourceDir, 'konnector.js');
      await writeFile(sourcePath, code);
      let wizerBin: string | undefined;
      try {
        wizerBin = await preinitBin;
        const { component } = await withPinnedEntropy(code, async () => {
          const uncache = await cacheEngineWork(cache);
          try {
            return await componentize({
              sourcePath,
              witPath: witDir,
              worldName: 'konnector',
              disableFeatures: [...DISABLED_FEATURES],
              wizerBin,
            });
          } finally {
            uncache();
          }
        });
        return component;
      } catch (error) {
        // componentize-js names the pre-initializer it ran: the bundled one is a temporary file, gone once the build ends.
        const message = wizerBin ? (error as Error).message.replaceAll(wizerBin, preinitDir) : (error as Error).message;
        throw new UsageError('source', `the konnector does not compile to a component: ${message}`);
      } finally {
        await rm(sourceDir, { recursive: true, force: true });
      }
    });
  } finally {
    await rm(preinitBinDir, { recursive: true, force: true });
  }
}

/**
 * Writes the deterministic pre-initializer (./preinit/) into `dir` as one
 * JavaScript file and returns its path, for componentize-js to run as its
 * `wizerBin`: plain Node starts it in milliseconds, where ./preinit/bin.mjs
 * (tsx loading its TypeScript module by module) took half a second of every
 * build. CommonJS, so that the warning filter runs before node:wasi loads.
 */
async function writePreinitBin(dir: string): Promise<string> {
  const { outputFiles } = await esbuild({
    stdin: {
      contents: "import '../../quiet-wasi-warning.mjs'; import { main } from './cli.ts'; process.exitCode = main(process.argv.slice(2));",
      resolveDir: preinitDir,
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
    write: false,
    logLevel: 'silent',
  });
  const file = path.join(dir, 'preinit.cjs');
  await writeFile(file, outputFiles[0]!.contents, { mode: 0o755 });
  // Where the temporary directory is mounted noexec, the TypeScript one runs instead.
  return access(file, constants.X_OK).then(() => file, () => path.join(preinitDir, 'bin.mjs'));
}
