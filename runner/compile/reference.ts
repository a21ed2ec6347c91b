/**
 * The reference snapshot konnectors' own parts are stored against
 * (runner/wasm/snapshot-delta.ts): the artifact of ./reference-konnector/, a
 * konnector that loads the SDK and nothing else, built by the same toolchain
 * with the same engine. What the engine's runtime and the SDK put in memory
 * is then stored once per engine instead of in every artifact (example-bills'
 * own part: 3.44 MB stored whole, 1.44 MB against the reference).
 *
 * It is built on a machine's first build for an engine and kept in the build
 * cache by its sha256, where the runner finds it too; another entry, named by the engine's
 * sha256 and the reference's bundled sources, holds that sha256.
 * It need not match the konnector for correctness: any reference gives back
 * the same bytes, a closer one only stores fewer.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type ArtifactFields, decodeReference, encodeArtifact, referenceCacheKey, type ReferenceSnapshot } from './artifact.ts';
import { type Bundle, bundleKonnector } from './bundle.ts';
import { type BuildCache, cacheKey } from './cache.ts';
import { type Manifest, readManifest } from './manifest.ts';

const REFERENCE_KONNECTOR_DIR = fileURLToPath(new URL('./reference-konnector/', import.meta.url));

/** The reference konnector bundled: its code names the reference in the cache. Started with a build, beside its compilation. */
export const bundleReference = () => bundleKonnector(REFERENCE_KONNECTOR_DIR);

/** How a konnector is compiled to its component and header fields (./index.ts), for the reference's own build. */
export type CompileKonnector = (manifest: Manifest, bundleCode: string) => Promise<{ fields: ArtifactFields; component: Uint8Array }>;

/**
 * The reference snapshot for `engineSha256`, from the cache or built with
 * `compile` (the konnector's own options); null if the reference, built,
 * does not have that engine (the build then stores its own part whole).
 */
export async function referenceSnapshot(
  engineSha256: string,
  bundled: Promise<Bundle>,
  compile: CompileKonnector,
  cache: BuildCache,
  progress: (step: string) => void,
): Promise<ReferenceSnapshot | null> {
  const bundle = await bundled;
  const key = cacheKey('reference-sha256-for', engineSha256, createHash('sha256').update(bundle.code).digest('hex'));
  const referenceSha256 = cache.get(key)?.toString();
  const cached = referenceSha256 && cache.get(referenceCacheKey(referenceSha256));
  if (cached) {
    try {
      const reference = decodeReference(cached, 'the cached reference snapshot');
      if (reference.header.sha256 === referenceSha256) return reference;
    } catch {
      // Made again below.
    }
  }
  progress('building the reference snapshot (once per engine)');
  const { fields, component } = await compile(await readManifest(REFERENCE_KONNECTOR_DIR), bundle.code);
  const encoded = await encodeArtifact(fields, component);
  if (encoded.header.engine.sha256 !== engineSha256) return null;
  const reference = decodeReference(encoded.bytes, 'the reference snapshot');
  cache.put(referenceCacheKey(reference.header.sha256), encoded.bytes);
  cache.put(key, Buffer.from(reference.header.sha256));
  return reference;
}
