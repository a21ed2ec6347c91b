import nano from 'nano';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseName } from '../../host-api/documents.ts';
import type { ServeHost } from '../../runner/serve/host.ts';
import type { JobDoc } from '../../runner/serve/model.ts';
import { apiClient, konnectorsDir, SLUG, startTestHost, waitFor, type Api } from './support.ts';

const JOBS = 1000;
const BENIGN_ACCOUNTS = 16;

/** 5% of the jobs go to these accounts: how each one misbehaves, and how its jobs must end. */
const HOSTILE = [
  { auth: { mode: 'fail', code: 'login-failed' }, error: 'LOGIN_FAILED', attempts: 1, jobs: 13 },
  { auth: { mode: 'fail', code: 'vendor-down' }, error: 'VENDOR_DOWN', attempts: 2, jobs: 12 },
  { auth: { mode: 'allocate' }, error: 'LIMIT_EXCEEDED.MEMORY', attempts: 1, jobs: 13 },
  { auth: { mode: 'crash' }, error: 'UNKNOWN_ERROR.CRASH', attempts: 2, jobs: 12 },
];

let host: ServeHost;
let api: Api;

beforeAll(async () => {
  host = await startTestHost({ konnectorsDir: await konnectorsDir() });
  api = apiClient(host.url);
});

afterAll(async () => {
  await host?.drain(0);
});

interface Planned {
  account: string;
  instance: string;
  login: string | null;
  expected: { state: 'done' } | { state: 'errored'; error: string; attempts: number };
}

describe('a thousand jobs across 20 accounts, 5% of them hostile or crashing', () => {
  it('ends every job once: benign ones done with their document, hostile ones errored with their code', async () => {
    const accounts: Planned[] = [];
    for (let i = 0; i < BENIGN_ACCOUNTS; i++) {
      const instance = `user${i}.cozy.example`;
      const login = `user${i}@example.org`;
      const { body } = await api('POST', '/accounts', { account_type: SLUG, instance, auth: { login } });
      accounts.push({ account: body._id, instance, login, expected: { state: 'done' } });
    }
    const plan: Planned[] = [];
    for (const [i, hostile] of HOSTILE.entries()) {
      const instance = `hostile${i}.cozy.example`;
      const { body } = await api('POST', '/accounts', { account_type: SLUG, instance, auth: hostile.auth });
      for (let j = 0; j < hostile.jobs; j++) {
        plan.push({ account: body._id, instance, login: null, expected: { state: 'errored', error: hostile.error, attempts: hostile.attempts } });
      }
    }
    const benignJobs = JOBS - plan.length;
    for (let j = 0; j < benignJobs; j++) plan.push(accounts[j % BENIGN_ACCOUNTS]!);
    // Interleave hostile and benign jobs (a seeded shuffle: the same order on every run).
    let seed = 42;
    for (let i = plan.length - 1; i > 0; i--) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const j = seed % (i + 1);
      [plan[i], plan[j]] = [plan[j]!, plan[i]!];
    }

    const created = new Map<string, Planned>();
    for (let i = 0; i < plan.length; i += 25) {
      const batch = plan.slice(i, i + 25);
      const answers = await Promise.all(batch.map((p) => api('POST', '/jobs', { account: p.account })));
      answers.forEach((answer, k) => {
        expect(answer.status).toBe(201);
        created.set(answer.body._id, batch[k]!);
      });
    }
    expect(created.size).toBe(JOBS);

    await waitFor('every job to end', async () => {
      const counts = await host.store.countJobsByState();
      return (counts.done ?? 0) + (counts.errored ?? 0) === JOBS;
    }, 540_000);

    const jobs = await host.store.jobs.find({}, { limit: JOBS + 1 });
    expect(jobs).toHaveLength(JOBS);
    const byId = new Map<string, JobDoc>(jobs.map((job) => [job._id, job]));
    for (const [id, planned] of created) {
      const job = byId.get(id);
      expect(job, `job ${id} is lost`).toBeDefined();
      if (planned.expected.state === 'done') {
        expect(job, id).toMatchObject({ state: 'done', attempts: 1, error: null, interruptions: 0 });
        expect(job!.history).toHaveLength(1);
      } else {
        expect(job, id).toMatchObject({ state: 'errored', error: planned.expected.error, attempts: planned.expected.attempts });
        expect(job!.history.map((a) => a.error)).toEqual(Array(planned.expected.attempts).fill(planned.expected.error));
      }
    }

    // Each benign job saved exactly one document, once, in its own instance, for its own account.
    const couchUrl = host.couchUrl;
    const saved = new Map<string, { account: string; login: string; runs: number }>();
    for (let i = 0; i < BENIGN_ACCOUNTS; i++) {
      const db = nano(couchUrl).use<{ account: string; login: string; runs: number }>(
        decodeURIComponent(databaseName(`user${i}.cozy.example`, 'io.cozy.serveruns')));
      const { rows } = await db.list({ include_docs: true });
      for (const row of rows) if (!row.id.startsWith('_design/')) saved.set(row.id, row.doc!);
    }
    expect(saved.size).toBe(benignJobs);
    for (const [id, planned] of created) {
      if (planned.expected.state !== 'done') continue;
      expect(saved.get(id), `document of job ${id}`).toMatchObject({ account: planned.account, login: planned.login, runs: 1 });
    }
  }, 600_000); // a generous deadline: the machine may be busy with other work
});
