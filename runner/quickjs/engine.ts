/**
 * The QuickJS engine module (engine.wasm, built by build-engine.sh and checked
 * against engine.wasm.sha256), prepared the sandbox's way: fuel-metered and
 * memory-capped before it is compiled.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { capMemory, instrumentFuel } from '../wasm/index.ts';

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

/** An engine's bytes (the committed one, or the shared engine of snapshots, snapshot.ts) compiled as asked. */
export function compileEngineBytes(engine: Uint8Array<ArrayBuffer>, options: EngineOptions = {}): Promise<WebAssembly.Module> {
  let bytes = engine;
  if (options.fuel) bytes = instrumentFuel(bytes);
  if (options.maxMemoryPages !== undefined) bytes = capMemory(bytes, options.maxMemoryPages);
  return WebAssembly.compile(bytes);
}
