/**
 * The same jobs on both engines, through the runner's one job path (runner/sandbox/job.ts runJob): the
 * example konnector against its vendor site and a real CouchDB, a request the egress policy refuses and its
 * benign twin, fuel, wall-clock and memory limits, timers. Each body runs once per engine (test/support/engines.ts); the reports
 * have the same shape and the same codes.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShopSite } from '../../konnectors/examples/corner-shop/vendor-site.mts';
import { startVendorSite, type VendorSite } from '../../konnectors/examples/example-bills/vendor-site.mts';
import { startBookshopSite } from '../../konnectors/examples/paper-lantern-books/vendor-site.mts';
import { startWaterSite } from '../../konnectors/examples/riverside-water/vendor-site.mts';
import { parseOperatorHosts } from '../../host-api/http/policy.ts';
import type { LogLine } from '../../host-api/log.ts';
import { defaultLimits, type Limits } from '../../runner/limits.ts';
import { runJob, type JobEnvironment, type JobReport } from '../../runner/sandbox/job.ts';
import type { EngineName } from '../../runner/sandbox/pool.ts';
import { exampleDir, fixtureDir } from '../support/artifacts.ts';
import { startTestCouch, storedDocs, type TestCouch } from '../support/couch.ts';
import { ENGINES, instanceOn, loadOn } from '../support/engines.ts';

const MiB = 1024 * 1024;
const exampleBills = exampleDir('example-bills');
const probe = fixtureDir('sandbox-probe');

let site: VendorSite;
let couch: TestCouch;
let dataDir: string;
const reports: Partial<Record<EngineName, JobReport>> = {};

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'engines-'));
  [site, couch] = await Promise.all([startVendorSite(), startTestCouch()]);
}, 120_000);

afterAll(async () => {
  await site?.stop();
  await couch?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** Each engine's jobs write to an instance of their own. */
const instanceOf = (engine: EngineName, konnector = 'jane') => instanceOn(engine, `${konnector}.cozy.example`);

async function run(engine: EngineName, dir: string, fields: Record<string, unknown>, env: Partial<JobEnvironment> = {}, limits: Limits = defaultLimits, instance = instanceOf(engine)) {
  const lines: LogLine[] = [];
  const konnector = await loadOn(engine, dir, limits);
  const report = await runJob(konnector, { accountId: 'account-1', instance, fields }, {
    couchUrl: couch.url,
    limits,
    filesDir: path.join(dataDir, 'files'),
    connectTo: [{ host: 'energy.example', port: 80, toAddress: '127.0.0.1', toPort: site.port }],
    onLog: (line) => lines.push(line),
    ...env,
  });
  return { report, lines };
}

describe.each(ENGINES)('on %s', (engine) => {
  it('runs example-bills against its vendor site: the bills and their PDFs saved, nothing twice when run again', async () => {
    const { report, lines } = await run(engine, exampleBills, site.credentials);
    expect(report, lines.map((l) => l.message).join('\n')).toMatchObject({
      state: 'done', error: null, saved: { 'io.cozy.bills': site.bills.length, 'io.cozy.files': site.bills.length },
      requests: 4 + site.bills.length, budgets: { files: { used: site.bills.length } },
    });
    reports[engine] = report;
    const instance = instanceOf(engine);
    const bills = await storedDocs(couch.url, instance, 'io.cozy.bills');
    expect(bills.map((b) => ({ date: b.date.slice(0, 10), amount: b.amount, vendorRef: b.vendorRef })).sort((a, b) => a.date.localeCompare(b.date)))
      .toEqual(site.bills.map((b) => ({ date: b.date, amount: b.amount, vendorRef: b.vendorRef })));
    const files = (await storedDocs(couch.url, instance, 'io.cozy.files')).filter((doc) => doc.type === 'file');
    expect(files).toHaveLength(site.bills.length);
    for (const bill of bills) {
      expect(bill.cozyMetadata).toMatchObject({ createdByApp: 'example-bills', sourceAccount: 'account-1' });
      const file = files.find((f) => `io.cozy.files:${f._id}` === bill.invoice)!;
      const content = await readFile(path.join(dataDir, 'files', instance, 'Administrative', 'Example Energy', site.credentials.login, bill.filename));
      expect(file).toMatchObject({ name: bill.filename, md5sum: createHash('md5').update(content).digest('base64'), mime: 'application/pdf' });
      expect(content.toString('latin1')).toContain(`Example Energy bill ${bill.vendorRef}`);
    }

    const again = await run(engine, exampleBills, site.credentials);
    expect(again.report).toMatchObject({ state: 'done', saved: {}, requests: 4, budgets: { files: { used: 0 } } });
    expect(await storedDocs(couch.url, instance, 'io.cozy.bills')).toHaveLength(site.bills.length);
  }, 300_000);

  it("has a console whose output goes nowhere, as a component's: a package logging through it runs", async () => {
    const { report, lines } = await run(engine, fixtureDir('console-probe'), {});
    expect(report).toMatchObject({ state: 'done', error: null });
    expect(lines.map((line) => line.message)).toEqual(['console is object', 'after console']);
  }, 300_000);

  it("cannot reach its vendor when the operator's allowed hosts leave it out; listed, it can", async () => {
    const refused = await run(engine, exampleBills, site.credentials, { allowHosts: parseOperatorHosts(['https://*.other.example']) });
    expect(refused.report).toMatchObject({ state: 'errored', requests: 0, saved: {} });
    expect(refused.lines.some((l) => /http:\/\/energy\.example is not in the operator's allowedHosts/.test(l.message))).toBe(true);

    const allowed = await run(engine, exampleBills, site.credentials, { allowHosts: parseOperatorHosts(['energy.example']) });
    expect(allowed.report).toMatchObject({ state: 'done', error: null, requests: 4 });
  }, 300_000);

  it('ends an endless loop at its fuel budget with LIMIT_EXCEEDED.FUEL; a bounded loop is done within it', async () => {
    const limits: Limits = { ...defaultLimits, fuel: 2_000_000_000, wallClockMs: 120_000 };
    const spinner = await run(engine, probe, { mode: 'spin', quiet: true }, {}, limits);
    expect(spinner.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.FUEL', fuelLimit: limits.fuel });
    expect(spinner.report.fuelUsed).toBeGreaterThanOrEqual(limits.fuel);

    const twin = await run(engine, probe, { mode: 'spin', iterations: 10_000, quiet: true }, {}, limits);
    expect(twin.report).toMatchObject({ state: 'done', error: null });
    expect(twin.report.fuelUsed).toBeLessThan(limits.fuel);
  }, 300_000);

  it('ends an endless loop at the wall clock with LIMIT_EXCEEDED.WALL_CLOCK; a job sleeping on its timers fires them in order, in time', async () => {
    const limits: Limits = { ...defaultLimits, wallClockMs: 3000 };
    const spinner = await run(engine, probe, { mode: 'spin', quiet: true }, {}, limits);
    expect(spinner.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.WALL_CLOCK' });

    const timers = await run(engine, probe, { mode: 'timers', quiet: true }, {}, limits);
    expect(timers.report).toMatchObject({ state: 'done', error: null });
    expect(timers.lines.map((line) => line.message)).toContain('tick,tick,a,tick,b');
  }, 300_000);

  it('ends an allocation loop at the memory cap with LIMIT_EXCEEDED.MEMORY; a bounded allocation is done', async () => {
    const limits: Limits = { ...defaultLimits, memoryBytes: 64 * MiB, wallClockMs: 120_000 };
    const hog = await run(engine, probe, { mode: 'allocate', quiet: true }, {}, limits);
    expect(hog.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.MEMORY' });
    expect(hog.report.memoryPeakBytes).toBeLessThanOrEqual(limits.memoryBytes);

    const twin = await run(engine, probe, { mode: 'allocate', chunks: 2, quiet: true }, {}, limits);
    expect(twin.report).toMatchObject({ state: 'done', error: null });
    expect(twin.lines.some((l) => l.message === `allocated 2 chunks of ${8 * MiB} bytes`)).toBe(true);
  }, 300_000);
});

/** The other examples, each with its vendor site: what a run saves and requests. */
const OTHER_EXAMPLES = [
  { name: 'corner-shop', start: startShopSite, host: 'shop.example' },
  { name: 'paper-lantern-books', start: startBookshopSite, host: 'books.example' },
  { name: 'riverside-water', start: startWaterSite, host: 'water.example' },
];

describe('both engines', () => {
  it.each(OTHER_EXAMPLES)('run $name against its vendor site: the same documents, files and requests, twice', async ({ name, start, host }) => {
    const vendor = await start();
    try {
      const runs: Record<string, unknown> = {};
      for (const engine of ENGINES) {
        const connectTo = [{ host, port: 80, toAddress: '127.0.0.1', toPort: vendor.port }];
        const once = () => run(engine, exampleDir(name), vendor.credentials, { connectTo }, defaultLimits, instanceOf(engine, name));
        const first = await once();
        const second = await once();
        for (const { report, lines } of [first, second]) {
          expect(report, lines.map((l) => l.message).join('\n')).toMatchObject({ state: 'done', error: null });
        }
        runs[engine] = [first, second].map(({ report }) => ({ saved: report.saved, requests: report.requests, files: report.budgets.files.used }));
      }
      expect(runs['quickjs']).toEqual(runs['componentize-js']);
      expect((runs['quickjs'] as Array<{ files: number }>)[0]!.files).toBeGreaterThan(0);
    } finally {
      await vendor.stop();
    }
  }, 300_000);

  it('report the same shape: the same keys and budgets', () => {
    const [component, quickjs] = ENGINES.map((engine) => reports[engine]);
    expect(component && quickjs, 'example-bills ran on both engines').toBeTruthy();
    const shape = (report: JobReport) => ({ keys: Object.keys(report).sort(), budgets: Object.keys(report.budgets).sort() });
    expect(shape(quickjs!)).toEqual(shape(component!));
  });
});
