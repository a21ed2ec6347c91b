/**
 * The claim race: a host starts a job's konnector while it writes its claim,
 * so a job another host took meanwhile must end with no effect here. The
 * queue is driven by hand so the test decides what happens between a job's
 * message and its handling.
 */
import nano from 'nano';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseName } from '../../host-api/documents.ts';
import type { ServeHost } from '../../runner/serve/host.ts';
import type { JobDoc } from '../../runner/serve/model.ts';
import type { JobQueue, QueueHandler, QueueMessage } from '../../runner/serve/queue.ts';
import { apiClient, konnectorsDir, settledJob, SLUG, startTestHost, type Api } from './support.ts';

const INSTANCE = 'claims.cozy.example';

/** A queue that only records messages; the test hands them to the host. */
class HandDrivenQueue implements JobQueue {
  readonly kind = 'embedded';
  handler: QueueHandler | undefined;
  readonly messages: QueueMessage[] = [];
  async start(handler: QueueHandler) {
    this.handler = handler;
  }
  async add(message: QueueMessage) {
    this.messages.push(message);
  }
  async pause() {}
  async close() {}
  async stats() {
    return { waiting: this.messages.length, active: 0 };
  }
  /** The message queued for a job. */
  take(jobId: string): QueueMessage {
    const index = this.messages.findIndex((m) => m.jobId === jobId);
    expect(index, `a message for job ${jobId}`).toBeGreaterThanOrEqual(0);
    return this.messages.splice(index, 1)[0]!;
  }
}

let host: ServeHost;
let api: Api;
let queue: HandDrivenQueue;

beforeAll(async () => {
  queue = new HandDrivenQueue();
  host = await startTestHost({ konnectorsDir: await konnectorsDir(), concurrency: 2, queue });
  api = apiClient(host.url);
});

afterAll(async () => {
  await host?.drain(0);
});

async function queuedJob(login: string): Promise<{ job: JobDoc; message: QueueMessage }> {
  const account = await api('POST', '/accounts', { account_type: SLUG, instance: INSTANCE, auth: { login } });
  expect(account.status).toBe(201);
  const created = await api('POST', '/jobs', { account: account.body._id });
  expect(created.status).toBe(201);
  return { job: await host.store.jobs.get(created.body._id), message: queue.take(created.body._id) };
}

/** What the serve-worker konnector saved for a job: it saves one document per run. */
async function savedRun(jobId: string, on: ServeHost = host): Promise<number> {
  const runs = nano(on.couchUrl).use(decodeURIComponent(databaseName(INSTANCE, 'io.cozy.serveruns')));
  return runs.get(jobId).then(() => 200, (e: { statusCode?: number }) => e.statusCode ?? 500);
}

describe('claiming a job while its konnector starts', () => {
  it('leaves no trace of a job another host claimed between its message and its handling; an unclaimed twin runs', async () => {
    const taken = await queuedJob('taken');
    // Another host's claim lands first.
    const theirs = await host.store.jobs.put({
      ...taken.job, state: 'running', attempts: 1, started_at: new Date().toISOString(),
      lease: { host: 'another-host', expires_at: new Date(Date.now() + 60_000).toISOString() },
    });
    await queue.handler!(taken.message);
    expect(await host.store.jobs.get(taken.job._id)).toEqual(theirs);
    expect(await savedRun(taken.job._id)).toBe(404);
    expect(host.processor.runningCount).toBe(0);

    const twin = await queuedJob('twin');
    await queue.handler!(twin.message);
    expect(await settledJob(api, twin.job._id)).toMatchObject({ state: 'done', attempts: 1 });
    expect(await savedRun(twin.job._id)).toBe(200);
  });

  it('reads the job again when the revision it kept is stale, and runs it if it is still queued', async () => {
    const touched = await queuedJob('touched');
    // A write that changes the revision, not the job's turn in the queue.
    await host.store.jobs.put({ ...touched.job, queued_at: new Date().toISOString() });
    await queue.handler!(touched.message);
    const job = await settledJob(api, touched.job._id);
    expect(job).toMatchObject({ state: 'done', attempts: 1 });
    expect(job.logs.map((line: { message: string }) => line.message)).toContain(`job ${touched.job._id} started`);
    expect(await savedRun(touched.job._id)).toBe(200);
  });
});

describe('draining while a claim is under way', () => {
  it('waits for the claim: the job it lands runs to its end within the grace, instead of being left running by a host that is gone', async () => {
    const drainedQueue = new HandDrivenQueue();
    const drained = await startTestHost({ konnectorsDir: await konnectorsDir(), concurrency: 2, queue: drainedQueue });
    try {
      const drainedApi = apiClient(drained.url);
      const account = await drainedApi('POST', '/accounts', { account_type: SLUG, instance: INSTANCE, auth: { login: 'drained' } });
      const created = await drainedApi('POST', '/jobs', { account: account.body._id });
      expect(created.status).toBe(201);
      const handled = drainedQueue.handler!(drainedQueue.take(created.body._id)); // its claim is being written
      const result = await drained.processor.drain(120_000);
      expect(result).toEqual({ finished: 1, requeued: 0 });
      expect(await drained.store.jobs.get(created.body._id)).toMatchObject({ state: 'done', attempts: 1 });
      await handled;
      expect(await savedRun(created.body._id, drained)).toBe(200);
      // With nothing under way, a drain has nothing to wait for.
      expect(await drained.processor.drain(0)).toEqual({ finished: 0, requeued: 0 });
    } finally {
      await drained.drain(0);
    }
  });
});
