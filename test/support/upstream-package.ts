/**
 * A published npm package, unpacked for a test to read (upstream's own spec
 * files): fetched with `npm pack` from the registry at test time, checked
 * against its pinned integrity, and kept in a cache under the system's temporary
 * directory. Nothing of it is copied into the repository.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Unavailable } from './services.ts';

const run = promisify(execFile);

export interface UpstreamPackage {
  name: string;
  version: string;
  /** The registry's `dist.integrity` of the tarball (sha512). */
  integrity: string;
}

export const COZY_KONNECTOR_LIBS: UpstreamPackage = {
  name: 'cozy-konnector-libs',
  version: '5.13.0',
  integrity: 'sha512-T79/xWvt0vAlGmP+TySFF1JAqybatiq3ZVnTBxjzZMko9bKcXI2jUEUSuZ2jPSL+XnIk5ZMUb0G1Zy4VpmaAlg==',
};

const CACHE_DIR = path.join(os.tmpdir(), 'konnector-upstream-packages');
// Generous: the registry answers in seconds, a loaded machine unpacks slowly.
const FETCH_TIMEOUT_MS = 180_000;

const exists = (file: string) => stat(file).then(() => true, () => false);

/**
 * The directory holding the package's files (its tarball's `package/`), or why it
 * could not be had (the registry unreachable, an integrity mismatch).
 */
export async function unpackUpstream(pkg: UpstreamPackage): Promise<{ dir: string } | { unavailable: Unavailable }> {
  const dir = path.join(CACHE_DIR, `${pkg.name}-${pkg.version}`);
  if (await exists(path.join(dir, 'package.json'))) return { dir };
  await mkdir(CACHE_DIR, { recursive: true });
  const work = await mkdtemp(path.join(CACHE_DIR, 'fetch-'));
  try {
    const spec = `${pkg.name}@${pkg.version}`;
    let tarball: string;
    try {
      const { stdout } = await run('npm', ['pack', spec, '--json', '--pack-destination', work], { timeout: FETCH_TIMEOUT_MS, cwd: work });
      tarball = path.join(work, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename);
    } catch (error) {
      // npm's first error line says what failed (ECONNREFUSED, E404...); its last one only where its log is.
      const output = ((error as { stderr?: string }).stderr || (error as Error).message).trim().split('\n');
      const reason = output.find((line) => line.startsWith('npm error') && !line.includes('A complete log')) ?? output[0];
      return { unavailable: { missing: `${spec} could not be fetched from the npm registry (${reason})`, remedy: 'reach the npm registry' } };
    }
    const integrity = `sha512-${createHash('sha512').update(await readFile(tarball)).digest('base64')}`;
    if (integrity !== pkg.integrity) throw new Error(`${spec} from the registry has integrity ${integrity}, not the pinned ${pkg.integrity}`);
    await run('tar', ['-xzf', tarball, '-C', work], { timeout: FETCH_TIMEOUT_MS });
    // Test files run in parallel may unpack it at once: the first rename wins, the others use its copy.
    await rename(path.join(work, 'package'), dir).catch(async (error: NodeJS.ErrnoException) => {
      if (!(await exists(path.join(dir, 'package.json')))) throw error;
    });
    return { dir };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
