import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ComponentArtifact, isQuickjsHeader, readArtifact } from '../../runner/compile/artifact.ts';
import { buildKonnector } from '../../runner/compile/index.ts';
import { defaultLimits, type Limits } from '../../runner/limits.ts';
import { loadKonnector, type LoadedKonnector } from '../../runner/sandbox/loader.ts';
import type { EngineName } from '../../runner/sandbox/pool.ts';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const fixtureDir = (name: string) => path.join(repoRoot, 'test/fixtures/konnectors', name);
export const exampleDir = (name: string) => path.join(repoRoot, 'konnectors/examples', name);

let outDir: Promise<string> | undefined;
const built = new Map<string, Promise<string>>();

/** Builds a konnector directory once per test process with the real `konnector build` (for componentize-js unless told). */
export function buildOnce(konnectorDir: string, options: { unmetered?: boolean; engine?: EngineName } = {}): Promise<string> {
  const key = `${konnectorDir}:${options.engine ?? 'componentize-js'}:${options.unmetered ? 'unmetered' : 'metered'}`;
  let artifact = built.get(key);
  if (!artifact) {
    outDir ??= mkdtemp(path.join(os.tmpdir(), 'konnector-test-'));
    artifact = outDir.then(async (dir) => {
      const out = path.join(dir, `${path.basename(konnectorDir)}-${built.size}.kwasm`);
      await buildKonnector(konnectorDir, out, options);
      return out;
    });
    built.set(key, artifact);
  }
  return artifact;
}

/** A componentize-js artifact read back, for tests of the component itself (its modules, imports, snapshots). */
export async function readComponentArtifact(file: string): Promise<ComponentArtifact> {
  const artifact = await readArtifact(file);
  if (isQuickjsHeader(artifact.header)) throw new Error(`${file} is a QuickJS artifact, not a component`);
  return artifact as ComponentArtifact;
}

const loaded = new Map<string, Promise<LoadedKonnector>>();

/** Loads a built fixture once per memory cap (the cap is compiled into its modules). */
export function loadOnce(konnectorDir: string, limits: Limits = defaultLimits): Promise<LoadedKonnector> {
  const key = `${konnectorDir}:${limits.memoryBytes}`;
  let konnector = loaded.get(key);
  if (!konnector) {
    konnector = buildOnce(konnectorDir).then(async (file) => loadKonnector(await readComponentArtifact(file), limits));
    loaded.set(key, konnector);
  }
  return konnector;
}
