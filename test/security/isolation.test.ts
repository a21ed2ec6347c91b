/**
 * Data isolation between konnectors and the host's own resources, end to end:
 * hostile-data (built with the real `konnector build`) goes after other
 * konnectors' kept sessions and files and after the host's own work, in jobs
 * on the embedded CouchDB, beside a victim konnector. Each attack has a benign
 * twin that must succeed. docs/security.md states the invariant tested here.
 *
 * The victim is the same compiled component run under another manifest (slug,
 * name, permissions, folder): the host only knows a konnector by its manifest.
 * Every test runs on both engines (test/support/engines.ts), each engine's jobs
 * on a Cozy instance of their own.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nano from 'nano';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { databaseName } from '../../host-api/documents.ts';
import { SESSIONS_DOCTYPE } from '../../host-api/job-scope.ts';
import { formatTextLine } from '../../host-api/log.ts';
import type { JobEnvironment } from '../../runner/sandbox/job.ts';
import { LimitsSchema, type Limits } from '../../runner/limits.ts';
import type { LoadedKonnector } from '../../runner/sandbox/loader.ts';
import type { EngineName } from '../../runner/sandbox/pool.ts';
import type { Manifest } from '../../runner/compile/manifest.ts';
import { fixtureDir } from '../support/artifacts.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';
import { ENGINES, instanceOn, loadOn } from '../support/engines.ts';
import { describeOutcome, runHostile, startVendorSite, type HostileRun, type Outcome } from './support.ts';
import { AttackTable } from './table.ts';

const MiB = 1024 * 1024;
const limits: Limits = LimitsSchema.parse({
  memoryBytes: 64 * MiB,
  wallClockMs: 30_000,
  http: { maxRequests: 50, maxCookies: 500, maxSessionBytes: 16 * 1024 },
  documents: { maxFinds: 20 },
  files: { maxFiles: 5, maxStats: 20 },
});

const table = new AttackTable();
let couch: TestCouch;
let tmp: string;
let vendor: Awaited<ReturnType<typeof startVendorSite>>;

/** The same component under another manifest: what the host knows a konnector by. */
function withManifest(konnector: LoadedKonnector, changes: Partial<Manifest>): LoadedKonnector {
  const { header } = konnector;
  return { ...konnector, header: { ...header, manifest: { ...header.manifest, ...changes } } };
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'isolation-'));
  [couch, vendor] = await Promise.all([startTestCouch(), startVendorSite()]);
});

afterAll(async () => {
  await Promise.all([couch?.stop(), vendor?.stop()]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
  console.log(`\n${table.format()}\n`);
});

describe.each(ENGINES)('on %s', (engine: EngineName) => {
  /** Each engine's jobs on an instance of their own: their sessions, files and documents apart. */
  const INSTANCE = instanceOn(engine, 'hostile.cozy.localhost');
  const row = (attack: string, expected: string) => table.row(attack, expected, engine);
  let attacker: LoadedKonnector;
  /** The victim: a konnector keeping its vendor session and saving bills in its own folder. */
  let victim: LoadedKonnector;

  beforeAll(async () => {
    attacker = await loadOn(engine, fixtureDir('hostile-data'), limits);
    victim = withManifest(attacker, {
      slug: 'victim-energy',
      name: 'Victim Energy',
      permissions: { probes: { type: 'io.cozy.probes' } },
      folders: [{ defaultDir: '$administrative/$konnector/$account' }],
    });
  }, 120_000);

  function env(extra: Partial<JobEnvironment> = {}): JobEnvironment {
    return { couchUrl: couch.url, limits, connectTo: [vendor.connectTo], filesDir: path.join(tmp, 'files'), ...extra };
  }

  type Step = Record<string, unknown> & { op: string };

  /** One job of `konnector` doing `steps`; outcome(i) is what step i gave the guest. */
  async function job(konnector: LoadedKonnector, steps: Step[], account?: string, fields: Record<string, unknown> = {}, extra: Partial<JobEnvironment> = {}) {
    const run = await runHostile(konnector, { login: 'jane', steps, ...fields }, env(extra), account, INSTANCE);
    return { ...run, outcome: (i = 0): Outcome | undefined => run.outcomes.find((o) => o.step === i) };
  }

  function expectDone(run: HostileRun) {
    expect(run.report).toMatchObject({ state: 'done', error: null });
  }

  const sessions = () => nano(couch.url).use<{ cookies: string }>(decodeURIComponent(databaseName(INSTANCE, SESSIONS_DOCTYPE)));

  describe('vendor sessions kept for other konnectors', () => {
    test("a manifest granting the session database under another spelling can neither read nor rewrite it; the victim's session resumes", async () => {
      const observeRead = row('documents.find io.cozy.konnector.runner.sessions (granted by the manifest)', "forbidden: the runner's database");
      const observeWrite = row('documents.save a forged session (fixation)', "forbidden; the victim's next job sends its own cookie");
      const login = await job(victim, [{ op: 'request', url: 'http://vendor.test/login?as=victim' }, { op: 'keep' }], 'victim-account');
      expectDone(login);
      const kept = await sessions().get('victim-energy:victim-account');
      expect(kept.cookies).toContain('victim');

      const theft = await job(attacker, [
        { op: 'find', doctype: 'io.cozy.konnector.runner.sessions', selector: {} },
        { op: 'save', doctype: 'io.cozy.konnector.runner.sessions', doc: { _id: 'victim-energy:victim-account', cookies: 'forged' } },
        { op: 'find', doctype: 'io.cozy.probes', selector: {} },
      ]);
      observeRead(describeOutcome(theft.outcome(0)));
      observeWrite(describeOutcome(theft.outcome(1)));
      expectDone(theft);
      for (const i of [0, 1]) {
        expect(theft.outcome(i)).toMatchObject({ ok: false, kind: 'forbidden', message: expect.stringMatching(/runner's own doctype \(vendor sessions\)/) });
      }
      expect(theft.outcome(2)).toMatchObject({ ok: true, count: 0 });
      expect(JSON.stringify(theft.outcomes)).not.toContain('session=victim');

      const next = await job(victim, [{ op: 'request', url: 'http://vendor.test/whoami' }], 'victim-account');
      expect(next.outcome()).toMatchObject({ ok: true, text: 'session=victim' });
      expect((await sessions().get('victim-energy:victim-account'))._rev).toBe(kept._rev);
    });
  });

  describe("another konnector's files", () => {
    const victimFile = () => path.join(tmp, 'files', INSTANCE, 'Administrative', 'Victim Energy', 'jane', 'bill.pdf');

    test("a manifest naming the victim's folder saves in its own; a konnector named like the victim is refused its files", async () => {
      const observePath = row('manifest folder "$administrative/Victim Energy/jane", save bill.pdf replace=true', "its own folder is used; victim's file intact");
      const observeName = row('konnector named "Victim Energy": save/stat the victim\'s bill.pdf', 'forbidden; its own files saved');
      const saved = await job(victim, [{ op: 'file', path: 'bill.pdf', text: '%PDF-1.4 victim' }], 'victim-account');
      expect(saved.outcome()).toMatchObject({ ok: true });

      const byPath = await job(attacker, [
        { op: 'stat', path: 'bill.pdf' },
        { op: 'file', path: 'bill.pdf', text: '%PDF-1.4 attacker', replace: true },
      ], 'attacker-account');
      observePath(`stat -> ${JSON.stringify(byPath.outcome(0)?.doc)}; save -> ${describeOutcome(byPath.outcome(1))}`);
      expect(byPath.outcome(0)).toMatchObject({ ok: true, doc: null });
      expect(byPath.outcome(1)).toMatchObject({ ok: true, doc: { name: 'bill.pdf' } });
      const attackerFile = path.join(tmp, 'files', INSTANCE, 'Administrative', 'Hostile data konnector', 'jane', 'bill.pdf');
      expect(await readFile(attackerFile, 'utf8')).toBe('%PDF-1.4 attacker');

      const namesake = withManifest(attacker, { name: 'Victim Energy', folders: [{ defaultDir: '$administrative/$konnector/$account' }] });
      const byName = await job(namesake, [
        { op: 'stat', path: 'bill.pdf' },
        { op: 'file', path: 'bill.pdf', text: '%PDF-1.4 attacker', replace: true },
        { op: 'file', path: 'evil.pdf', text: '%PDF-1.4 planted' },
      ], 'attacker-account', { login: 'mallory' });
      // Its own account's folder works: the twin.
      const own = await job(namesake, [{ op: 'file', path: 'own.pdf', text: '%PDF-1.4 own' }], 'attacker-account', { login: 'mallory' });
      const takeover = await job(namesake, [
        { op: 'stat', path: 'bill.pdf' },
        { op: 'file', path: 'bill.pdf', text: '%PDF-1.4 attacker', replace: true },
      ], 'attacker-account');
      observeName(`stat -> ${describeOutcome(takeover.outcome(0))}; save -> ${describeOutcome(takeover.outcome(1))}`);
      expect(byName.outcome(2)).toMatchObject({ ok: true });
      expect(own.outcome()).toMatchObject({ ok: true, doc: { name: 'own.pdf' } });
      for (const i of [0, 1]) {
        expect(takeover.outcome(i)).toMatchObject({ ok: false, kind: 'forbidden', message: expect.stringMatching(/"\/Administrative\/Victim Energy\/jane(\/bill\.pdf)?" was created by another konnector/) });
      }
      expect(JSON.stringify(takeover.outcomes)).not.toContain('md5sum');
      expect(await readFile(victimFile(), 'utf8')).toBe('%PDF-1.4 victim');
    });
  });

  describe("the host's own work", () => {
    test('a $regex selector that backtracks for hours is refused at once; a range selector on the same data works', async () => {
      const observe = row('documents.find {"$regex": "^(a+)+$"} on 40 "a"s and "!"', 'invalid at once; $gt selector works');
      const started = performance.now();
      const run = await job(attacker, [
        { op: 'save', doctype: 'io.cozy.probes', doc: { name: `${'a'.repeat(40)}!` } },
        { op: 'find', doctype: 'io.cozy.probes', selector: { name: { $regex: '^(a+)+$' } } },
        { op: 'find', doctype: 'io.cozy.probes', selector: { $or: [{ name: { $not: { $regex: '(a|a)+$' } } }] } },
        { op: 'find', doctype: 'io.cozy.probes', selector: { name: { $gt: 'a' } } },
      ]);
      const ms = Math.round(performance.now() - started);
      observe(`${describeOutcome(run.outcome(1))}; job took ${ms} ms`);
      expectDone(run);
      for (const i of [1, 2]) {
        expect(run.outcome(i)).toMatchObject({ ok: false, kind: 'invalid', message: expect.stringMatching(/\$regex operator is refused/) });
      }
      expect(run.outcome(3)).toMatchObject({ ok: true, count: 1 });
      expect(ms).toBeLessThan(20_000);
    });

    test('a vendor flooding Set-Cookie fills the jar up to maxCookies with a warning, the kept session stays bounded; a few cookies are all kept', async () => {
      const { maxCookies, maxSessionBytes } = limits.http;
      const observe = row('vendor answers 20 requests with 150 Set-Cookie each, session kept', `jar takes ${maxCookies}, session <= ${maxSessionBytes} bytes, warned`);
      const flood = await job(victim, [{ op: 'request', url: 'http://vendor.test/cookies?n=150', repeat: 20 }, { op: 'keep' }], 'flooded-account');
      const kept = await sessions().get('victim-energy:flooded-account');
      const bytes = Buffer.byteLength(kept.cookies);
      const warnings = flood.runnerLines.filter((l) => l.level === 'warning').map((l) => l.message);
      observe(`${flood.report.state}; session ${bytes} bytes, ${(JSON.parse(kept.cookies) as { cookies: unknown[] }).cookies.length} cookies; ${warnings.join(' / ')}`);
      expectDone(flood);
      expect(bytes).toBeLessThanOrEqual(maxSessionBytes);
      expect(warnings).toContainEqual(expect.stringMatching(new RegExp(`took ${maxCookies} set-cookie values \\(maxCookies\\): later ones are dropped`)));
      expect(warnings).toContainEqual(expect.stringMatching(/the vendor session is cut to its \d+ newest cookies of 150/));

      const twin = await job(victim, [{ op: 'request', url: 'http://vendor.test/cookies?n=10' }, { op: 'keep' }], 'plain-account');
      expectDone(twin);
      expect(twin.runnerLines.filter((l) => l.level === 'warning')).toEqual([]);
      const plain = await sessions().get('victim-energy:plain-account');
      expect((JSON.parse(plain.cookies) as { cookies: unknown[] }).cookies).toHaveLength(10);
    });

    test('a 5,000,000-character failure message is cut like a log line in the report; a short one stays whole', async () => {
      const max = limits.log.maxLineBytes;
      const observe = row('fail with a 5,000,000-character message', `report.message cut at ${max} bytes`);
      const run = await job(attacker, [], undefined, { fail: 'x', failRepeat: 5_000_000 });
      observe(`${run.report.error}: ${run.report.message!.length} characters`);
      expect(run.report).toMatchObject({ state: 'errored', error: 'VENDOR_DOWN' });
      expect(run.report.message).toBe(`${'x'.repeat(max)}… [line cut at ${max} bytes]`);
      const twin = await job(attacker, [], undefined, { fail: 'the vendor is down' });
      expect(twin.report).toMatchObject({ state: 'errored', error: 'VENDOR_DOWN', message: 'the vendor is down' });
    });

    test('files 31 folders deep: sub-folders count with files, the job ends at maxFiles; shallow files fit', async () => {
      const { maxFiles } = limits.files;
      const observe = row(`save files 31 folders deep under maxFiles=${maxFiles}`, 'LIMIT_EXCEEDED.FILES; folder documents counted');
      const deep = Array.from({ length: 31 }, (_, i) => `d${i}`).join('/');
      const run = await job(attacker, [1, 2, 3, 4, 5].map((n) => ({ op: 'file', path: `${deep}/f${n}.pdf`, text: '%PDF-1.4' })), 'deep-account', { login: 'deep' });
      const folders = (await nano(couch.url).use<{ type: string; path?: string }>(decodeURIComponent(databaseName(INSTANCE, 'io.cozy.files')))
        .list({ include_docs: true })).rows.filter((r) => r.doc?.path?.startsWith('/Administrative/Hostile data konnector/deep/')).length;
      observe(`${run.report.error}: ${run.report.message}; ${folders} sub-folder documents`);
      expect(run.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.FILES' });
      expect(folders).toBeLessThan(maxFiles);
      const twin = await job(attacker, [1, 2, 3].map((n) => ({ op: 'file', path: `2024/f${n}.pdf`, text: '%PDF-1.4' })), 'shallow-account', { login: 'shallow' });
      expectDone(twin);
      expect(twin.report.budgets.files.used).toBe(4);
    });

    test('find and stat calls are budgeted per job; as many as the budget allow pass', async () => {
      const { maxFinds } = limits.documents;
      const { maxStats } = limits.files;
      const observeFind = row(`${maxFinds + 1} documents.find calls`, 'LIMIT_EXCEEDED.DOCUMENTS_FINDS');
      const observeStat = row(`${maxStats + 1} files.stat calls`, 'LIMIT_EXCEEDED.FILES_STATS');
      const finds = (n: number) => Array.from({ length: n }, () => ({ op: 'find', doctype: 'io.cozy.probes' }));
      const stats = (n: number) => Array.from({ length: n }, () => ({ op: 'stat', path: 'missing.pdf' }));
      const [findFlood, statFlood, twin] = await Promise.all([
        job(attacker, finds(maxFinds + 1)),
        job(attacker, stats(maxStats + 1)),
        job(attacker, [...finds(maxFinds), ...stats(maxStats)]),
      ]);
      observeFind(`${findFlood.report.error}: ${findFlood.report.message}`);
      observeStat(`${statFlood.report.error}: ${statFlood.report.message}`);
      expect(findFlood.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.DOCUMENTS_FINDS' });
      expect(statFlood.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.FILES_STATS' });
      expectDone(twin);
      expect(twin.outcomes.filter((o) => o.ok)).toHaveLength(maxFinds + maxStats);
    });
  });

  describe('small ones', () => {
    test('a log message with a newline and a forged critical line stays one line in text and JSON output; a plain one is unchanged', async () => {
      const forged = 'fine\n{"type":"critical","message":"forged"}\r\n2026-01-01T00:00:00.000Z critical [runner] forged';
      const observe = row('log "fine\\n{\\"type\\":\\"critical\\"...}" (forge a line)', 'one line per log call, text and JSON');
      const run = await runHostile(attacker, { steps: [{ op: 'log', message: forged }, { op: 'log', message: 'plain' }] }, env(), undefined, INSTANCE);
      expectDone(run);
      const [forgedLine, plainLine] = run.lines.filter((l) => l.message === forged || l.message === 'plain');
      const text = formatTextLine(forgedLine!);
      observe(text);
      expect(text.split('\n')).toHaveLength(1);
      expect(text).toContain('fine\\n{"type":"critical","message":"forged"}\\r\\n');
      expect(JSON.stringify({ type: forgedLine!.level, message: forgedLine!.message }).split('\n')).toHaveLength(1);
      expect(formatTextLine(plainLine!)).toMatch(/ info {5}plain$/);
    });

    test('an _id CouchDB cannot store (a lone surrogate) is invalid, not unavailable; a valid one is saved', async () => {
      const observe = row('documents.save with _id "x\\ud800"', 'invalid (not a retryable unavailable)');
      const run = await job(attacker, [
        { op: 'save', doctype: 'io.cozy.probes', doc: { _id: 'x\ud800' } },
        { op: 'save', doctype: 'io.cozy.probes', doc: { _id: 'x\u{1F600}' } },
      ]);
      observe(describeOutcome(run.outcome(0)));
      expect(run.outcome(0)).toMatchObject({ ok: false, kind: 'invalid', message: expect.stringMatching(/lone surrogate/) });
      expect(run.outcome(1)).toMatchObject({ ok: true, id: 'x\u{1F600}' });
    });
  });
});
