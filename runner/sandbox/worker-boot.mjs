// Worker entry: the sandbox's worker code is TypeScript, loaded through tsx.
import '../quiet-wasi-warning.mjs';
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
