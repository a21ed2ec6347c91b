/**
 * `konnector build` of several konnectors: one child process per build, as
 * many at a time as there are cores (the build cache makes every build after
 * the first skip the toolchain's own work). One konnector's failure does not
 * stop the others.
 */
import { fork } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, type UsageErrorKind } from '../errors.ts';
import { readManifest } from './manifest.ts';
import type { BuildMessage, BuildRequest } from './build-child.ts';
import type { BuildResult } from './index.ts';
import type { EngineName } from '../sandbox/pool.ts';

const buildChild = fileURLToPath(new URL('./build-child.ts', import.meta.url));

/** Each build's outcome, with the seconds it took. */
export type BuildOutcome = ({ result: BuildResult } | { error: Error }) & { dir: string; seconds: number };

export interface ParallelBuildOptions {
  unmetered?: boolean;
  engine?: EngineName;
  /** Builds at a time (default: the cores this process may use). */
  jobs?: number;
  progress?: (dir: string, step: string) => void;
}

/**
 * Builds each konnector directory to `<outDir>/<slug>.kwasm`. Two konnectors
 * with the same slug are refused before anything is built.
 */
export async function buildKonnectors(dirs: string[], outDir: string, options: ParallelBuildOptions = {}): Promise<BuildOutcome[]> {
  const outs = new Map<string, string>();
  for (const dir of dirs) {
    const { slug } = await readManifest(dir);
    const out = path.join(outDir, `${slug}.kwasm`);
    const other = [...outs].find(([, o]) => o === out)?.[0];
    if (other !== undefined) throw new UsageError('bad-arguments', `${dir} and ${other} are both the konnector "${slug}": each would write ${out}`);
    outs.set(dir, out);
  }
  const jobs = Math.max(1, Math.min(options.jobs ?? os.availableParallelism(), dirs.length));
  const outcomes: BuildOutcome[] = new Array(dirs.length);
  let next = 0;
  const lane = async () => {
    while (next < dirs.length) {
      const index = next++;
      const dir = dirs[index]!;
      const started = performance.now();
      const seconds = () => (performance.now() - started) / 1000;
      outcomes[index] = await buildInChild({ dir, out: outs.get(dir)!, unmetered: options.unmetered ?? false, engine: options.engine ?? 'componentize-js' }, (step) => options.progress?.(dir, step))
        .then((result) => ({ dir, result, seconds: seconds() }), (error: Error) => ({ dir, error, seconds: seconds() }));
    }
  };
  await Promise.all(Array.from({ length: jobs }, lane));
  return outcomes;
}

function buildInChild(request: BuildRequest, progress: (step: string) => void): Promise<BuildResult> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const child = fork(buildChild, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (message: BuildMessage) => {
      if ('progress' in message) return progress(message.progress);
      answered = true;
      if ('result' in message) resolve(message.result);
      else reject(message.error.usage ? new UsageError(message.error.kind as UsageErrorKind, message.error.message) : new Error(message.error.message));
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (!answered) reject(new Error(`the build of ${request.dir} stopped (${signal ?? `exit code ${code}`}) without an answer`));
    });
    child.send(request);
  });
}
