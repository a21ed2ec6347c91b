/**
 * The engines a konnector runs on, for tests whose body is the same on both (test/quickjs/engines.test.ts):
 * `loadOn(engine, dir, limits)` gives what runner/sandbox/job.ts runJob takes, built once per test process:
 * the componentize-js artifact (artifacts.ts), or the konnector bundled and compiled for QuickJS
 * (runner/quickjs/job.ts).
 */
import { afterAll, beforeAll } from 'vitest';
import { defaultLimits, type Limits } from '../../runner/limits.ts';
import type { EngineName } from '../../runner/sandbox/pool.ts';
import type { LoadedKonnector } from '../../runner/sandbox/loader.ts';
import { loadQuickjsKonnector } from '../../runner/quickjs/artifact.ts';
import { loadOnce } from './artifacts.ts';

export const ENGINES: readonly EngineName[] = ['componentize-js', 'quickjs'];

const quickjs = new Map<string, Promise<LoadedKonnector>>();

export function loadOn(engine: EngineName, konnectorDir: string, limits: Limits = defaultLimits): Promise<LoadedKonnector> {
  if (engine === 'componentize-js') return loadOnce(konnectorDir, limits);
  const key = `${konnectorDir}:${limits.memoryBytes}`;
  let konnector = quickjs.get(key);
  if (!konnector) {
    konnector = loadQuickjsKonnector(konnectorDir, limits);
    quickjs.set(key, konnector);
  }
  return konnector;
}

/**
 * `instance` made the engine's own, so that each engine's jobs see only their own documents and files:
 * `jane.cozy.example` on quickjs is `jane-quickjs.cozy.example`.
 */
export const instanceOn = (engine: EngineName, instance: string): string =>
  instance.replace(/^[^.]*/, (name) => `${name}-${engine.replace(/[^a-z]/g, '')}`);

/**
 * A vendor site of the describe block it is called in, started before the block's tests and stopped after them:
 * in a `describe.each(ENGINES)`, each engine's own, so that what one engine's jobs change or count on a site is
 * not the other's. Read it through the getter once the block's tests run.
 */
export function siteOfEachEngine<Site extends { stop(): Promise<void> }>(start: () => Promise<Site>): () => Site {
  let site: Site | undefined;
  beforeAll(async () => {
    site = await start();
  });
  afterAll(async () => {
    await site?.stop();
  });
  return () => {
    if (!site) throw new Error('the site is read before its beforeAll started it');
    return site;
  };
}
