import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { UsageError } from '../errors.ts';
import { describeIssues } from '../../host-api/schema-issues.ts';
import { ManifestSchema } from './manifest.ts';

/**
 * A konnector artifact is ONE file:
 *
 *   line 1   `cozy-konnector-artifact/1`
 *   line 2   the header, one line of JSON (manifest, build facts, sizes, sha256)
 *   rest     the WebAssembly component, exactly `header.component.bytes` bytes
 *
 * `header.sha256` is the sha256 of line 2 written with `sha256: ""` followed
 * by the component bytes, so any change to the manifest, the build facts or
 * the code is detected when the artifact is read. The runner never executes
 * JavaScript from an artifact: it generates the component's glue itself.
 */
const MAGIC = 'cozy-konnector-artifact/1\n';

export const WORLD = 'cozy:konnector/konnector@0.1.0';

export const ArtifactHeaderSchema = z
  .object({
    format: z.literal(1),
    world: z.string(),
    manifest: ManifestSchema,
    engine: z.object({ name: z.string(), version: z.string() }),
    builtBy: z.object({ name: z.string(), version: z.string() }),
    sourceSha256: z.string().regex(/^[0-9a-f]{64}$/),
    component: z.object({ bytes: z.number().int().positive() }),
    /** How the component's core modules were metered at build time; null: not metered. */
    metering: z.object({ fuel: z.literal(true), instrumenterVersion: z.string() }).nullable(),
    sha256: z.string(),
  })
  .strict();

export type ArtifactHeader = z.infer<typeof ArtifactHeaderSchema>;

export interface Artifact {
  header: ArtifactHeader;
  component: Uint8Array;
  /** Size of the whole file. */
  fileBytes: number;
}

function contentSha256(header: ArtifactHeader, component: Uint8Array): string {
  return createHash('sha256')
    .update(JSON.stringify({ ...header, sha256: '' }))
    .update(component)
    .digest('hex');
}

export function encodeArtifact(
  fields: Omit<ArtifactHeader, 'sha256' | 'format' | 'world'>,
  component: Uint8Array,
): { header: ArtifactHeader; bytes: Buffer } {
  const header: ArtifactHeader = { format: 1, world: WORLD, ...fields, sha256: '' };
  header.sha256 = contentSha256(header, component);
  return { header, bytes: Buffer.concat([Buffer.from(MAGIC + JSON.stringify(header) + '\n'), component]) };
}

/** Writes through a temporary file so a crash never leaves half an artifact. */
export async function writeArtifact(file: string, bytes: Buffer): Promise<void> {
  const partial = `${file}.partial-${process.pid}`;
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(partial, bytes);
  await rename(partial, file);
}

export function decodeArtifact(bytes: Buffer, where: string): Artifact {
  const notArtifact = (why: string) =>
    new UsageError('artifact', `${where} is not a usable konnector artifact: ${why}. Rebuild it with \`konnector build\`.`);
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
  const parsed = ArtifactHeaderSchema.safeParse(json);
  if (!parsed.success) throw notArtifact(`its header is invalid:\n${describeIssues(parsed.error)}`);
  const header = parsed.data;
  if (header.world !== WORLD) {
    throw notArtifact(`it targets the world ${header.world}, this runner runs ${WORLD}`);
  }
  const component = bytes.subarray(headerEnd + 1);
  if (component.length !== header.component.bytes) {
    throw notArtifact(`its component is ${component.length} bytes, the header says ${header.component.bytes} (truncated or padded file)`);
  }
  const actual = contentSha256(header, component);
  if (actual !== header.sha256) {
    throw notArtifact(`its content sha256 is ${actual}, the header records ${header.sha256} (the file was modified or corrupted)`);
  }
  return { header, component, fileBytes: bytes.length };
}

export async function readArtifact(file: string): Promise<Artifact> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new UsageError('artifact', `cannot read artifact ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return decodeArtifact(bytes, file);
}
