/**
 * Transpiles a konnector's component and caps its core modules' memory, off
 * the host's main thread: jco's bindgen runs synchronously for seconds on the
 * 12 MB engine, and a worker host's main thread must keep renewing its
 * leases meanwhile. Started by runner/sandbox/loader.ts, answers once and exits.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { transpileBytes } from '@bytecodealliance/jco-transpile';
import { capMemory } from '../wasm/index.ts';

export interface TranspileRequest {
  component: Uint8Array;
  maxPages: number;
}

export type TranspileAnswer =
  | { ok: true; imports: string[]; exports: [string, string][]; glue: string; modules: Record<string, Uint8Array> }
  | { ok: false; message: string };

const { component, maxPages } = workerData.request as TranspileRequest;
let answer: TranspileAnswer;
try {
  const transpiled = await transpileBytes(component, { name: 'konnector', instantiation: 'sync', wasiShim: false, noComponentErrorWrapping: true });
  const modules: Record<string, Uint8Array> = {};
  for (const [name, bytes] of Object.entries(transpiled.files)) {
    if (name.endsWith('.wasm')) modules[name] = capMemory(new Uint8Array(bytes), maxPages);
  }
  answer = {
    ok: true,
    imports: transpiled.imports,
    exports: transpiled.exports as [string, string][],
    glue: Buffer.from(transpiled.files['konnector.js']!).toString('utf8'),
    modules,
  };
} catch (error) {
  answer = { ok: false, message: (error as Error).message };
}
parentPort!.postMessage(answer, answer.ok ? Object.values(answer.modules).map((bytes) => bytes.buffer as ArrayBuffer) : []);
