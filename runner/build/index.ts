import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { encodeArtifact, writeArtifact } from '../artifact.ts';
import { readManifest } from '../manifest.ts';
import { bundleKonnector } from './bundle.ts';
import { componentizeBundle, engine } from './componentize.ts';

const self = createRequire(import.meta.url)('../../package.json') as { name: string; version: string };

export interface BuildResult {
  out: string;
  slug: string;
  version: string;
  sha256: string;
  bytes: number;
}

/**
 * `konnector build`: manifest + sources -> one artifact file. The same sources
 * give the same bytes.
 */
export async function buildKonnector(
  konnectorDir: string,
  out: string,
  progress: (step: string) => void = () => {},
): Promise<BuildResult> {
  progress('reading manifest.konnector');
  const manifest = await readManifest(konnectorDir);
  progress('bundling sources');
  const bundle = await bundleKonnector(konnectorDir);
  progress('compiling to a WebAssembly component');
  const component = await componentizeBundle(bundle.code);
  const { header, bytes } = encodeArtifact(
    {
      manifest,
      engine,
      builtBy: { name: self.name, version: self.version },
      sourceSha256: createHash('sha256').update(bundle.code).digest('hex'),
      component: { bytes: component.length },
    },
    component,
  );
  await writeArtifact(out, bytes);
  return { out, slug: manifest.slug, version: manifest.version, sha256: header.sha256, bytes: bytes.length };
}
