import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';

/**
 * The guest's host calls are synchronous (Node 20 has no JSPI), but the host's
 * work (HTTP, CouchDB) is asynchronous. The worker posts the call on a
 * dedicated port and sleeps in Atomics.wait; the host does the work, posts the
 * answer on the same port and wakes it; the worker then reads the answer with
 * receiveMessageOnPort. Notices (log lines) are posted without waiting.
 */

/** Host calls that wait for an answer. */
export type HostCallOp = 'http.send' | 'documents.save' | 'documents.find' | 'files.save' | 'files.stat';
/** Host calls that do not. */
export type HostNoticeOp = 'log.write';

export interface GuestMessage {
  op: HostCallOp | HostNoticeOp;
  args: unknown[];
  /** The guest's linear memory size when it made the call. */
  memoryBytes: number;
}

/** `err` carries a WIT error payload; the worker rethrows it to the guest. */
export type HostAnswer = { ok: unknown } | { err: unknown };

const WAITING = 0;
const ANSWERED = 1;

/** Worker side. */
export class GuestBridge {
  private readonly flag: Int32Array;

  constructor(
    private readonly port: MessagePort,
    signal: SharedArrayBuffer,
    private readonly memoryBytes: () => number,
  ) {
    this.flag = new Int32Array(signal);
  }

  call(op: HostCallOp, args: unknown[]): unknown {
    Atomics.store(this.flag, 0, WAITING);
    this.port.postMessage({ op, args, memoryBytes: this.memoryBytes() } satisfies GuestMessage);
    Atomics.wait(this.flag, 0, WAITING);
    const received = receiveMessageOnPort(this.port);
    if (!received) throw new Error(`host call ${op} was woken without an answer`);
    const answer = received.message as HostAnswer;
    // jco's glue turns a thrown `{ payload }` into the WIT `err` case.
    if ('err' in answer) throw { payload: answer.err };
    return answer.ok;
  }

  notify(op: HostNoticeOp, args: unknown[]): void {
    this.port.postMessage({ op, args, memoryBytes: this.memoryBytes() } satisfies GuestMessage);
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
