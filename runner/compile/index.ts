import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { type ArtifactFields, type ArtifactHeader, encodeArtifact, writeArtifact } from './artifact.ts';
import { UsageError } from '../errors.ts';
import { type Manifest, readManifest } from './manifest.ts';
import { FUEL_INSTRUMENTER_VERSION, instrumentComponentFuel } from '../wasm/index.ts';
import { bundleKonnector } from './bundle.ts';
import { BuildCache } from './cache.ts';
import { componentizeBundle, engine } from './componentize.ts';
import type { EngineName } from '../sandbox/pool.ts';
import { bundleReference, type CompileKonnector, referenceSnapshot } from './reference.ts';

const self = createRequire(import.meta.url)('../../package.json') as { name: string; version: string };

export interface BuildResult {
  out: string;
  slug: string;
  version: string;
  sha256: string;
  /** The artifact file's size: the konnector's own part and its header. */
  bytes: number;
  /** The engine it names, written once to the engine store beside it. */
  engine: ArtifactHeader['engine'];
}

/**
 * `konnector build`: manifest + sources -> one artifact file. The same sources
 * give the same bytes.
 */
export interface BuildOptions {
  /** The engine the konnector runs on (default componentize-js; quickjs: runner/quickjs/artifact.ts). */
  engine?: EngineName;
  /** Leave the component without fuel metering (benchmarks compare both); the runner refuses it unless told. */
  unmetered?: boolean;
  progress?: (step: string) => void;
  /** Toolchain-only results kept between builds (default: ./cache.ts's defaultCacheDir()). */
  cache?: BuildCache;
}

export async function buildKonnector(konnectorDir: string, out: string, options: BuildOptions = {}): Promise<BuildResult> {
  const progress = options.progress ?? (() => {});
  if (options.engine === 'quickjs') {
    if (options.unmetered) {
      throw new UsageError('bad-arguments', '--unmetered is for componentize-js builds: a QuickJS artifact holds no engine code to meter, the host meters its engine when it loads it (run --allow-unmetered)');
    }
    // Loaded only for its builds: the QuickJS tooling (and node:wasi) is for them alone.
    const { buildQuickjsKonnector } = await import('../quickjs/artifact.ts');
    return buildQuickjsKonnector(konnectorDir, out, progress, options.cache);
  }
  progress('reading manifest.konnector');
  const manifest = await readManifest(konnectorDir);
  progress('bundling sources');
  const bundle = await bundleKonnector(konnectorDir);
  const cache = options.cache ?? new BuildCache();
  const compile: CompileKonnector = async (konnectorManifest, bundleCode) => {
    const component = await compileBundle(bundleCode, options, cache, progress);
    return { fields: artifactFields(konnectorManifest, bundleCode, options), component };
  };
  const referenceBundle = bundleReference();
  referenceBundle.catch(() => {}); // Awaited below; a failure before then is not unhandled.
  const { fields, component } = await compile(manifest, bundle.code);
  const artifact = await encodeArtifact(fields, component, (engineSha256) => referenceSnapshot(engineSha256, referenceBundle, compile, cache, progress));
  await writeArtifact(out, artifact, cache);
  const { header, bytes } = artifact;
  return { out, slug: manifest.slug, version: manifest.version, sha256: header.sha256, bytes: bytes.length, engine: header.engine };
}

/** The bundle as a component, fuel-metered unless told otherwise. */
async function compileBundle(code: string, options: BuildOptions, cache: BuildCache, progress: (step: string) => void): Promise<Uint8Array> {
  progress('compiling to a WebAssembly component');
  const componentized = await componentizeBundle(code, cache, progress);
  if (options.unmetered) return componentized;
  progress('metering fuel');
  try {
    return instrumentComponentFuel(componentized, { cache });
  } catch (error) {
    throw new UsageError('source', `the component cannot be fuel-metered: ${(error as Error).message}`);
  }
}

function artifactFields(manifest: Manifest, bundleCode: string, options: BuildOptions): ArtifactFields {
  return {
    manifest,
    engine,
    builtBy: { name: self.name, version: self.version },
    sourceSha256: createHash('sha256').update(bundleCode).digest('hex'),
    metering: options.unmetered ? null : { fuel: true, instrumenterVersion: FUEL_INSTRUMENTER_VERSION },
  };
}
