/**
 * The build cache: results that depend on the toolchain alone, never on a
 * konnector's sources, kept on disk so that later builds skip that work.
 * An entry is named by the sha256 of everything it was made from, and starts
 * with the sha256 of its own bytes: a damaged or truncated entry is made
 * again, never used. Builds give the same bytes with or without it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const DIGEST_BYTES = 32;

/**
 * Where the cache lives: $KONNECTOR_CACHE_DIR, else $XDG_CACHE_HOME/konnector
 * or ~/.cache/konnector. KONNECTOR_CACHE_DIR=off turns it off.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const chosen = env.KONNECTOR_CACHE_DIR;
  if (chosen === 'off') return null;
  if (chosen) return path.resolve(chosen);
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'konnector');
}

/** Names an entry after what it is made from: strings and bytes, in order. */
export function cacheKey(kind: string, ...parts: (string | Uint8Array)[]): string {
  const hash = createHash('sha256').update(kind);
  for (const part of parts) {
    // Each part's length goes first, so that ["ab", "c"] and ["a", "bc"] differ.
    const bytes = typeof part === 'string' ? Buffer.from(part) : part;
    hash.update(`\0${bytes.length}\0`).update(bytes);
  }
  return `${kind}-${hash.digest('hex')}`;
}

export class BuildCache {
  /** A cache that keeps nothing (dir null), or entries under dir. */
  constructor(readonly dir: string | null = defaultCacheDir()) {}

  get(key: string): Buffer | undefined {
    if (!this.dir) return undefined;
    let stored: Buffer;
    try {
      stored = readFileSync(path.join(this.dir, key));
    } catch {
      return undefined;
    }
    const bytes = stored.subarray(DIGEST_BYTES);
    if (stored.length < DIGEST_BYTES || !createHash('sha256').update(bytes).digest().equals(stored.subarray(0, DIGEST_BYTES))) {
      rmSync(path.join(this.dir, key), { force: true });
      return undefined;
    }
    return bytes;
  }

  /** Stores an entry; a cache that cannot be written only costs time, so failures are ignored. */
  put(key: string, bytes: Uint8Array): void {
    if (!this.dir) return;
    const temporary = path.join(this.dir, `.${key}.${randomBytes(6).toString('hex')}`);
    try {
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(temporary, Buffer.concat([createHash('sha256').update(bytes).digest(), bytes]));
      // Concurrent builds may write the same entry: the rename makes each write whole.
      renameSync(temporary, path.join(this.dir, key));
    } catch {
      rmSync(temporary, { force: true });
    }
  }

  /** get, else make and put. */
  getOrMake(key: string, make: () => Uint8Array): Uint8Array {
    const cached = this.get(key);
    if (cached) return cached;
    const made = make();
    this.put(key, made);
    return made;
  }
}
