/** Worker side of bridge.test.ts: two host calls through a GuestBridge, the answers (or the error) posted back. */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { GuestBridge } from '../../runner/sandbox/bridge.ts';

const { port, signal } = workerData.request as { port: MessagePort; signal: SharedArrayBuffer };
const bridge = new GuestBridge(port, signal, () => ({ memoryBytes: 0, fuelUsed: null }), () => {});
try {
  parentPort!.postMessage({ answers: [bridge.call('documents.find', [1]), bridge.call('documents.find', [2])] });
} catch (error) {
  parentPort!.postMessage({ error: (error as Error).message });
}
