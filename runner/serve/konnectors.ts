/**
 * The konnectors a host can run: the `*.kwasm` artifacts of one directory.
 * Each artifact is verified (sha256) when it is read; its compiled modules are
 * made once per sha256 and shared by every job after it (a WebAssembly.Module
 * goes to workers without recompiling): on the first job that needs them, or,
 * with `preload`, in the background as soon as a scan lists the artifact, so
 * that first jobs start as later ones do.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { readArtifact, readArtifactHeader } from '../compile/artifact.ts';
import type { Limits } from '../limits.ts';
import { loadArtifact } from '../sandbox/load-artifact.ts';
import type { LoadedKonnector } from '../sandbox/loader.ts';
import { ServeError } from './errors.ts';

export const ARTIFACT_SUFFIX = '.kwasm';
/** How often a job looks at the directory again for a new version of its konnector. */
const RESCAN_MS = 2000;

export interface KonnectorInfo {
  slug: string;
  version: string;
  sha256: string;
  file: string;
  permissions: Record<string, { type: string; verbs?: string[] }>;
}

interface Entry {
  info: KonnectorInfo;
  /** File identity when it was read: a changed file is read (and verified) again. */
  mtimeMs: number;
  size: number;
}

export class KonnectorRegistry {
  private bySlug = new Map<string, Entry>();
  /** Per slug, the compiled konnector of its current artifact: a new version replaces the old one. */
  private loaded = new Map<string, { sha256: string; konnector: Promise<LoadedKonnector> }>();
  private scanning: Promise<void> | undefined;
  private scannedAt = 0;
  /** The background loading of what scans listed, one konnector after another. */
  private preloading: Promise<void> = Promise.resolve();

  constructor(
    readonly dir: string,
    private readonly limits: Pick<Limits, 'memoryBytes'>,
    private readonly options: {
      preload?: boolean;
      /** A konnector the background load could not load: told now, where its jobs would tell it only when they run. */
      onPreloadError?: (slug: string, error: Error) => void;
    } = {},
  ) {}

  /**
   * Reads the directory. Fails, naming the file, on an artifact that does not
   * verify or on two artifacts of the same slug. With `preload`, then loads in
   * the background each konnector listed and not loaded yet.
   */
  scan(): Promise<void> {
    this.scannedAt = Date.now();
    this.scanning ??= this.readDir()
      .then(() => {
        if (this.options.preload) this.preloading = this.preloading.then(() => this.loadListed());
      })
      .finally(() => (this.scanning = undefined));
    return this.scanning;
  }

  /** Settles once the konnectors listed by the scans so far are loaded (or failed to: their jobs say why). */
  whenPreloaded(): Promise<void> {
    return this.preloading;
  }

  private async loadListed(): Promise<void> {
    // One at a time: loading is CPU work the host's jobs share.
    for (const { slug } of this.list()) await this.load(slug)?.catch((error: Error) => this.options.onPreloadError?.(slug, error));
  }

  private async readDir(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      throw new ServeError('invalid', `cannot read the konnectors directory ${this.dir}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
    const previous = new Map([...this.bySlug.values()].map((entry) => [entry.info.file, entry]));
    const next = new Map<string, Entry>();
    for (const name of names.filter((n) => n.endsWith(ARTIFACT_SUFFIX)).sort()) {
      const file = path.join(this.dir, name);
      const { mtimeMs, size } = await stat(file);
      const known = previous.get(file);
      const entry = known && known.mtimeMs === mtimeMs && known.size === size ? known : await this.read(file, mtimeMs, size);
      const other = next.get(entry.info.slug);
      if (other) {
        throw new ServeError('invalid', `${other.info.file} and ${file} are both the konnector "${entry.info.slug}": ` +
          'keep one artifact per slug in the konnectors directory');
      }
      next.set(entry.info.slug, entry);
    }
    this.bySlug = next;
  }

  private async read(file: string, mtimeMs: number, size: number): Promise<Entry> {
    const header = await readArtifactHeader(file).catch((error: Error) => {
      throw new ServeError('invalid', error.message);
    });
    const { manifest } = header;
    return {
      info: { slug: manifest.slug, version: manifest.version, sha256: header.sha256, file, permissions: manifest.permissions },
      mtimeMs,
      size,
    };
  }

  list(): KonnectorInfo[] {
    return [...this.bySlug.values()].map((entry) => entry.info);
  }

  /** Whether the slug is known, looking at the directory again if it is not (an artifact may have been added). */
  async has(slug: string): Promise<boolean> {
    if (!this.bySlug.has(slug)) await this.scan();
    return this.bySlug.has(slug);
  }

  /** The compiled konnector for a slug, or null when no artifact has that slug. */
  async get(slug: string): Promise<LoadedKonnector | null> {
    // A replaced artifact is taken at the next job; a directory left broken (GET /konnectors says why) keeps the last good set.
    if (Date.now() - this.scannedAt > RESCAN_MS) await this.scan().catch(() => {});
    if (!(await this.has(slug))) return null;
    return this.load(slug)!;
  }

  /** The compiled konnector of the slug's current artifact, loaded now if it is not; undefined for an unknown slug. */
  private load(slug: string): Promise<LoadedKonnector> | undefined {
    const entry = this.bySlug.get(slug);
    if (!entry) return undefined;
    const { info } = entry;
    let loaded = this.loaded.get(slug);
    if (loaded?.sha256 !== info.sha256) {
      // Read and verified again: the file may have changed since the scan.
      const konnector = readArtifact(info.file).then((artifact) => {
        if (artifact.header.sha256 !== info.sha256) {
          throw new ServeError('conflict', `${info.file} changed while the host read it; it is read again on the next job`);
        }
        return loadArtifact(artifact, this.limits);
      });
      loaded = { sha256: info.sha256, konnector };
      konnector.catch(() => {
        if (this.loaded.get(slug) === loaded) this.loaded.delete(slug);
      });
      this.loaded.set(slug, loaded);
    }
    return loaded.konnector;
  }
}
