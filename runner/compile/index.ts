import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { type ArtifactHeader, encodeArtifact, writeArtifact } from './artifact.ts';
import { UsageError } from '../errors.ts';
import { readManifest } from './manifest.ts';
import { FUEL_INSTRUMENTER_VERSION, instrumentComponentFuel } from '../wasm/index.ts';
import { bundleKonnector } from './bundle.ts';
import { BuildCache } from './cache.ts';
import { componentizeBundle, engine } from './componentize.ts';
import { buildQuickjsKonnector } from '../quickjs/artifact.ts';
import type { EngineName } from '../sandbox/pool.ts';

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
    return buildQuickjsKonnector(konnectorDir, out, progress, options.cache);
  }
  progress('reading manifest.konnector');
  const manifest = await readManifest(konnectorDir);
  progress('bundling sources');
  const bundle = await bundleKonnector(konnectorDir);
  progress('compiling to a WebAssembly component');
  const cache = options.cache ?? new BuildCache();
  const componentized = await componentizeBundle(bundle.code, cache, progress);
  let component = componentized;
  if (!options.unmetered) {
    progress('metering fuel');
    try {
      component = instrumentComponentFuel(componentized, { cache });
    } catch (error) {
      throw new UsageError('source', `the component cannot be fuel-metered: ${(error as Error).message}`);
    }
  }
  const artifact = encodeArtifact(
    {
      manifest,
      engine,
      builtBy: { name: self.name, version: self.version },
      sourceSha256: createHash('sha256').update(bundle.code).digest('hex'),
      metering: options.unmetered ? null : { fuel: true, instrumenterVersion: FUEL_INSTRUMENTER_VERSION },
    },
    component,
  );
  await writeArtifact(out, artifact, cache);
  const { header, bytes } = artifact;
  return { out, slug: manifest.slug, version: manifest.version, sha256: header.sha256, bytes: bytes.length, engine: header.engine };
}
