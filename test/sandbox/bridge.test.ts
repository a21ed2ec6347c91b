/**
 * The bridge between a sandbox worker and the host (runner/sandbox/bridge.ts): a guest's synchronous host call
 * sleeps in Atomics.wait until the host posts the answer and sets the flag. A wake is not an answer: the host's
 * notify for one call may land while the guest already waits on the next (under load, the host thread can be
 * descheduled between setting the flag and notifying). The test makes that late wake happen for sure.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MessageChannel, Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';

const workerBoot = new URL('../../runner/sandbox/worker-boot.mjs', import.meta.url);
const ANSWERED = 1;

describe('a guest waiting on a host call', () => {
  it('sleeps through a wake that brings no answer, and takes its own answer once it is posted', async () => {
    const { port1: hostPort, port2: guestPort } = new MessageChannel();
    const signal = new SharedArrayBuffer(4);
    const flag = new Int32Array(signal);
    const worker = new Worker(workerBoot, {
      workerData: { entry: new URL('./bridge-guest.ts', import.meta.url).href, request: { port: guestPort, signal } },
      transferList: [guestPort],
    });
    const result = new Promise<{ answers?: unknown[]; error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const answer = (value: string) => {
      hostPort.postMessage({ ok: value });
      Atomics.store(flag, 0, ANSWERED);
      Atomics.notify(flag, 0);
    };
    let calls = 0;
    hostPort.on('message', async () => {
      calls += 1;
      if (calls === 1) return answer('first');
      // The second call is waiting: wake it with no answer (a late notify), making sure a waiter was woken ...
      while (Atomics.notify(flag, 0) === 0) await sleep(1);
      // ... then answer it.
      await sleep(50);
      answer('second');
    });
    try {
      expect(await result).toEqual({ answers: ['first', 'second'] });
      expect(calls).toBe(2);
    } finally {
      hostPort.close();
      await worker.terminate();
    }
  });
});
