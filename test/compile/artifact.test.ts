import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactComponent, type ComponentArtifact, decodeReference, encodeArtifact, readArtifact, writeArtifact } from '../../runner/compile/artifact.ts';
import { BuildCache } from '../../runner/compile/cache.ts';
import { buildOnce, fixtureDir, readComponentArtifact } from '../support/artifacts.ts';

/** The artifact file format on a real build; the CLI's view of it is in test/cli/main.test.ts. */

let scratch: string;
let built: ComponentArtifact;
const noCache = new BuildCache(null);

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'artifact-test-'));
  built = await readComponentArtifact(await buildOnce(fixtureDir('sandbox-probe')));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** The reference snapshot the build stored `artifact` against, read back from beside it. */
const referenceOf = (artifact: ComponentArtifact) => async () => decodeReference(await readFile(path.join(path.dirname(artifact.engineFile), `${artifact.header.reference!.sha256}.kwasm`)), 'reference');

const fieldsOf = ({ header }: ComponentArtifact) => ({
  manifest: header.manifest,
  engine: { name: header.engine.name, version: header.engine.version },
  builtBy: header.builtBy,
  sourceSha256: header.sourceSha256,
  metering: header.metering,
});

describe('artifact format 2', () => {
  it('encodes the same component to the same artifact and engine bytes, and reads back the component byte for byte', async () => {
    const once = await encodeArtifact(fieldsOf(built), artifactComponent(built), referenceOf(built));
    const again = await encodeArtifact(fieldsOf(built), artifactComponent(built), referenceOf(built));
    expect(Buffer.compare(once.bytes, again.bytes)).toBe(0);
    expect(Buffer.compare(once.engine, again.engine)).toBe(0);
    expect(once.header).toEqual(built.header);

    const file = path.join(scratch, 'round-trip', 'probe.kwasm');
    await writeArtifact(file, once, noCache);
    const read = await readComponentArtifact(file);
    expect(Buffer.compare(artifactComponent(read), artifactComponent(built))).toBe(0);
    expect(read.header).toEqual(once.header);
    expect(read.engineFile).toBe(path.join(scratch, 'round-trip', 'engines', `${once.header.engine.sha256}.wasm`));
    expect(read.fileBytes).toBe(once.bytes.length);
  });

  it('covers the engine through its sha256: a header naming another engine does not verify', async () => {
    const { header, bytes } = await encodeArtifact(fieldsOf(built), artifactComponent(built), referenceOf(built));
    const file = path.join(scratch, 'other-engine.kwasm');
    const forged = Buffer.from(bytes.toString('latin1').replace(header.engine.sha256, '0'.repeat(64)), 'latin1');
    await writeFile(file, forged);
    await expect(readArtifact(file)).rejects.toThrow(/its content sha256 is [0-9a-f]{64}, the header records/);
  });

  it('stores the konnector\'s own part compressed, far below the whole component', async () => {
    const { header, bytes } = await encodeArtifact(fieldsOf(built), artifactComponent(built), referenceOf(built));
    expect(header.snapshots).toHaveLength(1);
    expect(header.own.bytes).toBeLessThan(header.snapshots[0]!.bytes / 2);
    expect(bytes.length).toBeLessThan(header.component.bytes / 4);
    expect(header.engine.bytes + header.snapshots[0]!.bytes).toBeGreaterThan(header.component.bytes * 0.9);
    expect(Buffer.compare(await readFile(built.engineFile), (await encodeArtifact(fieldsOf(built), artifactComponent(built), referenceOf(built))).engine)).toBe(0);
  });

  it('stores the own part against the reference snapshot, smaller than whole, and gives back the same component', async () => {
    expect(built.header.reference).not.toBeNull();
    const whole = await encodeArtifact(fieldsOf(built), artifactComponent(built));
    const against = await encodeArtifact(fieldsOf(built), artifactComponent(built), referenceOf(built));
    expect(whole.header.reference).toBeNull();
    expect(against.bytes.length).toBeLessThan(whole.bytes.length * 0.8);

    const file = path.join(scratch, 'whole', 'probe.kwasm');
    await writeArtifact(file, whole, noCache);
    expect(Buffer.compare(artifactComponent(await readComponentArtifact(file)), artifactComponent(built))).toBe(0);
  });
});
