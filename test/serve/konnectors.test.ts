import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KonnectorRegistry } from '../../runner/serve/konnectors.ts';
import { serveWorkerArtifact, SLUG, TEST_LIMITS } from './support.ts';

const dirs: string[] = [];
async function dirWith(files: Record<string, string | 'artifact'>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'serve-registry-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    if (content === 'artifact') await copyFile(await serveWorkerArtifact(), path.join(dir, name));
    else await writeFile(path.join(dir, name), content);
  }
  return dir;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('the konnectors directory', () => {
  it('loads each artifact once and shares the compiled konnector between jobs', async () => {
    const registry = new KonnectorRegistry(await dirWith({ [`${SLUG}.kwasm`]: 'artifact', 'README.md': 'not an artifact' }), TEST_LIMITS);
    await registry.scan();
    expect(registry.list().map((k) => k.slug)).toEqual([SLUG]);
    const [first, second] = await Promise.all([registry.get(SLUG), registry.get(SLUG)]);
    expect(first).not.toBeNull();
    expect(second).toBe(first);
    expect(await registry.get(SLUG)).toBe(first);
    expect(await registry.get('unknown')).toBeNull();
  });

  it('with preload, loads each listed konnector in the background after a scan: a job then finds it ready', async () => {
    const dir = await dirWith({ [`${SLUG}.kwasm`]: 'artifact' });
    const lazy = new KonnectorRegistry(dir, TEST_LIMITS);
    const failures: string[] = [];
    const preloading = new KonnectorRegistry(dir, TEST_LIMITS, { preload: true, onPreloadError: (slug) => failures.push(slug) });
    await Promise.all([lazy.scan(), preloading.scan()]);
    await preloading.whenPreloaded();
    expect(failures).toEqual([]);
    // The file is damaged after the scans: only a konnector already loaded still runs (a rescan keeps the last good set).
    await writeFile(path.join(dir, `${SLUG}.kwasm`), 'damaged');
    const ready = await preloading.get(SLUG);
    expect(ready?.header.manifest.slug).toBe(SLUG);
    await expect(lazy.get(SLUG)).rejects.toThrow(/is not a usable konnector artifact/);
  });

  it('with preload, tells at once of a konnector that cannot be loaded, and its job fails the same way', async () => {
    // Its snapshot starts at several MiB of memory: a cap of 1 MiB cannot hold it.
    const tooSmall = { ...TEST_LIMITS, memoryBytes: 1024 * 1024 };
    const failures: [string, string][] = [];
    const registry = new KonnectorRegistry(await dirWith({ [`${SLUG}.kwasm`]: 'artifact' }), tooSmall, {
      preload: true,
      onPreloadError: (slug, error) => failures.push([slug, error.message]),
    });
    await registry.scan();
    await registry.whenPreloaded();
    expect(failures).toEqual([[SLUG, expect.stringMatching(/above the cap of 16 pages: raise the memory limit/)]]);
    await expect(registry.get(SLUG)).rejects.toThrow(/above the cap of 16 pages/);
  });

  it('refuses two artifacts of one slug, naming both files', async () => {
    const dir = await dirWith({ 'a.kwasm': 'artifact', 'b.kwasm': 'artifact' });
    await expect(new KonnectorRegistry(dir, TEST_LIMITS).scan()).rejects.toThrow(
      `${path.join(dir, 'a.kwasm')} and ${path.join(dir, 'b.kwasm')} are both the konnector "${SLUG}"`);
  });

  it('refuses a file that is not an artifact, and picks up an artifact added later', async () => {
    const dir = await dirWith({ 'broken.kwasm': 'hello' });
    const registry = new KonnectorRegistry(dir, TEST_LIMITS);
    await expect(registry.scan()).rejects.toThrow(/broken.kwasm is not a usable konnector artifact: it does not start with the artifact signature/);
    await rm(path.join(dir, 'broken.kwasm'));
    await registry.scan();
    expect(await registry.has(SLUG)).toBe(false);
    await copyFile(await serveWorkerArtifact(), path.join(dir, `${SLUG}.kwasm`));
    expect(await registry.has(SLUG)).toBe(true);
  });
});
