/**
 * The shared queue of a cluster of hosts: BullMQ on Redis. Each host's
 * Worker takes messages at most `concurrency` at a time; a message's BullMQ
 * id is its job id and seq, so a message added twice (a sweeper on each host)
 * is queued once. BullMQ's own stall recovery is off (maxStalledCount 0): a
 * host that dies is noticed by its CouchDB lease, the one recovery path of
 * both queues (processor.ts sweep). Redis is reached through ioredis.
 */
import { Queue, WaitingError, Worker } from 'bullmq';
import { ServeError } from './errors.ts';
import { MessageDeclined, messageKey, type HostLogger, type JobQueue, type QueueHandler, type QueueMessage } from './queue.ts';
import { Redis } from 'ioredis';

const QUEUE_NAME = 'konnector-jobs';

export class BullQueue implements JobQueue {
  readonly kind = 'redis';
  private worker: Worker<QueueMessage> | undefined;
  private active = 0;

  private constructor(
    private readonly queue: Queue<QueueMessage>,
    private readonly connection: Redis,
    private readonly concurrency: number,
    private readonly prefix: string,
    private readonly log: HostLogger,
  ) {}

  static async connect(url: string, concurrency: number, prefix: string, log: HostLogger): Promise<BullQueue> {
    // BullMQ's blocking commands need ioredis to retry forever rather than fail requests.
    const connection = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true, retryStrategy: (times) => Math.min(times * 200, 2000) });
    let firstError: Error | undefined;
    connection.on('error', (error: Error) => {
      firstError ??= error;
      log('warning', `Redis: ${error.message}`);
    });
    try {
      await connection.connect();
    } catch (error) {
      connection.disconnect();
      const cause = firstError ?? (error as Error);
      throw new ServeError('invalid', `--redis ${url}: cannot reach Redis (${cause.message}): check that it runs and listens there`);
    }
    const queue = new Queue<QueueMessage>(QUEUE_NAME, { connection, prefix });
    queue.on('error', (error) => log('error', `Redis queue: ${error.message}`));
    await queue.waitUntilReady();
    return new BullQueue(queue, connection, concurrency, prefix, log);
  }

  async start(handler: QueueHandler): Promise<void> {
    this.worker = new Worker<QueueMessage>(
      QUEUE_NAME,
      async (job, token) => {
        this.active++;
        try {
          await handler(job.data);
        } catch (error) {
          if (!(error instanceof MessageDeclined)) throw error;
          // Back to the shared queue for another host, rather than completed and gone.
          await job.moveToWait(token);
          throw new WaitingError();
        } finally {
          this.active--;
        }
      },
      { connection: this.connection, prefix: this.prefix, concurrency: this.concurrency, maxStalledCount: 0,
        removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } },
    );
    this.worker.on('error', (error) => this.log('error', `Redis worker: ${error.message}`));
    this.worker.on('failed', (job, error) =>
      this.log('warning', `job ${job?.data.jobId}: ${error.message} (the job stays queued and is picked up again)`));
    await this.worker.waitUntilReady();
  }

  async add(message: QueueMessage, delayMs = 0): Promise<void> {
    await this.queue.add('run', message, { jobId: messageKey(message), delay: Math.max(0, delayMs), removeOnComplete: true, removeOnFail: true });
  }

  async pause(): Promise<void> {
    await this.worker?.pause(true);
  }

  async close(): Promise<void> {
    await this.worker?.close(true);
    await this.queue.close();
    await this.connection.quit();
  }

  async stats() {
    const counts = await this.queue.getJobCounts('wait', 'delayed', 'prioritized');
    return { waiting: Object.values(counts).reduce((a, b) => a + b, 0), active: this.active };
  }
}
