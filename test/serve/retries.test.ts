import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServeHost } from '../../runner/serve/host.ts';
import { apiClient, konnectorsDir, settledJob, SLUG, startTestHost, waitFor, type Api } from './support.ts';

const INSTANCE = 'dave.cozy.example';

let host: ServeHost;
let api: Api;

beforeAll(async () => {
  host = await startTestHost({ konnectorsDir: await konnectorsDir(), concurrency: 2 });
  api = apiClient(host.url);
});

afterAll(async () => {
  await host?.drain(0);
});

async function account(auth: Record<string, unknown>): Promise<string> {
  const { status, body } = await api('POST', '/accounts', { account_type: SLUG, instance: INSTANCE, auth });
  expect(status).toBe(201);
  return body._id;
}

async function runOnce(auth: Record<string, unknown>) {
  const { body } = await api('POST', '/jobs', { account: await account(auth) });
  return settledJob(api, body._id);
}

const jobsOf = async (trigger: string) => (await api('GET', `/jobs?trigger=${trigger}&limit=1000`)).body.jobs as Array<{ _id: string; state: string; error: string | null }>;

describe('retries, as cozy-stack: at most 2 executions, none for errors the user must fix', () => {
  it('runs a VENDOR_DOWN job twice, after a back-off, then errors it', async () => {
    const job = await runOnce({ mode: 'fail', code: 'vendor-down' });
    expect(job).toMatchObject({ state: 'errored', error: 'VENDOR_DOWN', attempts: 2 });
    expect(job.history.map((a: { attempt: number; state: string; error: string }) => [a.attempt, a.state, a.error]))
      .toEqual([[1, 'errored', 'VENDOR_DOWN'], [2, 'errored', 'VENDOR_DOWN']]);
    // Both attempts' log lines are kept, each with its attempt number.
    expect(new Set(job.logs.map((line: { attempt: number }) => line.attempt))).toEqual(new Set([1, 2]));
  });

  it('runs a crashing konnector twice too: a crash may be transient', async () => {
    const job = await runOnce({ mode: 'crash' });
    expect(job).toMatchObject({ state: 'errored', error: 'UNKNOWN_ERROR.CRASH', attempts: 2 });
  });

  it('does not retry LOGIN_FAILED, USER_ACTION_NEEDED or a memory limit', async () => {
    for (const [auth, code] of [
      [{ mode: 'fail', code: 'login-failed' }, 'LOGIN_FAILED'],
      [{ mode: 'fail', code: 'user-action-needed-cgu-form' }, 'USER_ACTION_NEEDED.CGU_FORM'],
      [{ mode: 'allocate' }, 'LIMIT_EXCEEDED.MEMORY'],
    ] as const) {
      const job = await runOnce(auth);
      expect(job, code).toMatchObject({ state: 'errored', error: code, attempts: 1 });
    }
  });

  it('a benign job runs once and is done', async () => {
    expect(await runOnce({ login: 'dave' })).toMatchObject({ state: 'done', attempts: 1, history: [expect.objectContaining({ state: 'done' })] });
  });
});

describe('LOGIN_FAILED stops the automatic runs of a trigger until the account is updated', () => {
  it('stops after LOGIN_FAILED, goes on when launched by hand, and resumes once the account changes', async () => {
    const id = await account({ mode: 'fail', code: 'login-failed' });
    const trigger = (await api('POST', '/triggers', { type: '@every', arguments: '1s', account: id })).body._id as string;
    const first = await waitFor('the first scheduled job to fail', async () => {
      const jobs = await jobsOf(trigger);
      return jobs.find((job) => job.state === 'errored');
    });
    expect(first.error).toBe('LOGIN_FAILED');
    // The trigger's state is written after its job's end (runner/serve/processor.ts finish).
    const state = await waitFor('the trigger to record the failure', async () => {
      const current = (await api('GET', `/triggers/${trigger}`)).body.current_state as { status: string };
      return current.status === 'never' ? null : current;
    });
    expect(state).toMatchObject({ status: 'errored', last_error: 'LOGIN_FAILED', last_failed_job_id: first._id });

    // Three more fire times pass without a job.
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect((await jobsOf(trigger)).map((job) => job._id)).toEqual([first._id]);

    // The user may still run it by hand.
    const launched = await api('POST', `/triggers/${trigger}/launch`);
    expect(launched.status).toBe(201);
    expect(await settledJob(api, launched.body._id)).toMatchObject({ manual: true, error: 'LOGIN_FAILED' });

    // New credentials: the schedule resumes.
    expect((await api('PUT', `/accounts/${id}`, { auth: { login: 'dave', password: 'new' } })).status).toBe(200);
    await waitFor('a scheduled job with the new credentials', async () => (await jobsOf(trigger)).find((job) => job.state === 'done'));
    // The trigger's state follows its last finished job, which may end a moment after the first done one.
    await waitFor('the trigger to be done', async () => (await api('GET', `/triggers/${trigger}`)).body.current_state.status === 'done' || null);
    await api('DELETE', `/triggers/${trigger}`);
  });

  it('keeps running a trigger whose job needs new terms accepted (USER_ACTION_NEEDED.CGU_FORM)', async () => {
    const id = await account({ mode: 'fail', code: 'user-action-needed-cgu-form' });
    const trigger = (await api('POST', '/triggers', { type: '@every', arguments: '1s', account: id })).body._id as string;
    const jobs = await waitFor('two scheduled jobs', async () => {
      const ended = (await jobsOf(trigger)).filter((job) => job.state === 'errored');
      return ended.length >= 2 ? ended : null;
    });
    expect(jobs.every((job) => job.error === 'USER_ACTION_NEEDED.CGU_FORM')).toBe(true);
    await api('DELETE', `/triggers/${trigger}`);
  });

  it('stops on USER_ACTION_NEEDED.CHANGE_PASSWORD as on LOGIN_FAILED', async () => {
    const id = await account({ mode: 'fail', code: 'user-action-needed-change-password' });
    const trigger = (await api('POST', '/triggers', { type: '@every', arguments: '1s', account: id })).body._id as string;
    await waitFor('the first scheduled job to fail', async () => (await jobsOf(trigger)).find((job) => job.state === 'errored'));
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(await jobsOf(trigger)).toHaveLength(1);
    await api('DELETE', `/triggers/${trigger}`);
  });
});
