import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { componentize, version as engineVersion } from '@bytecodealliance/componentize-js';
import { UsageError } from '../errors.ts';

const witDir = fileURLToPath(new URL('../../wit/', import.meta.url));
const deterministicWizer = fileURLToPath(new URL('./preinit-bin.mjs', import.meta.url));

export const engine = { name: 'componentize-js', version: engineVersion as string };

/**
 * WASI features the component does NOT get. Only `random` stays (backed by the
 * host CSPRNG): no stdio, no clocks (time comes from our clock interface), no
 * wasi:http, no fetch-event.
 */
const DISABLED_FEATURES = ['stdio', 'clocks', 'http', 'fetch-event'] as const;

let queue: Promise<unknown> = Promise.resolve();

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
 * engine, so it must not vary between builds.
 */
export async function componentizeBundle(code: string): Promise<Uint8Array> {
  const sourceDir = path.join('/tmp', `konnector-build-${createHash('sha256').update(code).digest('hex').slice(0, 16)}`);
  await rm(sourceDir, { recursive: true, force: true });
  await mkdir(sourceDir, { recursive: true });
  const sourcePath = path.join(sourceDir, 'konnector.js');
  await writeFile(sourcePath, code);
  try {
    const { component } = await withPinnedEntropy(code, () =>
      componentize({
        sourcePath,
        witPath: witDir,
        worldName: 'konnector',
        disableFeatures: [...DISABLED_FEATURES],
        wizerBin: deterministicWizer,
      }),
    );
    return component;
  } catch (error) {
    throw new UsageError('source', `the konnector does not compile to a component: ${(error as Error).message}`);
  } finally {
    await rm(sourceDir, { recursive: true, force: true });
  }
}
