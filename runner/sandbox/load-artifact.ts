/**
 * The one place an artifact's engine is chosen, from its header (runner/compile/artifact.ts): every command and
 * the worker host load and describe artifacts through here, whichever engine built them.
 */
import { type Artifact, artifactComponent, isQuickjsArtifact } from '../compile/artifact.ts';
import type { Limits } from '../limits.ts';
import { FUEL_INSTRUMENTER_VERSION } from '../wasm/index.ts';
import { describeComponent, loadKonnector, type LoadedKonnector, type LoadOptions } from './loader.ts';

/** A verified artifact made ready for runJob (runner/sandbox/job.ts) on its engine, its memory capped at `limits.memoryBytes`. */
export async function loadArtifact(artifact: Artifact, limits: Pick<Limits, 'memoryBytes'>, options: LoadOptions = {}): Promise<LoadedKonnector> {
  if (isQuickjsArtifact(artifact)) return (await import('../quickjs/job.ts')).loadQuickjsArtifact(artifact, limits, options);
  return loadKonnector(artifact, limits, options);
}

/** What `konnector inspect` shows of an artifact beyond its header's common facts. */
export interface ArtifactDescription {
  /** Every import of the code that runs: the component's WIT imports, or the QuickJS engine module's. */
  imports: string[];
  exports: string[];
  /** Facts of its engine's kind, for --json. */
  facts: Record<string, unknown>;
  /** The same, as inspect's text lines. */
  lines: string[];
}

export async function describeArtifact(artifact: Artifact): Promise<ArtifactDescription> {
  if (isQuickjsArtifact(artifact)) {
    const { compiledEngine, engineInterface } = await import('../quickjs/engine.ts');
    const metering = { fuel: true, at: 'load', instrumenterVersion: FUEL_INSTRUMENTER_VERSION } as const;
    return {
      ...engineInterface(await compiledEngine(artifact.engine, { fuel: false })),
      facts: { bytecodeBytes: artifact.header.bytecode.bytes, metering },
      lines: [
        `size      ${artifact.fileBytes} bytes (its QuickJS bytecode, uncompressed: ${artifact.header.bytecode.bytes} bytes)`,
        `metering  fuel, added to the engine by the host when it loads it (instrumenter version ${metering.instrumenterVersion})`,
      ],
    };
  }
  const { header } = artifact;
  const { imports, exports } = await describeComponent(artifactComponent(artifact));
  const reference = header.reference && { ...header.reference, file: artifact.referenceFile };
  return {
    imports,
    exports,
    facts: { componentBytes: header.component.bytes, reference, metering: header.metering },
    lines: [
      `size      ${artifact.fileBytes} bytes (the whole component with its engine: ${header.component.bytes} bytes)`,
      `reference ${reference ? `snapshot sha256 ${reference.sha256}, read from ${reference.file} (the own part is stored as its difference from it)` : 'none: the own part is stored whole'}`,
      `metering  ${header.metering ? `fuel (instrumenter version ${header.metering.instrumenterVersion})` : 'NONE: built with --unmetered, run refuses it without --allow-unmetered'}`,
    ],
  };
}
