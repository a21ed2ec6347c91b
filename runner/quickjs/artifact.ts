/**
 * A QuickJS konnector as an artifact (`konnector build --engine quickjs`), in the one artifact container
 * (runner/compile/artifact.ts, format 2): the header names the engine `quickjs` by its sha256, the own part is
 * the konnector's bytecode, written by the engine itself (JS_WriteObject, bundle.ts compileToBytecode).
 *
 * The engine the artifact names is runner/quickjs/engine.wasm as built, not the shared engine of snapshots
 * (snapshot.ts): bytecode is tied to the engine build that wrote it, and loading it (`engine_init` under the
 * pre-initializer) needs that engine with its data segments and `_initialize`, which the shared engine no longer
 * has. The shared engine is derived from it at load, the same bytes for every konnector, so a host still meters
 * and compiles it once per memory cap (job.ts). A snapshot in the artifact instead of the bytecode would be
 * 2.8 MiB compressed (docs/engines.md) against the 1.5 MB.
 */
import { createRequire } from 'node:module';
import { compressOwn, type EncodedArtifact, type QuickjsArtifact, type QuickjsArtifactHeader, sealArtifact, WORLD, writeArtifact } from '../compile/artifact.ts';
import type { BuildCache } from '../compile/cache.ts';
import type { BuildResult } from '../compile/index.ts';
import { readManifest } from '../compile/manifest.ts';
import { bundleForQuickjs, compileToBytecode } from './bundle.ts';
import type { Limits } from '../limits.ts';
import { compiledEngine, ENGINE_URL, readEngine, sha256 } from './engine.ts';
import { loadQuickjsArtifact, type QuickjsKonnector, type QuickjsLoadOptions } from './job.ts';
import { snapshotKonnector } from './snapshot.ts';

const self = createRequire(import.meta.url)('../../package.json') as { name: string; version: string };

/** The QuickJS release the engine is built from (build-engine.sh); the engine's sha256 tells builds apart. */
const QUICKJS_VERSION = '2021-03-27';

export interface EncodedQuickjsArtifact extends EncodedArtifact {
  header: QuickjsArtifactHeader;
  bytecode: Uint8Array;
}

/** Bundles the konnector in `dir`, compiles it to bytecode with the committed engine and encodes its artifact. */
export async function encodeQuickjsKonnector(dir: string, progress: (step: string) => void = () => {}): Promise<EncodedQuickjsArtifact> {
  progress('reading manifest.konnector');
  const manifest = await readManifest(dir);
  progress('bundling sources for QuickJS');
  const [script, engine] = await Promise.all([bundleForQuickjs(dir), readEngine()]);
  progress('compiling to QuickJS bytecode');
  const bytecode = compileToBytecode(await compiledEngine(engine, { fuel: false }), script);
  const ownPart = compressOwn(bytecode);
  // In the schema's order (QuickjsHeaderSchema): the sha256 is taken over the header as decoding gives it back.
  const header: QuickjsArtifactHeader = {
    format: 2,
    world: WORLD,
    manifest,
    engine: { name: 'quickjs', version: QUICKJS_VERSION, sha256: sha256(engine), bytes: engine.length },
    builtBy: { name: self.name, version: self.version },
    sourceSha256: sha256(new TextEncoder().encode(script)),
    bytecode: { bytes: bytecode.length },
    own: { compression: 'br', bytes: ownPart.length },
    sha256: '',
  };
  return { ...sealArtifact(header, ownPart, engine), bytecode };
}

/** `konnector build --engine quickjs`: the artifact written to `out`, its engine to the engine store beside it and to the build cache. */
export async function buildQuickjsKonnector(dir: string, out: string, progress: (step: string) => void, cache?: BuildCache): Promise<BuildResult> {
  const artifact = await encodeQuickjsKonnector(dir, progress);
  // Its top level runs when a host loads it; a konnector that cannot load fails here, as a component's build does.
  progress('loading it once in the engine');
  await snapshotKonnector(artifact.bytecode, new Uint8Array(artifact.engine));
  await writeArtifact(out, artifact, cache);
  const { header, bytes } = artifact;
  return { out, slug: header.manifest.slug, version: header.manifest.version, sha256: header.sha256, bytes: bytes.length, engine: header.engine };
}

/** The konnector in `dir` bundled, compiled and loaded as its artifact would be, without writing one (tests, benchmarks). */
export async function loadQuickjsKonnector(dir: string, limits: Pick<Limits, 'memoryBytes'>, options: QuickjsLoadOptions = {}): Promise<QuickjsKonnector> {
  const encoded = await encodeQuickjsKonnector(dir);
  const artifact: QuickjsArtifact = {
    header: encoded.header,
    engine: new Uint8Array(encoded.engine),
    bytecode: encoded.bytecode,
    fileBytes: encoded.bytes.length,
    engineFile: ENGINE_URL.pathname,
  };
  return loadQuickjsArtifact(artifact, limits, options);
}
