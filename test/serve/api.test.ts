import { readFile } from 'node:fs/promises';
import path from 'node:path';
import nano from 'nano';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseName } from '../../host-api/documents.ts';
import type { ServeHost } from '../../runner/serve/host.ts';
import { parseConnectTo } from '../../host-api/http/index.ts';
import { repoRoot } from '../support/artifacts.ts';
import { apiClient, konnectorsDir, settledJob, SLUG, startSlowVendor, startTestHost, TOKEN, waitFor, type Api } from './support.ts';

const INSTANCE = 'alice.cozy.example';

let host: ServeHost;
let api: Api;
let couchUrl: string;
let vendor: Awaited<ReturnType<typeof startSlowVendor>>;

beforeAll(async () => {
  vendor = await startSlowVendor();
  host = await startTestHost({
    konnectorsDir: await konnectorsDir(),
    concurrency: 2,
    connectTo: [parseConnectTo(`wait.example:80:127.0.0.1:${vendor.port}`)],
  });
  api = apiClient(host.url);
  couchUrl = host.couchUrl;
});

afterAll(async () => {
  await host?.drain(0);
  await vendor?.stop();
});

const newAccount = async (auth: Record<string, unknown> = { login: 'alice' }) => {
  const { status, body } = await api('POST', '/accounts', { account_type: SLUG, instance: INSTANCE, auth });
  expect(status, JSON.stringify(body)).toBe(201);
  return body as { _id: string; rev: string };
};

describe('authentication', () => {
  it('refuses every route but /health without the bearer token, and answers with it', async () => {
    const anonymous = apiClient(host.url, null);
    const wrong = apiClient(host.url, 'not-the-token-at-all');
    for (const [method, route] of [['GET', '/accounts'], ['POST', '/jobs'], ['GET', '/jobs/x'], ['GET', '/metrics'], ['GET', '/konnectors']]) {
      for (const client of [anonymous, wrong]) {
        const { status, body } = await client(method!, route!, method === 'POST' ? {} : undefined);
        expect(status, `${method} ${route}`).toBe(401);
        expect(body.error.kind).toBe('unauthorized');
      }
    }
    expect((await api('GET', '/accounts')).status).toBe(200);
    expect((await api('GET', '/konnectors')).body.konnectors).toEqual([expect.objectContaining({ slug: SLUG, version: '1.0.0' })]);
    const health = await anonymous('GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', couchdb: 'up', queue: 'embedded' });
  });

  it('refuses a token sent another way than as a Bearer', async () => {
    const basic = apiClient(host.url, null);
    const { status } = await basic('GET', '/accounts', undefined, { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` });
    expect(status).toBe(401);
  });
});

describe('docs/openapi.yaml', () => {
  it('documents routes the host serves: each answers 401 without the token (200 for /health), never 404 or 405', async () => {
    const yaml = await readFile(path.join(repoRoot, 'docs/openapi.yaml'), 'utf8');
    const documented: Array<[string, string]> = [];
    let current = '';
    for (const line of yaml.split('\n')) {
      const pathLine = /^  (\/\S*):$/.exec(line);
      if (pathLine) current = pathLine[1]!;
      const method = /^    (get|post|put|delete):$/.exec(line);
      if (method && current) documented.push([method[1]!.toUpperCase(), current.replace(/\{id\}/g, 'some-id')]);
    }
    expect(documented.length).toBeGreaterThanOrEqual(17);
    const anonymous = apiClient(host.url, null);
    for (const [method, route] of documented) {
      const { status } = await anonymous(method, route, method === 'POST' || method === 'PUT' ? {} : undefined);
      expect(status, `${method} ${route}`).toBe(route === '/health' ? 200 : 401);
    }
  });
});

describe('input validation', () => {
  it('answers 400 with the field and the reason', async () => {
    const cases: Array<[string, string, unknown, RegExp]> = [
      ['POST', '/accounts', { account_type: SLUG, instance: 'Not A Domain!', auth: {} }, /instance: a Cozy instance domain/],
      ['POST', '/accounts', { account_type: 'no-such-konnector', instance: INSTANCE, auth: {} }, /account_type: .*no konnector "no-such-konnector".*known: serve-worker/],
      ['POST', '/accounts', { account_type: SLUG, instance: INSTANCE }, /auth: Required/],
      ['POST', '/accounts', { account_type: SLUG, instance: INSTANCE, auth: {}, extra: 1 }, /Unrecognized key\(s\) in object: 'extra'/],
      ['POST', '/accounts', '{"account_type": ', /not valid JSON/],
      ['POST', '/jobs', { account: 'does-not-exist' }, /account: there is no account "does-not-exist"/],
      ['POST', '/jobs', { account: '_design/x' }, /account: an account id/],
      ['GET', '/jobs?state=finished', undefined, /state: Invalid enum value/],
      ['GET', '/jobs?limit=0', undefined, /limit: Number must be greater than or equal to 1/],
    ];
    for (const [method, route, body, reason] of cases) {
      const answer = await api(method, route, body);
      expect(answer.status, `${method} ${route} ${JSON.stringify(body)}`).toBe(400);
      expect(answer.body.error.kind).toBe('invalid');
      expect(answer.body.error.message).toMatch(reason);
    }
  });

  it('refuses trigger arguments its type does not take, and accepts the good twin', async () => {
    const account = await newAccount();
    const bad: Array<[string, string, RegExp]> = [
      ['@cron', '61 * * * *', /not a cron expression/],
      ['@every', '10 minutes', /not a duration of at least 1s/],
      ['@every', '500ms', /not a duration of at least 1s/],
      ['@daily', 'between 8am and 7am', /hours range is empty/],
      ['@weekly', 'on funday', /"funday" is not a day of the week/],
      ['@daily', 'on the 3', /only for @monthly/],
      ['@manual', 'now', /@manual takes no arguments/],
    ];
    for (const [type, args, reason] of bad) {
      const { status, body } = await api('POST', '/triggers', { type, arguments: args, account: account._id });
      expect(status, `${type} ${args}`).toBe(400);
      expect(body.error.message).toMatch(reason);
      expect(body.error.issues[0]).toMatch(/^arguments: /);
    }
    for (const [type, args] of [['@cron', '0 30 4 * * *'], ['@every', '1h30m'], ['@daily', 'between 8am and 6pm'],
      ['@weekly', 'on monday,friday after 2pm'], ['@monthly', 'on the 1-5 before 8am'], ['@manual', '']]) {
      const { status, body } = await api('POST', '/triggers', { type, arguments: args, account: account._id });
      expect(status, `${type} ${args}: ${JSON.stringify(body)}`).toBe(201);
      expect((await api('DELETE', `/triggers/${body._id}`)).status).toBe(204);
    }
  });

  it('answers 404 for unknown ids and routes, 405 for a wrong method', async () => {
    expect((await api('GET', '/jobs/nope')).status).toBe(404);
    expect((await api('GET', '/accounts/nope')).body.error.message).toMatch(/no io.cozy.accounts document "nope"/);
    expect((await api('GET', '/nowhere')).status).toBe(404);
    const wrongMethod = await api('PATCH', '/jobs', {});
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.body.error.message).toMatch(/allowed: POST, GET/);
  });
});

describe('accounts and triggers', () => {
  it('creates, reads, updates and deletes an account, never showing its credentials', async () => {
    const account = await newAccount({ login: 'bob', password: 'hunter2' });
    const read = await api('GET', `/accounts/${account._id}`);
    expect(read.body).toMatchObject({ account_type: SLUG, instance: INSTANCE, auth: { login: '***', password: '***' } });
    expect(JSON.stringify(read.body)).not.toContain('hunter2');
    const updated = await api('PUT', `/accounts/${account._id}`, { auth: { login: 'bob', password: 'correct' }, label: 'Bob' });
    expect(updated.status).toBe(200);
    expect(updated.body.rev).not.toBe(account.rev);
    expect(updated.body.label).toBe('Bob');
    const trigger = await api('POST', '/triggers', { type: '@daily', arguments: 'after 8pm', account: account._id });
    expect(trigger.body).toMatchObject({ worker: 'konnector', message: { account: account._id, konnector: SLUG }, current_state: { status: 'never' } });
    expect((await api('DELETE', `/accounts/${account._id}`)).status).toBe(204);
    expect((await api('GET', `/accounts/${account._id}`)).status).toBe(404);
    expect((await api('GET', `/triggers/${trigger.body._id}`)).status).toBe(404);
  });

  it('deletes an account that another writer (its running job) keeps changing, and answers 404 for one already gone', async () => {
    const account = await newAccount();
    let writes = 0;
    let deleted = false;
    const writer = (async () => {
      while (!deleted) {
        const update = await api('PUT', `/accounts/${account._id}`, { auth: { login: 'alice' }, label: `write ${++writes}` });
        if (update.status === 404) return;
        expect(update.status).toBe(200);
      }
    })();
    await waitFor('the writer to have written', async () => writes >= 3);
    const removal = await api('DELETE', `/accounts/${account._id}`);
    deleted = true;
    await writer;
    expect(removal.status, JSON.stringify(removal.body)).toBe(204);
    expect((await api('GET', `/accounts/${account._id}`)).status).toBe(404);
    expect((await api('DELETE', `/accounts/${account._id}`)).status).toBe(404);
  });
});

describe('running a job', () => {
  it('runs POST /jobs to done, with its report, its log and the document it saved', async () => {
    const account = await newAccount({ login: 'carol' });
    const created = await api('POST', '/jobs', { account: account._id });
    expect(created.status).toBe(201);
    // A slot is free: the job is written running and starts at once.
    expect(created.body).toMatchObject({ state: 'running', manual: true, attempts: 1, message: { account: account._id, konnector: SLUG } });
    const job = await settledJob(api, created.body._id);
    expect(job).toMatchObject({ state: 'done', attempts: 1, error: null, report: { state: 'done', slug: SLUG, saved: { 'io.cozy.serveruns': 1 } } });
    expect(job.logs.map((line: { message: string }) => line.message)).toEqual([`job ${job._id} started`, 'saved']);
    expect(job.history).toEqual([expect.objectContaining({ attempt: 1, state: 'done' })]);
    const runs = nano(couchUrl).use<{ account: string; login: string; runs: number; cozyMetadata: { sourceAccount: string } }>(
      decodeURIComponent(databaseName(INSTANCE, 'io.cozy.serveruns')));
    const saved = await runs.get(job._id);
    expect(saved).toMatchObject({ account: account._id, login: 'carol', runs: 1, cozyMetadata: { sourceAccount: account._id } });

    const listed = await api('GET', `/jobs?account=${account._id}`);
    expect(listed.body.jobs).toEqual([expect.objectContaining({ _id: job._id, state: 'done' })]);
    expect(listed.body.jobs[0].logs).toBeUndefined();
  });

  it('errors a job whose account was deleted before it ran, without running it', async () => {
    // Two slow jobs hold both slots, so the third waits in the queue while its account goes.
    const slow = await newAccount({ login: 'slow', waitUrl: 'http://wait.example/wait?ms=1500' });
    const blockers = await Promise.all([1, 2].map(() => api('POST', '/jobs', { account: slow._id })));
    await waitFor('both slots busy', async () => host.processor.runningCount === 2);
    const doomed = await newAccount();
    const created = await api('POST', '/jobs', { account: doomed._id });
    expect(created.body).toMatchObject({ state: 'queued', attempts: 0 });
    expect((await api('DELETE', `/accounts/${doomed._id}`)).status).toBe(204);
    const job = await settledJob(api, created.body._id);
    expect(job).toMatchObject({ state: 'errored', error: 'HOST.ACCOUNT_NOT_FOUND', attempts: 0, history: [] });
    expect(job.error_message).toMatch(/was deleted before the job ran/);
    for (const blocker of blockers) expect((await settledJob(api, blocker.body._id)).state).toBe('done');
  });

  it('exposes Prometheus metrics: jobs by state, durations, fuel, memory', async () => {
    const { status, body } = await api('GET', '/metrics');
    expect(status).toBe(200);
    expect(body).toMatch(/^konnector_jobs\{state="done"\} [1-9]/m);
    expect(body).toMatch(/^konnector_jobs_finished_total\{konnector="serve-worker",state="done",error=""\} [1-9]/m);
    expect(body).toMatch(/^konnector_job_duration_seconds_count\{konnector="serve-worker",state="done"\} [1-9]/m);
    expect(body).toMatch(/^konnector_job_memory_peak_bytes_bucket/m);
    // The test konnector is metered: every attempt spends fuel, well above a million units.
    expect(body).toMatch(/^konnector_job_fuel_used_count\{konnector="serve-worker"\} [1-9]/m);
    expect(body).toMatch(/^konnector_job_fuel_used_bucket\{le="1000000",konnector="serve-worker"\} 0$/m);
    expect(body).toMatch(/^process_resident_memory_bytes [1-9]/m);
  });
});
