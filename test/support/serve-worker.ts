/**
 * The worker host's test konnector (test/fixtures/konnectors/serve-worker),
 * built once per source and cached on disk, for the serve tests and
 * bench/load.ts alike: benign runs that save one document per job, or, as
 * the account's fields say, a failure with a code, a memory hog or a crash.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildKonnector } from '../../runner/compile/index.ts';
import { fixtureDir, repoRoot } from './artifacts.ts';

export const SLUG = 'serve-worker';

const fixture = fixtureDir(SLUG);

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)])));
  return nested.flat().sort();
}

/**
 * The serve-worker konnector, built with the real build. Keyed by its sources,
 * the build pipeline and the lockfile, so every test file and bench run reuses one build.
 */
export async function serveWorkerArtifact(): Promise<string> {
  const inputs = [...(await filesUnder(fixture)), ...(await filesUnder(path.join(repoRoot, 'runner/compile'))),
    path.join(repoRoot, 'package-lock.json')];
  const hash = createHash('sha256');
  for (const file of inputs) hash.update(file).update(await readFile(file));
  const cacheDir = path.join(os.tmpdir(), 'konnector-serve-test-artifacts');
  const file = path.join(cacheDir, `${SLUG}-${hash.digest('hex').slice(0, 16)}.kwasm`);
  if (!(await stat(file).catch(() => null))) {
    await mkdir(cacheDir, { recursive: true });
    const partial = `${file}.${process.pid}.partial`;
    await buildKonnector(fixture, partial);
    await rename(partial, file);
  }
  return file;
}

/** A konnectors directory holding the serve-worker artifact. */
export async function konnectorsDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'serve-konnectors-'));
  await copyFile(await serveWorkerArtifact(), path.join(dir, `${SLUG}.kwasm`));
  return dir;
}
