import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import { z } from 'zod';
import { UsageError } from '../errors.ts';
import { describeIssues } from '../../host-api/schema-issues.ts';
import { deltaOwnSections, joinComponent, separateComponent, undoDeltaOwnSections } from '../wasm/index.ts';
import { BuildCache } from './cache.ts';
import { ManifestSchema } from './manifest.ts';

/**
 * A konnector artifact is ONE file holding what is the konnector's own:
 *
 *   line 1   `cozy-konnector-artifact/2`
 *   line 2   the header, one line of JSON (manifest, build facts, the engine's name, version and sha256, sizes, sha256)
 *   rest     the own part, brotli-compressed. Its content depends on the engine the header names (`engine.name`):
 *            componentize-js: the snapshot sections (memory, globals, data, data count) and the exports of each
 *            pre-initialized core module, in `header.snapshots` order;
 *            quickjs: the konnector's QuickJS bytecode (runner/quickjs/artifact.ts)
 *
 * The rest, the engine (componentize-js: the component without its snapshots,
 * runner/wasm/snapshot.ts, 13 MB; quickjs: runner/quickjs/engine.wasm; the same
 * for every konnector of one toolchain), is stored once in an engine
 * store beside the artifacts: `engines/<sha256 of its bytes>.wasm`, checked
 * against that hash when read. A component's own part is stored as its difference from
 * the reference snapshot the header names (runner/wasm/snapshot-delta.ts,
 * ./reference.ts): an artifact of a konnector holding only the SDK, built
 * with the same engine, stored once beside it as `engines/<its sha256>.kwasm`.
 * `header.sha256` is the sha256 of line 2 written with `sha256: ""` followed
 * by the own part, so it covers the engine and the reference through their
 * hashes: any change to the manifest, the build facts or the code is detected
 * when the artifact is read. The runner never executes JavaScript from an
 * artifact: it generates the component's glue itself.
 */
const MAGIC = 'cozy-konnector-artifact/2\n';
/** The format whose file held the whole component: recognized only to say that it must be rebuilt. */
const MAGIC_V1 = 'cozy-konnector-artifact/1\n';

export const WORLD = 'cozy:konnector/konnector@0.1.0';

/**
 * The engine store's directory beside the artifacts. An engine is also
 * looked for in $KONNECTOR_ENGINES_DIR, then in the build cache, where every
 * build keeps the engine it wrote: an artifact copied alone on the machine
 * that built it still runs.
 */
export const ENGINES_DIR = 'engines';

const engineCacheKey = (sha256: string) => `engine-${sha256}`;
export const referenceCacheKey = (sha256: string) => `reference-${sha256}`;

const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/);

/** What every header holds, whatever its engine. */
const commonHeader = {
  format: z.literal(2),
  world: z.string(),
  manifest: ManifestSchema,
  builtBy: z.object({ name: z.string(), version: z.string() }),
  sourceSha256: Sha256Schema,
  /** The own part as stored after the header. */
  own: z.object({ compression: z.literal('br'), bytes: z.number().int().nonnegative() }),
  sha256: z.string(),
};

const engineOf = <Name extends string>(name: Name) =>
  z.object({ name: z.literal(name), version: z.string(), sha256: Sha256Schema, bytes: z.number().int().positive() });

// Keys in the order the encoders write them: the sha256 is taken over the header as decoding gives it back.
export const ComponentHeaderSchema = z
  .object({
    format: commonHeader.format,
    world: commonHeader.world,
    manifest: commonHeader.manifest,
    engine: engineOf('componentize-js'),
    /** The reference snapshot the own part is a delta against: that artifact's sha256; null: stored whole. */
    reference: z.object({ sha256: Sha256Schema }).nullable(),
    builtBy: commonHeader.builtBy,
    sourceSha256: commonHeader.sourceSha256,
    /** The whole component the engine and the own part make: its size, checked when they are joined. */
    component: z.object({ bytes: z.number().int().positive() }),
    /** Each pre-initialized core module's own sections: its index in the component, their size uncompressed. */
    snapshots: z.array(z.object({ module: z.number().int().nonnegative(), bytes: z.number().int().positive() })),
    own: commonHeader.own,
    /** How the component's core modules were metered at build time; null: not metered. */
    metering: z.object({ fuel: z.literal(true), instrumenterVersion: z.string() }).nullable(),
    sha256: commonHeader.sha256,
  })
  .strict();

/** A QuickJS konnector: its bytecode is the own part; the host meters the engine when it loads it. */
export const QuickjsHeaderSchema = z
  .object({
    format: commonHeader.format,
    world: commonHeader.world,
    manifest: commonHeader.manifest,
    engine: engineOf('quickjs'),
    builtBy: commonHeader.builtBy,
    sourceSha256: commonHeader.sourceSha256,
    /** The bytecode's size uncompressed. */
    bytecode: z.object({ bytes: z.number().int().positive() }),
    own: commonHeader.own,
    sha256: commonHeader.sha256,
  })
  .strict();

/** Which engine a header is for, read first: the header is then checked against that engine's schema alone. */
const EngineNameSchema = z.object({ engine: z.object({ name: z.enum(['componentize-js', 'quickjs']) }) });

function parseHeader(json: unknown) {
  const named = EngineNameSchema.safeParse(json);
  if (!named.success) return named;
  return named.data.engine.name === 'quickjs' ? QuickjsHeaderSchema.safeParse(json) : ComponentHeaderSchema.safeParse(json);
}

export type ComponentArtifactHeader = z.infer<typeof ComponentHeaderSchema>;
export type QuickjsArtifactHeader = z.infer<typeof QuickjsHeaderSchema>;
export type ArtifactHeader = ComponentArtifactHeader | QuickjsArtifactHeader;

export interface ComponentArtifact {
  header: ComponentArtifactHeader;
  /** The engine as stored (checked against `header.engine.sha256`): the component with each snapshot taken out. */
  engine: Uint8Array;
  /**
   * Each pre-initialized core module's own sections (see separateComponent), by its index in the component,
   * as stored: a delta against `reference`'s when there is one (runner/wasm/snapshot-delta.ts). The loader
   * undoes it as it reads the snapshot; artifactComponent undoes it on a copy.
   */
  own: ReadonlyMap<number, Uint8Array>;
  /** The reference snapshot's own sections, by core module index (one for each of `own`); null if the own part is stored whole. */
  reference: ReadonlyMap<number, Uint8Array> | null;
  /** Size of the artifact file (the engine not counted). */
  fileBytes: number;
  /** The engine store file the engine was read from. */
  engineFile: string;
  /** The file the reference snapshot was read from; null if the own part is stored whole. */
  referenceFile: string | null;
}

export interface QuickjsArtifact {
  header: QuickjsArtifactHeader;
  /** The QuickJS engine the bytecode was written by, checked against `header.engine.sha256`. */
  engine: Uint8Array<ArrayBuffer>;
  bytecode: Uint8Array;
  fileBytes: number;
  engineFile: string;
}

export type Artifact = ComponentArtifact | QuickjsArtifact;

export const isQuickjsHeader = (header: ArtifactHeader): header is QuickjsArtifactHeader => header.engine.name === 'quickjs';
export const isQuickjsArtifact = (artifact: Artifact): artifact is QuickjsArtifact => isQuickjsHeader(artifact.header);

/** An artifact ready to be written: its file's bytes and the engine and reference it names. */
export interface EncodedArtifact {
  header: ArtifactHeader;
  bytes: Buffer;
  engine: Uint8Array;
  reference: ReferenceSnapshot | null;
}

/** A reference snapshot: an artifact whose own part others are stored against, read and decompressed. */
export interface ReferenceSnapshot {
  /** Its artifact file, written beside the artifacts stored against it. */
  file: Buffer;
  header: ComponentArtifactHeader;
  /** Its own sections by core module index, as readArtifact gives them. */
  own: ReadonlyMap<number, Uint8Array>;
}

/**
 * Brotli at quality 5 with a 16 MB window: within 1% of quality 7's size in
 * 60% of its time (sandbox-probe's snapshot sections: 3.12 MB raw, 1.14 MB at
 * 5, 1.13 MB at 7, 1.28 MB at 4 or with gzip -9); example-bills' take about
 * 3.2 MB at 7, 2.7 MB at 11 for 30 s (docs/benchmarks.md). The same input and
 * zlib give the same bytes.
 */
const BROTLI = { params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_LGWIN]: 24 } };

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

function contentSha256(header: ArtifactHeader, own: Uint8Array): string {
  return createHash('sha256')
    .update(JSON.stringify({ ...header, sha256: '' }))
    .update(own)
    .digest('hex');
}

/** What a build says of an artifact; encodeArtifact adds what it finds in the component. */
export type ArtifactFields = Omit<ComponentArtifactHeader, 'sha256' | 'format' | 'world' | 'engine' | 'reference' | 'component' | 'snapshots' | 'own'> & {
  engine: Pick<ComponentArtifactHeader['engine'], 'name' | 'version'>;
};

export async function encodeArtifact(
  fields: ArtifactFields,
  component: Uint8Array,
  /** The reference snapshot to store the own part against, given the engine's sha256 (it must have that engine); null: stored whole. */
  referenceFor: (engineSha256: string) => Promise<ReferenceSnapshot | null> = async () => null,
): Promise<EncodedArtifact & { header: ComponentArtifactHeader }> {
  const { engine, own } = separateComponent(component);
  // What is written must give back exactly what was built.
  if (Buffer.compare(joinComponent(engine, own), component) !== 0) throw new Error('the component does not split into engine and snapshots that give it back');
  const engineSha256 = sha256(engine);
  const reference = await referenceFor(engineSha256);
  if (reference && reference.header.engine.sha256 !== engineSha256) throw new Error(`the reference snapshot was built with engine ${reference.header.engine.sha256}, not ${engineSha256}`);
  const stored = [...own].map(([module, bytes]): [number, Uint8Array] => {
    const base = reference?.own.get(module);
    return [module, base ? deltaOwnSections(bytes, base) : bytes];
  });
  const snapshots = stored.map(([module, bytes]) => ({ module, bytes: bytes.length }));
  const ownPart = compressOwn(Buffer.concat(stored.map(([, bytes]) => bytes)));
  // In the schema's order: the sha256 is taken over the header as decoding gives it back.
  const header: ComponentArtifactHeader = {
    format: 2,
    world: WORLD,
    manifest: fields.manifest,
    engine: { ...fields.engine, sha256: engineSha256, bytes: engine.length },
    reference: reference ? { sha256: reference.header.sha256 } : null,
    builtBy: fields.builtBy,
    sourceSha256: fields.sourceSha256,
    component: { bytes: component.length },
    snapshots,
    own: { compression: 'br', bytes: ownPart.length },
    metering: fields.metering,
    sha256: '',
  };
  return sealArtifact(header, ownPart, engine, reference);
}

/** The konnector's own part as stored: compressed, the same bytes for the same input. */
export const compressOwn = (bytes: Uint8Array): Buffer => brotliCompressSync(bytes, BROTLI);

/** The artifact file of a header (its keys in its schema's order) and a compressed own part: its sha256 computed and written. */
export function sealArtifact<Header extends ArtifactHeader>(
  header: Header,
  ownPart: Buffer,
  engine: Uint8Array,
  reference: ReferenceSnapshot | null = null,
): EncodedArtifact & { header: Header } {
  const sealed: Header = { ...header, sha256: '' };
  sealed.sha256 = contentSha256(sealed, ownPart);
  return { header: sealed, bytes: Buffer.concat([Buffer.from(MAGIC + JSON.stringify(sealed) + '\n'), ownPart]), engine, reference };
}

/**
 * Writes the artifact, and its engine to the engine store beside it and to
 * the build cache. Files go through a temporary
 * one so a crash never leaves half of either; builds that share an engine
 * write the same bytes.
 */
export async function writeArtifact(file: string, artifact: EncodedArtifact, cache: BuildCache = new BuildCache()): Promise<void> {
  const { sha256: engineSha256 } = artifact.header.engine;
  const engineFile = path.join(path.dirname(file), ENGINES_DIR, `${engineSha256}.wasm`);
  // Both written again even when present: cheaper than reading 13 MB to check them, and a damaged copy is mended.
  await writeWhole(engineFile, artifact.engine);
  cache.put(engineCacheKey(engineSha256), artifact.engine);
  if (artifact.reference) {
    const { sha256: referenceSha256 } = artifact.reference.header;
    await writeWhole(path.join(path.dirname(file), ENGINES_DIR, `${referenceSha256}.kwasm`), artifact.reference.file);
    cache.put(referenceCacheKey(referenceSha256), artifact.reference.file);
  }
  await writeWhole(file, artifact.bytes);
}

async function writeWhole(file: string, bytes: Uint8Array): Promise<void> {
  const partial = `${file}.partial-${process.pid}`;
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(partial, bytes);
  await rename(partial, file);
}

/** The header and own part of an artifact file, checked against its sha256. */
function decodeArtifactFile(bytes: Buffer, where: string): { header: ArtifactHeader; own: Buffer } {
  const notArtifact = (why: string) =>
    new UsageError('artifact', `${where} is not a usable konnector artifact: ${why}. Rebuild it with \`konnector build\`.`);
  if (bytes.subarray(0, MAGIC_V1.length).toString('latin1') === MAGIC_V1) {
    throw notArtifact('it is in format 1, which held the whole engine in each artifact; this runner reads format 2 (the engine in a shared store)');
  }
  if (bytes.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) {
    throw notArtifact('it does not start with the artifact signature');
  }
  const headerEnd = bytes.indexOf(0x0a, MAGIC.length);
  if (headerEnd < 0) throw notArtifact('its header is truncated');
  let json: unknown;
  try {
    json = JSON.parse(bytes.subarray(MAGIC.length, headerEnd).toString('utf8'));
  } catch {
    throw notArtifact('its header is not valid JSON (the file is corrupt)');
  }
  const parsed = parseHeader(json);
  if (!parsed.success) throw notArtifact(`its header is invalid:\n${describeIssues(parsed.error)}`);
  const header = parsed.data;
  if (header.world !== WORLD) {
    throw notArtifact(`it targets the world ${header.world}, this runner runs ${WORLD}`);
  }
  const own = bytes.subarray(headerEnd + 1);
  if (own.length !== header.own.bytes) {
    throw notArtifact(`its own part is ${own.length} bytes, the header says ${header.own.bytes} (truncated or padded file)`);
  }
  const actual = contentSha256(header, own);
  if (actual !== header.sha256) {
    throw notArtifact(`its content sha256 is ${actual}, the header records ${header.sha256} (the file was modified or corrupted)`);
  }
  return { header, own };
}

/** Where an artifact's engine is looked for, in order: the engine store beside it, then $KONNECTOR_ENGINES_DIR. */
function engineDirs(artifactFile: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = [path.resolve(path.dirname(artifactFile), ENGINES_DIR)];
  if (env.KONNECTOR_ENGINES_DIR) dirs.push(path.resolve(env.KONNECTOR_ENGINES_DIR));
  return dirs;
}

/** A file an artifact names by hash and shares with others: its engine, its reference snapshot. */
interface SharedFile<T> {
  /** What it is, for messages: "engine componentize-js 0.18.1", "reference snapshot". */
  what: string;
  sha256: string;
  /** Its name in an engine store: `<sha256>.wasm` or `<sha256>.kwasm`. */
  name: string;
  cacheKey: string;
  /** Its content from its bytes; throws why they are not what the artifact names. */
  check: (bytes: Buffer) => T;
}

/**
 * Shared files read and checked in this process, by name (their hash): a host
 * with many konnectors of one toolchain reads and checks the 13 MB engine and
 * the reference once, not per konnector. What runs is the checked bytes,
 * whatever becomes of the file.
 */
const checkedShared = new Map<string, { value: unknown; file: string }>();

/** A shared file the artifact names, from the first store that has it, checked. */
async function readShared<T>(shared: SharedFile<T>, artifactFile: string): Promise<{ value: T; file: string }> {
  const checked = checkedShared.get(shared.name) as { value: T; file: string } | undefined;
  if (checked) {
    // Named by where this artifact finds it now, as a first read would have.
    const file = engineDirs(artifactFile).map((dir) => path.join(dir, shared.name)).find((candidate) => existsSync(candidate));
    return { value: checked.value, file: file ?? checked.file };
  }
  const found = await findShared(shared, artifactFile);
  checkedShared.set(shared.name, found);
  return found;
}

async function findShared<T>(shared: SharedFile<T>, artifactFile: string): Promise<{ value: T; file: string }> {
  const dirs = engineDirs(artifactFile);
  const cache = new BuildCache();
  for (const dir of dirs) {
    const file = path.join(dir, shared.name);
    const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw new UsageError('artifact', `${artifactFile}: cannot read the ${shared.what} in ${file}: ${error.code ?? error.message}`);
    });
    if (!bytes) continue;
    try {
      return { value: shared.check(bytes), file };
    } catch (error) {
      throw new UsageError('artifact', `${artifactFile}: the ${shared.what} in ${file} is not the one it names: ${(error as Error).message}; copy it again from where the artifact was built, or rebuild`);
    }
  }
  // The cache checks its entries' own sha256; a damaged or different one reads as absent.
  const cached = cache.get(shared.cacheKey);
  if (cached) {
    try {
      return { value: shared.check(cached), file: path.join(cache.dir!, shared.cacheKey) };
    } catch {
      // Absent, then.
    }
  }
  const places = [...dirs, ...(cache.dir ? [`the build cache ${cache.dir}`] : [])];
  throw new UsageError(
    'artifact',
    `${artifactFile} needs the ${shared.what} with sha256 ${shared.sha256}, which is in none of ${places.join(', ')}: copy ${ENGINES_DIR}/${shared.name} from where it was built beside it, or set KONNECTOR_ENGINES_DIR to a directory that holds it`,
  );
}

function engineFile(header: ArtifactHeader): SharedFile<Buffer> {
  const { name, version, sha256: expected } = header.engine;
  return {
    what: `engine ${name} ${version}`,
    sha256: expected,
    name: `${expected}.wasm`,
    cacheKey: engineCacheKey(expected),
    check: (bytes) => {
      const actual = sha256(bytes);
      if (actual !== expected) throw new Error(`it has sha256 ${actual}, not ${expected} (the file was modified or corrupted)`);
      return bytes;
    },
  };
}

function referenceFile(header: ComponentArtifactHeader, expected: string): SharedFile<ReferenceSnapshot> {
  return {
    what: 'reference snapshot',
    sha256: expected,
    name: `${expected}.kwasm`,
    cacheKey: referenceCacheKey(expected),
    check: (bytes) => {
      const reference = decodeReference(bytes, 'it');
      if (reference.header.sha256 !== expected) throw new Error(`its sha256 is ${reference.header.sha256}, not ${expected}`);
      if (reference.header.engine.sha256 !== header.engine.sha256) throw new Error(`it was built for the engine ${reference.header.engine.sha256}, not ${header.engine.sha256}`);
      return reference;
    },
  };
}

/** An artifact file read as a reference snapshot: one stored whole (a reference has no reference of its own). */
export function decodeReference(file: Buffer, where: string): ReferenceSnapshot {
  const { header, own } = decodeArtifactFile(file, where);
  if (isQuickjsHeader(header)) throw new UsageError('artifact', `${where} is a QuickJS artifact, so it cannot be a component's reference snapshot`);
  if (header.reference) throw new UsageError('artifact', `${where} is stored against another reference snapshot, so it cannot be one`);
  return { file, header, own: ownSections(header, own, (why) => new UsageError('artifact', `${where}: ${why}`)) };
}

/** The own part decompressed and cut into each module's sections, as stored (a delta if the header names a reference). */
function ownSections(header: ComponentArtifactHeader, own: Buffer, broken: (why: string) => Error): Map<number, Uint8Array> {
  const snapshots = decompressOwn(own, header.snapshots.reduce((n, s) => n + s.bytes, 0), broken);
  const parts = new Map<number, Uint8Array>();
  let at = 0;
  for (const { module, bytes: length } of header.snapshots) {
    parts.set(module, snapshots.subarray(at, (at += length)));
  }
  return parts;
}

/** The own part uncompressed, refused unless it is the size its header says. */
function decompressOwn(own: Buffer, bytes: number, broken: (why: string) => Error): Buffer {
  let raw: Buffer;
  try {
    // One output chunk of the size expected (the default 16 KiB chunks are joined by a copy of the whole).
    raw = brotliDecompressSync(own, { maxOutputLength: Math.max(bytes, 1), chunkSize: Math.max(bytes + 1, constants.Z_MIN_CHUNK) });
  } catch (error) {
    throw broken(`its own part does not decompress (${(error as Error).message})`);
  }
  if (raw.length !== bytes) throw broken(`its own part is ${raw.length} bytes uncompressed, the header says ${bytes}`);
  return raw;
}

async function readArtifactFile(file: string): Promise<{ header: ArtifactHeader; own: Buffer; fileBytes: number }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new UsageError('artifact', `cannot read artifact ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return { ...decodeArtifactFile(bytes, file), fileBytes: bytes.length };
}

/** The header of an artifact file checked against its sha256, without its engine: for listing what a directory holds. */
export async function readArtifactHeader(file: string): Promise<ArtifactHeader> {
  return (await readArtifactFile(file)).header;
}

/**
 * An artifact as stored: its engine and own part, each checked against its
 * hash. The runner loads it from those parts (runner/sandbox/load-artifact.ts);
 * artifactComponent joins a component's when the whole component is wanted.
 */
export async function readArtifact(file: string): Promise<Artifact> {
  const { header, own, fileBytes } = await readArtifactFile(file);
  const { value: engine, file: engineStoreFile } = await readShared(engineFile(header), file);
  const broken = brokenArtifact(file, engineStoreFile);
  if (isQuickjsHeader(header)) {
    return { header, engine: new Uint8Array(engine), bytecode: decompressOwn(own, header.bytecode.bytes, broken), fileBytes, engineFile: engineStoreFile };
  }
  const parts = ownSections(header, own, broken);
  if (!header.reference) return { header, engine, own: parts, reference: null, fileBytes, engineFile: engineStoreFile, referenceFile: null };
  const { value: reference, file: referenceStoreFile } = await readShared(referenceFile(header, header.reference.sha256), file);
  for (const module of parts.keys()) if (!reference.own.has(module)) throw broken(`its reference snapshot has no core module ${module}`);
  return { header, engine, own: parts, reference: reference.own, fileBytes, engineFile: engineStoreFile, referenceFile: referenceStoreFile };
}

const brokenArtifact = (file: string, engineFile: string) => (why: string) =>
  new UsageError('artifact', `${file} and its engine ${engineFile} do not make a konnector: ${why}. Rebuild it with \`konnector build\`.`);

/** The whole component the artifact's engine and own part make, as the build made it (for inspect and tools). */
export function artifactComponent(artifact: ComponentArtifact, file = 'the artifact'): Uint8Array {
  const broken = brokenArtifact(file, artifact.engineFile);
  let component: Uint8Array;
  try {
    component = joinComponent(artifact.engine, ownSectionsUndone(artifact));
  } catch (error) {
    throw broken((error as Error).message);
  }
  if (component.length !== artifact.header.component.bytes) throw broken(`they join to ${component.length} bytes, the header says ${artifact.header.component.bytes}`);
  return component;
}

/** The artifact's own sections as the build made them: deltas undone on copies (undoing works in place). */
function ownSectionsUndone({ own, reference }: ComponentArtifact): ReadonlyMap<number, Uint8Array> {
  if (!reference) return own;
  return new Map([...own].map(([module, delta]) => [module, undoDeltaOwnSections(new Uint8Array(delta), reference.get(module)!)]));
}
