/**
 * The queue hands job ids to this host's workers, at most `concurrency` at a
 * time. It carries no state of its own that matters: CouchDB holds each job's
 * state, a message is only "job X, queued for the n-th time (seq), may run".
 * A message for a job that is no longer queued at that seq is dropped by the
 * processor, so a queue may deliver a message twice without a job running twice.
 */
export interface QueueMessage {
  jobId: string;
  seq: number;
}

export type QueueHandler = (message: QueueMessage) => Promise<void>;

/**
 * Thrown by a handler that will not take a message it was handed (its host
 * is draining): a shared queue hands it to another host at once. The
 * embedded queue drops it: the job stays queued in CouchDB for the next start.
 */
export class MessageDeclined extends Error {
  constructor(message: QueueMessage) {
    super(`job ${message.jobId}: declined, this host is draining`);
    this.name = 'MessageDeclined';
  }
}

export type HostLogger = (level: 'info' | 'warning' | 'error', message: string) => void;

export interface JobQueue {
  readonly kind: 'embedded' | 'redis';
  /** Starts handing messages to `handler`. */
  start(handler: QueueHandler): Promise<void>;
  /** Queues a message, to be handed out after `delayMs`. Adding a message already waiting is a no-op. */
  add(message: QueueMessage, delayMs?: number): Promise<void>;
  /**
   * A slot for a job this host starts at once, without a message: only a
   * queue local to this host has them, and only when one is free and no
   * message waits. Call the returned function when the job ends.
   */
  takeSlot?(): (() => void) | undefined;
  /** Stops handing out messages; handlers already running go on. */
  pause(): Promise<void>;
  close(): Promise<void>;
  /** Messages waiting in this process (embedded) or in the shared queue (redis), and handlers running here. */
  stats(): Promise<{ waiting: number; active: number }>;
}

export const messageKey = (message: QueueMessage) => `${message.jobId}-${message.seq}`;

/** The queue of a single host: in memory, rebuilt from CouchDB when the host starts. */
export class EmbeddedQueue implements JobQueue {
  readonly kind = 'embedded';
  private handler: QueueHandler | undefined;
  private readonly ready: QueueMessage[] = [];
  private readonly known = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private active = 0;
  private paused = false;

  constructor(
    private readonly concurrency: number,
    private readonly log: HostLogger,
  ) {}

  async start(handler: QueueHandler): Promise<void> {
    this.handler = handler;
    this.pump();
  }

  async add(message: QueueMessage, delayMs = 0): Promise<void> {
    const key = messageKey(message);
    if (this.paused || this.known.has(key)) return;
    this.known.add(key);
    if (delayMs <= 0) {
      this.ready.push(message);
      this.pump();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.ready.push(message);
      this.pump();
    }, delayMs);
    this.timers.add(timer);
  }

  takeSlot(): (() => void) | undefined {
    if (!this.handler || this.paused || this.active >= this.concurrency || this.ready.length > 0) return undefined;
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.pump();
    };
  }

  private pump(): void {
    while (this.handler && !this.paused && this.active < this.concurrency && this.ready.length > 0) {
      const message = this.ready.shift()!;
      // Handed out, no longer waiting: adding it again queues it again (the processor drops the stale copy).
      this.known.delete(messageKey(message));
      this.active++;
      this.handler(message)
        .catch((error: Error) => {
          if (!(error instanceof MessageDeclined)) this.log('error', `job ${message.jobId}: ${error.message} (the job stays queued and is picked up again)`);
        })
        .finally(() => {
          this.active--;
          this.pump();
        });
    }
  }

  async pause(): Promise<void> {
    this.paused = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  async close(): Promise<void> {
    await this.pause();
  }

  async stats() {
    return { waiting: this.ready.length + this.timers.size, active: this.active };
  }
}
