import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { HostOp } from './capabilities.ts';

/**
 * The guest's host calls are synchronous (Node 20 has no JSPI), but the host's
 * work (HTTP, CouchDB) is asynchronous. The worker posts the call on a
 * dedicated port and sleeps in Atomics.wait; the host does the work, posts the
 * answer on the same port and wakes it; the worker then reads the answer with
 * receiveMessageOnPort. Notices (log lines) are posted without waiting.
 */

/** What the guest has used so far, sent with every message so a job the host stops still has numbers. */
export interface GuestUsage {
  /** Linear memory size (it only grows, so this is the peak). */
  memoryBytes: number;
  /** Fuel spent, null when the component is not metered. */
  fuelUsed: number | null;
}

export interface GuestMessage extends GuestUsage {
  op: HostOp;
  args: unknown[];
}

/**
 * Fuel the guest pays for host work done on its behalf: a fixed price per
 * call plus one unit per byte crossing the boundary, either way. Without it a
 * konnector could make the host copy and parse unbounded data for free.
 */
export const HOST_CALL_FUEL = 1000;

export function boundaryBytes(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (value instanceof Uint8Array) return value.byteLength;
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + boundaryBytes(item), 0);
  if (value && typeof value === 'object') return Object.values(value).reduce((sum: number, item) => sum + boundaryBytes(item), 0);
  return 0;
}

/**
 * `err` carries a WIT error payload; the worker rethrows it to the guest. `invalid`: the arguments are not of
 * the function's WIT types (the guest gets a TypeError, as jco's glue throws for a component).
 */
export type HostAnswer = { ok: unknown } | { err: unknown } | { invalid: string };

const WAITING = 0;
const ANSWERED = 1;

/** Worker side. */
export class GuestBridge {
  private readonly flag: Int32Array;

  constructor(
    private readonly port: MessagePort,
    signal: SharedArrayBuffer,
    private readonly usage: () => GuestUsage,
    private readonly charge: (fuel: number) => void,
  ) {
    this.flag = new Int32Array(signal);
  }

  /** A host call the guest waits on. */
  call(op: HostOp, args: unknown[]): unknown {
    Atomics.store(this.flag, 0, WAITING);
    this.port.postMessage({ op, args, ...this.usage() } satisfies GuestMessage);
    // A wake is not an answer: the host's notify for the previous call can land late, while this one waits (when
    // the flag was already set, that wait returned at once). Only the flag, set once the answer is posted, says so.
    do Atomics.wait(this.flag, 0, WAITING);
    while (Atomics.load(this.flag, 0) === WAITING);
    const received = receiveMessageOnPort(this.port);
    if (!received) throw new Error(`host call ${op} was woken without an answer`);
    const answer = received.message as HostAnswer;
    this.charge(HOST_CALL_FUEL + boundaryBytes(args) + boundaryBytes(answer));
    // jco's glue turns a thrown `{ payload }` into the WIT `err` case.
    if ('err' in answer) throw { payload: answer.err };
    if ('invalid' in answer) throw new TypeError(answer.invalid);
    return answer.ok;
  }

  /** A host call the guest does not wait on: a notice. */
  notify(op: HostOp, args: unknown[]): void {
    this.charge(HOST_CALL_FUEL + boundaryBytes(args));
    this.port.postMessage({ op, args, ...this.usage() } satisfies GuestMessage);
  }
}

export interface GuestServer {
  /**
   * Takes the messages still queued on the port and resolves once every
   * message so far is handled. The guest's outcome comes on another port, with
   * no order against this one: drain before settling, or its last log lines
   * are lost.
   */
  drain(): Promise<void>;
}

/**
 * Host side: answers every message in arrival order. `handle` returns the
 * answer for calls and undefined for notices; if it throws, the sandbox is
 * ending the job and the guest is never woken.
 */
export function serveGuest(
  port: MessagePort,
  signal: SharedArrayBuffer,
  handle: (message: GuestMessage) => Promise<HostAnswer | undefined>,
  onFault: (error: unknown) => void,
): GuestServer {
  const flag = new Int32Array(signal);
  let chain = Promise.resolve();
  const enqueue = (message: GuestMessage) => {
    chain = chain.then(async () => {
      try {
        const answer = await handle(message);
        if (answer === undefined) return;
        port.postMessage(answer);
        Atomics.store(flag, 0, ANSWERED);
        Atomics.notify(flag, 0);
      } catch (error) {
        onFault(error);
      }
    });
  };
  port.on('message', enqueue);
  return {
    drain() {
      for (let queued = receiveMessageOnPort(port); queued; queued = receiveMessageOnPort(port)) {
        enqueue(queued.message as GuestMessage);
      }
      return chain;
    },
  };
}
