/**
 * request-shop, written the way catalog konnectors were before requestFactory: request-promise with its own jar,
 * lodash, bluebird and moment, none of them declared. Built from a folder outside this project (as a catalog
 * konnector is, so nothing resolves from the project by accident) and run in the sandbox against its vendor site.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simplePdf } from '../../konnectors/examples/vendor-kit.ts';
import { CREDENTIALS, startRequestShopSite } from '../fixtures/konnectors/request-shop/vendor-site.mts';
import { fixtureDir } from '../support/artifacts.ts';
import { storedDocs } from '../support/couch.ts';
import { ENGINES, instanceOn, siteOfEachEngine } from '../support/engines.ts';
import { runPorted, startPortedEnv, type PortedEnv } from './ported.ts';

let outside: string;
let konnectorDir: string;
let env: PortedEnv;

beforeAll(async () => {
  outside = await mkdtemp(path.join(os.tmpdir(), 'catalog-'));
  konnectorDir = path.join(outside, 'request-shop');
  await cp(fixtureDir('request-shop'), konnectorDir, { recursive: true });
  env = await startPortedEnv();
});

afterAll(async () => {
  await env?.stop();
  if (outside) await rm(outside, { recursive: true, force: true });
});

describe.each(ENGINES)('request-shop: request, lodash, bluebird and moment as catalog konnectors require them, on %s', (engine) => {
  const INSTANCE = instanceOn(engine, 'jane.cozy.example');
  /** Each engine's own site: its sessions and acknowledgements are that engine's jobs'. */
  const site = siteOfEachEngine(startRequestShopSite);

  const run = (fields: Record<string, unknown>, accountId: string) =>
    runPorted(env, engine, konnectorDir, { instance: INSTANCE, accountId, fields, vendor: { host: 'shop.example', port: site().port } });

  it('signs in with its jar, fetches the bills, their gzip PDFs, posts a multipart form and saves the bills', async () => {
    const { report, messages } = await run(CREDENTIALS, 'request-shop-1');
    expect(report, messages.join('\n')).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.bills': 2 } });
    expect(messages).toContain('Signed in, landed on /account');
    expect(site().sessions).toHaveLength(1);
    expect(site().acks).toEqual([{ count: '2', note: 'merci', filename: 'note.txt' }]);
    const bills = (await storedDocs(env.couchUrl, INSTANCE, 'io.cozy.bills')).map(({ _id, _rev, cozyMetadata, ...bill }) => bill);
    expect(bills.sort((a, b) => a.date.localeCompare(b.date))).toEqual([
      {
        vendor: 'Request Shop', vendorRef: 'RS-1', amount: 30, date: '2024-01-02', label: 'Facture de janvier',
        dateLabel: '2 janvier 2024', pdfBytes: simplePdf('Bill RS-1').length, pdfHeader: '%PDF-', receipt: 'ACK-2-merci', sessionCookieLength: 32,
      },
      {
        vendor: 'Request Shop', vendorRef: 'RS-2', amount: 12.5, date: '2024-03-14', label: 'Facture de mars',
        dateLabel: '14 mars 2024', pdfBytes: simplePdf('Bill RS-2').length, pdfHeader: '%PDF-', receipt: 'ACK-2-merci', sessionCookieLength: 32,
      },
    ]);
  });

  it('the twin: a wrong password is refused by the site, the job ends with an error and saves nothing more', async () => {
    const { report } = await run({ ...CREDENTIALS, password: 'wrong' }, 'request-shop-2');
    expect(report).toMatchObject({ state: 'errored' });
    expect(report.saved).toEqual({});
    expect(site().sessions).toHaveLength(1);
  });
});
