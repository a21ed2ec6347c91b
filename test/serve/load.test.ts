import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLoad, enqueueLoad, readOutcome, waitForLoadToEnd } from '../support/serve-load.ts';
import { defaultServeOptions, type ServeHost } from '../../runner/serve/host.ts';
import { apiClient, konnectorsDir, startTestHost } from './support.ts';

const JOBS = 1000;

let host: ServeHost;

beforeAll(async () => {
  // The production lease: one host has nobody to fail over to, and a 3 s lease lapses on a busy machine
  // (renewals are CouchDB writes), rerunning jobs for nothing. Short leases are the failover tests' business.
  host = await startTestHost({ konnectorsDir: await konnectorsDir(), leaseMs: defaultServeOptions().leaseMs });
});

afterAll(async () => {
  await host?.drain(0);
});

describe('a thousand jobs across 20 accounts, 5% of them hostile or crashing', () => {
  it('ends every job once: benign ones done with their document, hostile ones errored with their code', async () => {
    const load = await enqueueLoad(apiClient(host.url), JOBS);
    expect(load.jobs.size).toBe(JOBS);
    await waitForLoadToEnd(host.store, 540_000);
    // Every kind of finding empty; a failure lists each one by job and cause.
    const audit = auditLoad(load, await readOutcome(host, load));
    expect(audit).toEqual(Object.fromEntries(Object.keys(audit).map((kind) => [kind, []])));
  }, 600_000); // a generous deadline: the machine may be busy with other work
});
