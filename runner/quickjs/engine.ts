/**
 * The QuickJS engine module (engine.wasm, built by build-engine.sh and checked
 * against engine.wasm.sha256), prepared the sandbox's way: fuel-metered and
 * memory-capped before it is compiled.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.ts';
import { capMemory, instrumentFuel } from '../wasm/index.ts';
import { KONNECTOR_IMPORTS } from './instance.ts';
import { sandboxWasi } from './sandbox-wasi.ts';

export const ENGINE_URL = new URL('./engine.wasm', import.meta.url);
export const ENGINE_SHA256_URL = new URL('./engine.wasm.sha256', import.meta.url);

export class QuickjsEngineError extends Error {
  override name = 'QuickjsEngineError';
}

/** The committed engine's sha256, from engine.wasm.sha256. */
export async function expectedEngineSha256(): Promise<string> {
  const line = await readFile(ENGINE_SHA256_URL, 'utf8');
  const hash = /^([0-9a-f]{64}) {2}engine\.wasm$/m.exec(line)?.[1];
  if (!hash) throw new QuickjsEngineError(`${ENGINE_SHA256_URL.pathname}: no "<sha256>  engine.wasm" line`);
  return hash;
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The engine's bytes, refused when they do not match the committed hash. */
export async function readEngine(): Promise<Uint8Array<ArrayBuffer>> {
  const [file, expected] = await Promise.all([readFile(ENGINE_URL), expectedEngineSha256()]);
  const bytes = new Uint8Array(file);
  const actual = sha256(bytes);
  if (actual !== expected) {
    throw new QuickjsEngineError(`${ENGINE_URL.pathname} has sha256 ${actual}, engine.wasm.sha256 says ${expected}: rebuild it with runner/quickjs/build-engine.sh`);
  }
  return bytes;
}

export interface EngineOptions {
  /** Counts the engine's instructions in its `konnector_fuel` global (see docs/fuel.md). */
  fuel?: boolean;
  /** The largest linear memory, in 64 KiB pages: growing past it fails inside the guest. */
  maxMemoryPages?: number;
}

/** The engine compiled for instantiation, metered and capped as asked. */
export async function compileEngine(options: EngineOptions = {}): Promise<WebAssembly.Module> {
  return compileEngineBytes(await readEngine(), options);
}

const compiled = new Map<string, Promise<WebAssembly.Module>>();

/**
 * An engine's bytes (an artifact's engine, or the shared engine of snapshots, snapshot.ts) compiled once per
 * process for each metering and memory cap: every konnector of one engine build shares it.
 */
export function compiledEngine(engine: Uint8Array<ArrayBuffer>, options: EngineOptions): Promise<WebAssembly.Module> {
  const key = `${sha256(engine)}:${options.fuel ?? false}:${options.maxMemoryPages ?? 'none'}`;
  let module = compiled.get(key);
  if (!module) {
    module = compileEngineBytes(engine, options);
    compiled.set(key, module);
    module.catch(() => compiled.delete(key));
  }
  return module;
}

/** An engine's bytes compiled as asked. */
export function compileEngineBytes(engine: Uint8Array<ArrayBuffer>, options: EngineOptions = {}): Promise<WebAssembly.Module> {
  let bytes = engine;
  if (options.fuel) bytes = instrumentFuel(bytes);
  if (options.maxMemoryPages !== undefined) bytes = capMemory(bytes, options.maxMemoryPages);
  return WebAssembly.compile(bytes);
}

/** An engine module's imports and exports, as `module.name (kind)` and `name (kind)`. */
export function engineInterface(module: WebAssembly.Module): { imports: string[]; exports: string[] } {
  return {
    imports: WebAssembly.Module.imports(module).map(({ module: from, name, kind }) => `${from}.${name} (${kind})`),
    exports: WebAssembly.Module.exports(module).map(({ name, kind }) => `${name} (${kind})`),
  };
}

/**
 * Refuses an engine (an artifact's, from its engine store) that imports anything the sandbox does not answer: the
 * `konnector` functions (instance.ts) and the WASI of sandbox-wasi.ts, which has no file, environment or socket.
 */
export function checkEngineImports(module: WebAssembly.Module, engineFile: string): void {
  const wasi = Object.keys(sandboxWasi(() => {}).imports);
  const allowed = new Set([...KONNECTOR_IMPORTS.map((name) => `konnector.${name} (function)`), ...wasi.map((name) => `wasi_snapshot_preview1.${name} (function)`)]);
  const foreign = engineInterface(module).imports.filter((entry) => !allowed.has(entry));
  if (foreign.length > 0) {
    throw new UsageError('artifact', `the QuickJS engine ${engineFile} imports ${foreign.join(', ')}, which the sandbox does not provide (it provides the konnector functions ${KONNECTOR_IMPORTS.join(', ')} and WASI preview 1 without files, environment or sockets)`);
  }
}
