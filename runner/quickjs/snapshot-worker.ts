/**
 * Loads a konnector's bytecode into its engine (snapshot.ts snapshotKonnector) off the host's main thread:
 * the pre-initialization runs synchronously for a second or more. Started by snapshot.ts snapshotOffThread,
 * answers once.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { UsageError } from '../errors.ts';
import { snapshotKonnector, type SnapshotAnswer, type SnapshotRequest } from './snapshot.ts';

const { bytecode, engine } = workerData.request as SnapshotRequest;
let answer: SnapshotAnswer;
try {
  answer = { ok: true, loaded: await snapshotKonnector(bytecode, engine) };
} catch (error) {
  answer = { ok: false, usage: error instanceof UsageError ? error.kind : null, message: (error as Error).message };
}
parentPort!.postMessage(answer);
