/**
 * oauth-api: an OAuth 1.0a-signed JSON API over https through the `oauth` package (Node's https module in the
 * guest), against a local TLS site whose certificate the job's host trusts through the test CA. Its manifest asks for
 * no folder, the way of konnectors that only save documents.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT, EXPENSES, startOAuthSite, TEST_CA } from '../fixtures/konnectors/oauth-api/vendor-site.mts';
import { fixtureDir } from '../support/artifacts.ts';
import { storedDocs } from '../support/couch.ts';
import { ENGINES, instanceOn, siteOfEachEngine } from '../support/engines.ts';
import { runPorted, startPortedEnv, type PortedEnv } from './ported.ts';

const KONNECTOR = fixtureDir('oauth-api');

let env: PortedEnv;

beforeAll(async () => {
  env = await startPortedEnv();
});

afterAll(async () => {
  await env?.stop();
});

describe.each(ENGINES)('oauth-api: OAuth 1.0a over https with the oauth package, on %s', (engine) => {
  const INSTANCE = instanceOn(engine, 'jane.cozy.example');
  /** Each engine's own site: the requests it refused are that engine's jobs'. */
  const site = siteOfEachEngine(startOAuthSite);

  /** `ca`: the CA the job's host trusts beside Node's roots (the test CA by default). */
  const run = (fields: Record<string, unknown>, accountId: string, ca = TEST_CA) =>
    runPorted(env, engine, KONNECTOR, { instance: INSTANCE, accountId, fields, vendor: { host: 'vendor.test', port: site().port, ca } });

  it('signs its request, which the site verifies, and saves the expenses', async () => {
    const { report, messages } = await run(CLIENT, 'oauth-1');
    expect(report, messages.join('\n')).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.bills': 2 } });
    expect(site().refused).toBe(0);
    const bills = (await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.bills')).map(({ _id, _rev, cozyMetadata, ...bill }) => bill);
    expect(bills.sort((a, b) => a.vendorRef.localeCompare(b.vendorRef))).toEqual(
      EXPENSES.map((e) => ({ vendor: 'OAuth API', vendorRef: String(e.id), amount: Number(e.cost), date: e.date, label: e.description })),
    );
    // Its manifest asks for no folder (no `folders`, no legacy folderPath field): none is made, nor any file.
    expect(await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.files')).toEqual([]);
    await expect(readdir(path.join(env.filesDir, INSTANCE))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the twin: signed with another secret, the site refuses it and the job errors with its 401', async () => {
    const { report } = await run({ ...CLIENT, tokenSecret: 'not-the-secret' }, 'oauth-2');
    expect(report).toMatchObject({ state: 'errored', message: expect.stringContaining('401') });
    expect(report.saved).toEqual({});
    expect(site().refused).toBe(1);
  });

  it('without the test CA trusted, the certificate is refused and nothing reaches the API', async () => {
    const { report, messages } = await run(CLIENT, 'oauth-3', '');
    expect(report, messages.join('\n')).toMatchObject({ state: 'errored', message: expect.stringMatching(/certificate/i) });
    expect(report.saved).toEqual({});
    expect(site().refused).toBe(1);
  });
});
