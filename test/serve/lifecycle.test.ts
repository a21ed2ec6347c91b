/**
 * Real `konnector serve` processes, killed with SIGKILL and drained with
 * SIGTERM, sharing one CouchDB: no job is lost, none runs twice.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nano from 'nano';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { databaseName } from '../../host-api/documents.ts';
import { konnectorCli } from '../support/cli.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';
import { saturateCpu, type CpuLoad } from '../support/cpu-load.ts';
import { apiClient, konnectorsDir, savedRuns, settledJob, SLUG, spawnServe, startSlowVendor, waitFor, type Api, type ServeProcess } from './support.ts';

let couch: TestCouch;
/** The hosts' data directories. */
let dataRoot: string;
let vendor: Awaited<ReturnType<typeof startSlowVendor>>;
let dir: string;
const processes: ServeProcess[] = [];

beforeAll(async () => {
  dataRoot = await mkdtemp(path.join(os.tmpdir(), 'serve-lifecycle-'));
  [couch, vendor, dir] = await Promise.all([startTestCouch(), startSlowVendor(), konnectorsDir()]);
});

// Failover must hold on a machine with no idle CPU: every test here runs with every core busy.
let load: CpuLoad | undefined;
beforeEach(() => {
  load = saturateCpu();
});

afterEach(async () => {
  for (const p of processes.splice(0)) p.child.kill('SIGKILL');
  await load?.stop();
});

afterAll(async () => {
  await vendor?.stop();
  await couch?.stop();
  await rm(dataRoot, { recursive: true, force: true });
});

/** A host on the shared CouchDB, each test in its own databases (--db-prefix). */
async function serve(prefix: string, extra: string[] = []): Promise<{ proc: ServeProcess; api: Api }> {
  const proc = await spawnServe(['--konnectors', dir, '--couchdb', couch.url, '--db-prefix', prefix, '--concurrency', '2',
    '--lease', '5s', '--retry-delay', '50ms', '--data-dir', path.join(dataRoot, prefix),
    '--connect-to', `wait.example:80:127.0.0.1:${vendor.port}`, ...extra]);
  processes.push(proc);
  return { proc, api: apiClient(proc.url) };
}

async function newAccount(api: Api, instance: string, auth: Record<string, unknown>): Promise<string> {
  const { status, body } = await api('POST', '/accounts', { account_type: SLUG, instance, auth });
  expect(status, JSON.stringify(body)).toBe(201);
  return body._id;
}

const runningCount = async (api: Api) => (await api('GET', '/jobs?state=running')).body.jobs.length as number;

describe('kill -9 of the host mid-run', () => {
  it('runs again, after the lease expires, the jobs that were running; every job ends once', async () => {
    const first = await serve('killed');
    const instance = 'erin.cozy.example';
    const slow = await newAccount(first.api, instance, { login: 'slow', waitUrl: 'http://wait.example/wait?ms=2500' });
    const quick = await newAccount(first.api, instance, { login: 'quick' });
    const slowJobs = [];
    for (let i = 0; i < 2; i++) slowJobs.push((await first.api('POST', '/jobs', { account: slow })).body._id as string);
    await waitFor('both slow jobs to run', async () => (await runningCount(first.api)) === 2);
    const quickJobs = [];
    for (let i = 0; i < 6; i++) quickJobs.push((await first.api('POST', '/jobs', { account: quick })).body._id as string);
    const vendorCallsBefore = vendor.requests.length;

    first.proc.child.kill('SIGKILL');
    expect(await first.proc.exited).toBe(null);

    const second = await serve('killed');
    const jobs = await Promise.all([...slowJobs, ...quickJobs].map((id) => settledJob(second.api, id, 180_000)));
    for (const job of jobs) expect(job, JSON.stringify(job.history)).toMatchObject({ state: 'done', attempts: 1, error: null });
    for (const job of jobs.slice(0, 2)) {
      expect(job.interruptions).toBe(1);
      expect(job.history.map((a: { state: string }) => a.state)).toEqual(['interrupted', 'done']);
      expect(job.history[0].message).toMatch(/stopped renewing its lease/);
    }
    // The interrupted runs reached the vendor again; none of the jobs saved twice.
    expect(vendor.requests.length).toBeGreaterThanOrEqual(vendorCallsBefore + 2);
    const runs = await savedRuns(couch.url, instance);
    expect(runs.size).toBe(8);
    for (const job of jobs) expect(runs.get(job._id), job._id).toBe(1);
  }, 300_000); // generous: every core is busy
});

describe('SIGTERM', () => {
  it('drains: no new job, running jobs finish within the grace period, the rest go back to the queue', async () => {
    const first = await serve('drained', ['--grace', '6s']);
    const instance = 'frank.cozy.example';
    const short = await newAccount(first.api, instance, { login: 'short', waitUrl: 'http://wait.example/wait?ms=1000' });
    const long = await newAccount(first.api, instance, { login: 'long', waitUrl: 'http://wait.example/wait?ms=12000' });
    const shortJob = (await first.api('POST', '/jobs', { account: short })).body._id as string;
    const longJob = (await first.api('POST', '/jobs', { account: long })).body._id as string;
    await waitFor('both jobs to run', async () => (await runningCount(first.api)) === 2);
    const waitingJob = (await first.api('POST', '/jobs', { account: short })).body._id as string;

    first.proc.child.kill('SIGTERM');
    await waitFor('the host to start draining', async () => /SIGTERM: draining/.test(first.proc.output()));
    const refused = await first.api('POST', '/jobs', { account: short });
    expect(refused.status).toBe(503);
    expect(refused.body.error.message).toMatch(/draining/);
    expect(await first.proc.exited).toBe(0);
    // Every core is busy: which jobs finish within the grace depends on the machine, the accounting does not.
    const [, finished, givenBack] = /drained: (\d+) job\(s\) finished, (\d+) given back to the queue/.exec(first.proc.output()) ?? [];
    expect(Number(givenBack)).toBeGreaterThanOrEqual(1);
    expect(Number(finished) + Number(givenBack)).toBeLessThanOrEqual(2);

    const jobsDb = nano(couch.url).use<{ state: string; interruptions: number; attempts: number }>(
      decodeURIComponent(databaseName('drained', 'io.cozy.jobs')));
    // The 12 s job outlives the 6 s grace: given back, its attempt not counted.
    expect(await jobsDb.get(longJob)).toMatchObject({ state: 'queued', interruptions: 1, attempts: 0 });
    for (const id of [shortJob, waitingJob]) expect(['done', 'queued']).toContain((await jobsDb.get(id)).state);

    const second = await serve('drained');
    for (const id of [shortJob, longJob, waitingJob]) {
      const job = await settledJob(second.api, id, 180_000);
      expect(job, JSON.stringify(job.history)).toMatchObject({ state: 'done', attempts: 1 });
    }
    const all = [shortJob, longJob, waitingJob];
    const runs = await savedRuns(couch.url, instance);
    expect([...runs.keys()].sort()).toEqual(all.sort());
    expect([...runs.values()]).toEqual(all.map(() => 1));
  }, 300_000); // generous: every core is busy
});

describe('start-up checks', () => {
  it('refuses to start on a tampered artifact, naming it; the intact one starts (above)', async () => {
    const tampered = await mkdtemp(path.join(os.tmpdir(), 'serve-tampered-'));
    const file = path.join(tampered, `${SLUG}.kwasm`);
    await copyFile(path.join(dir, `${SLUG}.kwasm`), file);
    const bytes = await readFile(file);
    bytes[bytes.length - 100] ^= 0xff;
    await writeFile(file, bytes);
    const result = await konnectorCli(['serve', '--konnectors', tampered, '--couchdb', couch.url, '--port', '0'],
      { KONNECTOR_SERVE_TOKEN: 'test-token-0123456789abcdef' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(file);
    expect(result.stderr).toMatch(/content sha256 is [0-9a-f]{64}, the header records/);
    await rm(tampered, { recursive: true, force: true });
  });

  it('starts with no konnectors yet: an empty catalog, and a line saying how to add one', async () => {
    const fresh = path.join(await mkdtemp(path.join(os.tmpdir(), 'serve-first-')), 'konnectors');
    const proc = await spawnServe(['--konnectors', fresh, '--couchdb', couch.url, '--db-prefix', 'first', '--data-dir', path.join(dataRoot, 'first')]);
    processes.push(proc);
    expect(proc.output()).toContain(`no konnectors in ${fresh} yet: build one there, for instance \`konnector build konnectors/examples/example-bills --out`);
    const { status, body } = await apiClient(proc.url)('GET', '/konnectors');
    expect(status).toBe(200);
    expect(body.konnectors).toEqual([]);
  });

  it('refuses bad options with exit code 2 and the reason', async () => {
    for (const [args, reason] of [
      [['--lease', 'soon'], /--lease soon: not a duration/],
      [['--concurrency', '0'], /--concurrency 0: expected an integer >= 1/],
      [['--port', '70000'], /--port 70000: a port is at most 65535/],
      [['--redis', 'not a url'], /--redis not a url: not a URL/],
      [['--bogus'], /Unknown option '--bogus'/],
    ] as const) {
      const result = await konnectorCli(['serve', '--konnectors', dir, ...args], { KONNECTOR_SERVE_TOKEN: 'test-token-0123456789abcdef' });
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(reason);
    }
  });
});
