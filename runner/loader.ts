import { Worker } from 'node:worker_threads';
import { componentWit } from '@bytecodealliance/jco-transpile/wasm-tools';
import type { Artifact } from './artifact.ts';
import { UsageError } from './errors.ts';
import { WASM_PAGE_BYTES, type Limits } from './limits.ts';
import { isFuelInstrumented } from './wasm/fuel.ts';
import type { TranspileAnswer, TranspileRequest } from './transpile-worker.ts';

/** Interfaces a konnector component may import (unversioned, as the glue names them). */
export const ALLOWED_IMPORTS = new Set([
  'cozy:konnector/http',
  'cozy:konnector/documents',
  'cozy:konnector/files',
  'cozy:konnector/log',
  'cozy:konnector/clock',
  'wasi:random/random',
]);

export interface LoadedKonnector {
  /** Identifies this code in the workers' caches: the artifact and the memory cap it was compiled with. */
  id: string;
  artifact: Artifact;
  /** ES module source of the component's JS glue, generated here by jco, never read from the artifact. */
  glue: string;
  /** Compiled core modules, their memories capped. */
  modules: Record<string, WebAssembly.Module>;
  /** Whether its core modules count fuel (checked in the component, not taken from the header). */
  metered: boolean;
}

export interface LoadOptions {
  /** Run a component without fuel metering (benchmarks); refused otherwise. */
  allowUnmetered?: boolean;
}

/**
 * Turns a verified artifact into what a worker instantiates: the glue that
 * lifts and lowers WIT values, and the component's core modules compiled with
 * linear memory capped at `limits.memoryBytes`.
 */
export async function loadKonnector(
  artifact: Artifact,
  limits: Pick<Limits, 'memoryBytes'>,
  options: LoadOptions = {},
): Promise<LoadedKonnector> {
  const maxPages = Math.floor(limits.memoryBytes / WASM_PAGE_BYTES);
  const transpiled = await transpileOffThread({ component: artifact.component, maxPages });
  if (!transpiled.ok) throw new UsageError('artifact', `the artifact's component is not a valid WebAssembly component: ${transpiled.message}`);
  const foreign = transpiled.imports.filter((name) => !ALLOWED_IMPORTS.has(name));
  if (foreign.length > 0) {
    throw new UsageError(
      'artifact',
      `the component imports ${foreign.join(', ')}, which the konnector world does not provide (it provides ${[...ALLOWED_IMPORTS].join(', ')})`,
    );
  }
  if (!transpiled.exports.some(([name, kind]) => name === 'run' && kind === 'function')) {
    throw new UsageError('artifact', 'the component does not export the function `run` of the konnector world');
  }
  const metered = isFuelInstrumented(artifact.component);
  if (metered !== (artifact.header.metering !== null)) {
    throw new UsageError('artifact', `the artifact's header says it is ${metered ? 'not ' : ''}fuel-metered but its component is${metered ? '' : ' not'}: it was not made by \`konnector build\``);
  }
  if (!metered && !options.allowUnmetered) {
    throw new UsageError('artifact', 'the component is not fuel-metered (built with --unmetered): its CPU use could not be bounded; rebuild it without --unmetered, or pass --allow-unmetered to run it anyway');
  }
  const modules: Record<string, WebAssembly.Module> = {};
  for (const [name, bytes] of Object.entries(transpiled.modules)) modules[name] = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  return { id: `${artifact.header.sha256}:${maxPages}`, artifact, metered, glue: transpiled.glue, modules };
}

const workerBoot = new URL('./worker-boot.mjs', import.meta.url);
const transpileEntry = new URL('./transpile-worker.ts', import.meta.url).href;

/** Runs runner/transpile-worker.ts once: the main thread stays free while jco works. */
function transpileOffThread(request: TranspileRequest): Promise<TranspileAnswer> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerBoot, { workerData: { entry: transpileEntry, request }, env: {} });
    worker.once('message', (answer: TranspileAnswer) => {
      resolve(answer);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the transpile worker exited (code ${code}) without an answer`)));
  });
}

/** The component's imports and exports as WIT declares them, with versions. */
export async function describeComponent(component: Uint8Array): Promise<{ imports: string[]; exports: string[]; wit: string }> {
  let wit: string;
  try {
    wit = await componentWit(component);
  } catch (error) {
    throw new UsageError('artifact', `the artifact's component cannot be decoded: ${(error as Error).message}`);
  }
  const declared = (keyword: 'import' | 'export') =>
    [...wit.matchAll(new RegExp(`^\\s*${keyword} ([^;{]+?)\\s*(?:;|\\{)`, 'gm'))].map((m) => m[1]!.replace(/:\s*func\b.*$/, ''));
  return { imports: declared('import'), exports: declared('export'), wit };
}
