/**
 * The claim race: a host starts a job's konnector while it writes its claim,
 * so a job another host took meanwhile must end with no effect here. The
 * queue is driven by hand so the test decides what happens between a job's
 * message and its handling. Likewise a job created with a slot free starts
 * while its running write lands: the test decides when, and whether, it lands.
 */
import nano from 'nano';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseName } from '../../host-api/documents.ts';
import { runJob } from '../../runner/sandbox/job.ts';
import { ServeError } from '../../runner/serve/errors.ts';
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

describe('a job written running at its creation, its konnector started while the write lands', () => {
  /**
   * A host with one slot whose first creation write of a running job waits until the konnector served its first
   * log line (or a minute), then lands, or fails if `fail`; `started` tells whether the konnector ran first.
   */
  async function hostHoldingCreation(fail: boolean) {
    let served!: () => void;
    const firstLine = new Promise<void>((resolve) => (served = resolve));
    const slotted = await startTestHost({
      konnectorsDir: await konnectorsDir(),
      concurrency: 1,
      executor: { execute: (konnector, request, env) => runJob(konnector, request, { ...env, onLog: (line) => (served(), env.onLog?.(line)) }) },
    });
    const outcome = { started: false, jobId: '' };
    const put = slotted.store.jobs.put.bind(slotted.store.jobs);
    slotted.store.jobs.put = async (doc) => {
      if (outcome.jobId || doc.state !== 'running' || doc._rev) return put(doc);
      outcome.jobId = doc._id;
      outcome.started = await Promise.race([firstLine.then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, 60_000, false))]);
      if (fail) throw new ServeError('unavailable', 'CouchDB did not answer (as the test says)');
      return put(doc);
    };
    const slottedApi = apiClient(slotted.url);
    const account = await slottedApi('POST', '/accounts', { account_type: SLUG, instance: INSTANCE, auth: { login: fail ? 'unwritten' : 'early' } });
    return { slotted, slottedApi, outcome, accountId: account.body._id as string };
  }

  it('runs the konnector before the write lands, its log lines and effects after it: the job ends done, saved once', async () => {
    const { slotted, slottedApi, outcome, accountId } = await hostHoldingCreation(false);
    try {
      const created = await slottedApi('POST', '/jobs', { account: accountId });
      expect(created.status).toBe(201);
      expect(outcome).toEqual({ started: true, jobId: created.body._id });
      const job = await settledJob(slottedApi, created.body._id);
      expect(job).toMatchObject({ state: 'done', attempts: 1 });
      expect(job.logs.map((line: { message: string }) => line.message)).toContain(`job ${created.body._id} started`);
      expect(await savedRun(created.body._id, slotted)).toBe(200);
    } finally {
      await slotted.drain(0);
    }
  });

  it('stops the konnector, having done nothing, when the write fails: the request fails, the slot serves the next job', async () => {
    const { slotted, slottedApi, outcome, accountId } = await hostHoldingCreation(true);
    try {
      const refused = await slottedApi('POST', '/jobs', { account: accountId });
      expect(refused.status).toBe(503);
      expect(refused.body.error.message).toMatch(/CouchDB did not answer/);
      expect(outcome.started).toBe(true);
      // The host's only slot: the next job runs only once the stopped konnector gave it back.
      const next = await slottedApi('POST', '/jobs', { account: accountId });
      expect(next.status).toBe(201);
      expect(await settledJob(slottedApi, next.body._id)).toMatchObject({ state: 'done', attempts: 1 });
      expect(await savedRun(next.body._id, slotted)).toBe(200);
      expect(await savedRun(outcome.jobId, slotted)).toBe(404);
      expect((await slottedApi('GET', `/jobs/${outcome.jobId}`)).status).toBe(404);
    } finally {
      await slotted.drain(0);
    }
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
