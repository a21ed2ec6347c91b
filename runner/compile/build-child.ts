/**
 * Builds one konnector in a child process for runner/compile/parallel.ts. A
 * process, not a worker thread: a build pins the clock and random generator
 * of its process (componentize.ts) and componentize-js hands its own stdout
 * to the pre-initializer it spawns, which a worker thread's stdout cannot be.
 * Gets its request as the first IPC message; answers with progress, then a
 * result or an error, and exits.
 */
// First: a QuickJS build loads node:wasi, whose ExperimentalWarning each child would print.
import '../quiet-wasi-warning.mjs';
import { UsageError } from '../errors.ts';
import type { EngineName } from '../sandbox/pool.ts';
import { buildKonnector, type BuildResult } from './index.ts';

export interface BuildRequest {
  dir: string;
  out: string;
  unmetered: boolean;
  engine: EngineName;
}

export type BuildMessage =
  | { progress: string }
  | { result: BuildResult }
  | { error: { usage: boolean; kind: string; message: string } };

const send = (message: BuildMessage) => new Promise<void>((resolve) => process.send!(message, () => resolve()));

process.once('message', async ({ dir, out, unmetered, engine }: BuildRequest) => {
  try {
    const result = await buildKonnector(dir, out, { unmetered, engine, progress: (step) => void send({ progress: step }) });
    await send({ result });
  } catch (error) {
    const usage = error instanceof UsageError;
    await send({ error: { usage, kind: usage ? error.kind : 'internal', message: (error as Error).message } });
  }
  process.disconnect();
});
