/**
 * Scale-out: two `konnector serve` processes share one queue (BullMQ on a real
 * redis-server on loopback) and one CouchDB. Every job runs exactly once, on
 * one host or the other, and a host killed mid-run loses nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { BullQueue } from '../../runner/serve/bull-queue.ts';
import { MessageDeclined, type QueueMessage } from '../../runner/serve/queue.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';
import { saturateCpu, type CpuLoad } from '../support/cpu-load.ts';
import { describeWithService, REDIS } from '../support/services.ts';
import { apiClient, konnectorsDir, savedRuns, settledJob, SLUG, spawnServe, startRedis, startSlowVendor, waitFor, type Api, type ServeProcess } from './support.ts';

let redis: Awaited<ReturnType<typeof startRedis>>;
let couch: TestCouch;
let tmp: string;
let dir: string;
let vendor: Awaited<ReturnType<typeof startSlowVendor>>;
const hosts: ServeProcess[] = [];

describeWithService(REDIS, 'two hosts sharing a Redis queue', () => {
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'serve-redis-'));
    [redis, couch, dir, vendor] = await Promise.all([startRedis(tmp), startTestCouch(),
      konnectorsDir(), startSlowVendor()]);
  });

  // Exactly-once must hold on a machine with no idle CPU: the hosts share both cores with busy loops.
  let load: CpuLoad | undefined;
  beforeEach(() => {
    load = saturateCpu();
  });

  afterEach(async ({ task }) => {
    await load?.stop();
    for (const host of hosts.splice(0)) {
      // A failed test shows what its hosts said: the only view of their side.
      if (task.result?.state === 'fail') process.stderr.write(`--- host ${host.child.pid}:\n${host.output().slice(-4000)}\n`);
      host.child.kill('SIGKILL');
    }
  });

  afterAll(async () => {
    await redis?.stop();
    await vendor?.stop();
    await couch?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  const serve = async () => {
    const host = await spawnServe(['--konnectors', dir, '--couchdb', couch.url, '--redis', redis.url, '--concurrency', '2',
      '--lease', '5s', '--data-dir', tmp, '--connect-to', `wait.example:80:127.0.0.1:${vendor.port}`]);
    hosts.push(host);
    return { host, api: apiClient(host.url) };
  };

  it('runs each job exactly once, on either host', async () => {
    const [a, b] = await Promise.all([serve(), serve()]);
    const instance = 'grace.cozy.example';
    const account = (await a.api('POST', '/accounts', { account_type: SLUG, instance, auth: { login: 'grace' } })).body._id;
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      const api: Api = i % 2 ? a.api : b.api;
      ids.push((await api('POST', '/jobs', { account })).body._id);
    }
    const jobs = await Promise.all(ids.map((id) => settledJob(a.api, id, 120_000)));
    const ranOn = new Set<string>();
    for (const job of jobs) {
      expect(job, `${job._id}, history ${JSON.stringify(job.history)}`).toMatchObject({ state: 'done', attempts: 1 });
      // One attempt completed; a host that gave a job up (its lease lapsing under load) left an interruption, never a second outcome.
      const completed = job.history.filter((attempt: { state: string }) => attempt.state !== 'interrupted');
      expect(completed, job._id).toHaveLength(1);
      ranOn.add(completed[0].host);
    }
    expect(ranOn.size).toBe(2);
    const runs = await savedRuns(couch.url, instance);
    expect(runs.size).toBe(ids.length);
    for (const id of ids) expect(runs.get(id), id).toBe(1);
  });

  it('gives a message a draining host had already fetched back to the shared queue; a message taken stays taken', async () => {
    const seen = async (decline: boolean, prefix: string) => {
      const [a, b] = await Promise.all([BullQueue.connect(redis.url, 1, prefix, () => {}), BullQueue.connect(redis.url, 1, prefix, () => {})]);
      const message: QueueMessage = { jobId: `${prefix}-job`, seq: 0 };
      const byA: QueueMessage[] = [];
      const byB: QueueMessage[] = [];
      await a.start(async (m) => {
        byA.push(m);
        if (decline) throw new MessageDeclined(m);
      });
      await a.add(message);
      await waitFor('host a to be handed the message', async () => byA.length > 0);
      await a.pause(); // the drain: host a takes nothing more
      await b.start(async (m) => {
        byB.push(m);
      });
      if (decline) await waitFor('host b to be handed the declined message', async () => byB.length > 0);
      else await new Promise((resolve) => setTimeout(resolve, 1000));
      await Promise.all([a.close(), b.close()]);
      return { byA, byB, message };
    };
    const declined = await seen(true, 'declining');
    expect(declined.byB).toEqual([declined.message]);
    const taken = await seen(false, 'taking');
    expect(taken.byA).toEqual([taken.message]);
    expect(taken.byB).toEqual([]);
  });

  it('gives the jobs of a host killed mid-run to the other one', async () => {
    const [a, b] = await Promise.all([serve(), serve()]);
    const instance = 'heidi.cozy.example';
    const account = (await a.api('POST', '/accounts', { account_type: SLUG, instance, auth: { login: 'heidi', waitUrl: 'http://wait.example/wait?ms=2000' } })).body._id;
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await a.api('POST', '/jobs', { account })).body._id);
    await waitFor('host a to run jobs', async () => {
      const { body } = await a.api('GET', '/jobs?state=running');
      return body.jobs.some((job: { lease?: { host: string } }) => job.lease?.host.includes(`-${a.host.child.pid}-`));
    });
    a.host.child.kill('SIGKILL');
    const jobs = await Promise.all(ids.map((id) => settledJob(b.api, id, 120_000)));
    for (const job of jobs) expect(job, job._id).toMatchObject({ state: 'done', attempts: 1 });
    expect(jobs.some((job) => job.interruptions === 1)).toBe(true);
    const runs = await savedRuns(couch.url, instance);
    for (const id of ids) expect(runs.get(id), id).toBe(1);
  });
});
