import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogLine } from '../../host-api/log.ts';
import { runJob, type JobReport } from '../../runner/sandbox/job.ts';
import { defaultLimits, type Limits } from '../../runner/limits.ts';
import { describeComponent, loadKonnector } from '../../runner/sandbox/loader.ts';
import { artifactComponent } from '../../runner/compile/artifact.ts';
import { buildOnce, fixtureDir, loadOnce, readComponentArtifact } from '../support/artifacts.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';
import { databaseName } from '../../host-api/couchdb.ts';
import { JobGate } from '../../runner/serve/job-gate.ts';
import { JobStopped } from '../../runner/sandbox/sandbox.ts';

const probe = fixtureDir('sandbox-probe');
const MiB = 1024 * 1024;
const limits: Limits = { ...defaultLimits, memoryBytes: 64 * MiB, wallClockMs: 4000 };

let couch: TestCouch;

beforeAll(async () => {
  couch = await startTestCouch();
  await buildOnce(probe);
});

afterAll(async () => {
  await couch?.stop();
});

async function runProbe(
  fields: Record<string, unknown>,
  jobLimits: Limits = limits,
  more: { jobId?: string; gate?: JobGate; lines?: LogLine[]; onLog?: (line: LogLine) => void } = {},
): Promise<{ report: JobReport; lines: LogLine[] }> {
  const lines = more.lines ?? [];
  const konnector = await loadOnce(probe, jobLimits);
  const onLog = (line: LogLine) => {
    lines.push(line);
    more.onLog?.(line);
  };
  const report = await runJob(
    konnector,
    { jobId: more.jobId, accountId: 'probe-account', instance: 'sandbox.cozy.localhost', fields },
    { couchUrl: couch.url, limits: jobLimits, ...(more.gate ? more.gate.environment(onLog) : { onLog }) },
  );
  return { report, lines };
}

/** The document the probe's benign run saves under its job id, if any. */
async function probeDocument(jobId: string): Promise<number> {
  const db = databaseName('sandbox.cozy.localhost', 'io.cozy.probes');
  return (await fetch(`${couch.url}/${db}/${encodeURIComponent(jobId)}`)).status;
}

/** The probe's benign run logs one JSON line describing what it sees. */
function sandboxView(lines: LogLine[]) {
  const line = lines.find((l) => l.source === 'konnector' && l.message.startsWith('{'));
  expect(line, 'the probe logged its view of the sandbox').toBeDefined();
  return JSON.parse(line!.message) as {
    process: string;
    processEnv: string;
    performance: unknown;
    require: string;
    WebAssembly: string;
    Deno: string;
    now: number;
    newDate: number;
    randoms: number[];
    cryptoRandom: number[];
  };
}

describe('the sandbox', () => {
  it('shows the guest no process, require, WebAssembly or host runtime, but a live millisecond clock and host randomness', async () => {
    const before = Date.now();
    const first = await runProbe({});
    const after = Date.now();
    expect(first.report).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.probes': 1 } });
    const view = sandboxView(first.lines);
    expect(view).toMatchObject({ process: 'undefined', require: 'undefined', WebAssembly: 'undefined', Deno: 'undefined' });
    // The konnector's own `process` is the build's stand-in: what the konnector wrote and the non-secret values
    // cozy-stack gives a job, nothing of the host and no credential.
    expect(JSON.parse(view.processEnv)).toEqual({
      SENTRY_DSN: 'https://sentry.example/1',
      COZY_FIELDS: JSON.stringify({ account: 'probe-account', konnector: 'sandbox-probe' }),
      COZY_PARAMETERS: '{}',
      COZY_JOB_ID: first.report.jobId,
      COZY_JOB_MANUAL_EXECUTION: 'false',
      COZY_LOCALE: 'en',
      COZY_TIME_LIMIT: String(limits.wallClockMs / 1000),
    });
    // The clock is the host's, not the instant the snapshot was taken at build time.
    expect(view.now).toBeGreaterThanOrEqual(before);
    expect(view.now).toBeLessThanOrEqual(after);
    expect(view.newDate).toBeGreaterThanOrEqual(view.now);
    // performance.now() counts from the job's start in whole milliseconds: no finer timer reaches the guest.
    const [t1, t2] = view.performance as number[];
    expect([Number.isInteger(t1), Number.isInteger(t2), Number.isInteger(view.now)]).toEqual([true, true, true]);
    expect(t1).toBeGreaterThanOrEqual(0);
    expect(t2).toBeGreaterThanOrEqual(t1!);
    expect(t2).toBeLessThanOrEqual(after - before);

    const second = sandboxView((await runProbe({})).lines);
    expect(second.randoms).not.toEqual(view.randoms);
    expect(second.cryptoRandom).not.toEqual(view.cryptoRandom);
  });

  it('builds a component importing nothing beyond cozy:konnector/* and wasi:random/*', async () => {
    const { imports, exports } = await describeComponent(artifactComponent(await readComponentArtifact(await buildOnce(probe))));
    expect(imports.length).toBeGreaterThan(0);
    for (const name of imports) expect(name).toMatch(/^(cozy:konnector\/(http|documents|files|log|clock)|wasi:random\/[a-z-]+)@/);
    expect(exports).toEqual(['run']);
  });

  it('ends an allocation loop at the memory cap as a clean errored job; a bounded allocation succeeds', async () => {
    const hog = await runProbe({ mode: 'allocate' });
    expect(hog.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.MEMORY' });
    expect(hog.report.memoryPeakBytes).toBeLessThanOrEqual(limits.memoryBytes);

    const twin = await runProbe({ mode: 'allocate', chunks: 2 });
    expect(twin.report).toMatchObject({ state: 'done', error: null });
    expect(twin.lines.some((l) => l.message === `allocated 2 chunks of ${8 * MiB} bytes`)).toBe(true);
  });

  it('ends one allocation larger than the memory cap as the memory limit, though memory stays far below it; a fitting one succeeds', async () => {
    const greedy = await runProbe({ mode: 'allocate', chunkBytes: 4 * limits.memoryBytes, chunks: 1 });
    expect(greedy.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.MEMORY' });
    expect(greedy.report.memoryPeakBytes).toBeLessThan(limits.memoryBytes / 2);

    const twin = await runProbe({ mode: 'allocate', chunkBytes: limits.memoryBytes / 4, chunks: 1 });
    expect(twin.report).toMatchObject({ state: 'done', error: null });
  });

  it('ends an endless loop at the wall-clock limit; a bounded loop succeeds', async () => {
    const spinner = await runProbe({ mode: 'spin' });
    expect(spinner.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.WALL_CLOCK' });

    const twin = await runProbe({ mode: 'spin', iterations: 100_000 });
    expect(twin.report).toMatchObject({ state: 'done', error: null });
  });

  it('survives a guest trap, and the next job runs normally', async () => {
    const trap = await runProbe({ mode: 'never-settle' });
    expect(trap.report).toMatchObject({ state: 'errored', error: 'UNKNOWN_ERROR.CRASH' });
    expect(trap.report.message).toMatch(/wasm trap/);

    const twin = await runProbe({ mode: 'never-settle', settle: true });
    expect(twin.report).toMatchObject({ state: 'done', error: null });
  });

  it('refuses a value outside its WIT type at the boundary', async () => {
    const bad = await runProbe({ mode: 'bad-value', level: 'deafening' });
    expect(bad.report).toMatchObject({ state: 'errored', error: 'UNKNOWN_ERROR' });
    expect(bad.report.message).toContain('"deafening" is not one of the cases of level');

    const twin = await runProbe({ mode: 'bad-value', level: 'warning' });
    expect(twin.report).toMatchObject({ state: 'done', error: null });
    expect(twin.lines.some((l) => l.level === 'warning' && l.message === 'a log line')).toBe(true);
  });

  it('has no filesystem: naming a file ends the job without reading it', async () => {
    const reader = await runProbe({ mode: 'read-file', path: '/etc/passwd' });
    expect(reader.report.state).toBe('errored');
    expect(reader.lines.some((l) => l.message.includes('root:'))).toBe(false);
    expect((await runProbe({})).report.state).toBe('done');
  });

  it('lets a konnector sleep on its timers: the job waits, spends no fuel waiting, and fires timers in order', async () => {
    const quick = await runProbe({ mode: 'sleep', ms: 0, quiet: true });
    const sleeper = await runProbe({ mode: 'sleep', ms: 400, quiet: true });
    for (const run of [quick, sleeper]) {
      expect(run.report).toMatchObject({ state: 'done', error: null });
      expect(run.lines.some((line) => line.message === 'slept')).toBe(true);
    }
    expect(sleeper.report.durationMs).toBeGreaterThanOrEqual(400);
    // The same work either way: waiting 400 ms is not computing.
    expect(sleeper.report.fuelUsed!).toBeLessThan(quick.report.fuelUsed! * 1.05);

    const timers = await runProbe({ mode: 'timers', quiet: true });
    expect(timers.report).toMatchObject({ state: 'done', error: null });
    expect(timers.lines.map((line) => line.message)).toContain('tick,tick,a,tick,b');
  });

  it('ends a job when its konnector returns: timers it left behind never fire; awaited, the same timer does', async () => {
    const leaver = await runProbe({ mode: 'linger', ms: 3000, quiet: true });
    expect(leaver.report).toMatchObject({ state: 'done', error: null });
    expect(leaver.report.durationMs).toBeLessThan(2500);
    expect(leaver.lines.some((line) => line.message === 'late timer fired')).toBe(false);

    const waiter = await runProbe({ mode: 'linger', ms: 300, wait: true, quiet: true });
    expect(waiter.report).toMatchObject({ state: 'done', error: null });
    expect(waiter.lines.some((line) => line.message === 'late timer fired')).toBe(true);
  });

  it('ends a konnector that sleeps past its wall clock with the wall-clock limit; one that wakes in time is done', async () => {
    const short = { ...limits, wallClockMs: 1500 };
    const oversleeper = await runProbe({ mode: 'sleep', ms: 60_000, quiet: true }, short);
    expect(oversleeper.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.WALL_CLOCK' });
    expect(oversleeper.report.durationMs).toBeLessThan(10_000);

    const twin = await runProbe({ mode: 'sleep', ms: 100, quiet: true }, short);
    expect(twin.report).toMatchObject({ state: 'done', error: null });
  });

  it("reports the konnector's own error code", async () => {
    const failed = await runProbe({ mode: 'fail', code: 'user-action-needed-cgu-form' });
    expect(failed.report).toMatchObject({ state: 'errored', error: 'USER_ACTION_NEEDED.CGU_FORM' });
  });

  it("names the host's error when the konnector does not catch a failed host call; the allowed twin saves", async () => {
    const refused = await runProbe({ mode: 'saveAs', doctype: 'io.cozy.accounts', quiet: true });
    expect(refused.report).toMatchObject({ state: 'errored', error: 'UNKNOWN_ERROR' });
    expect(refused.report.message).toMatch(/^a host call failed \(forbidden\): .*io\.cozy\.accounts/);
    const allowed = await runProbe({ mode: 'saveAs', doctype: 'io.cozy.probes', quiet: true });
    expect(allowed.report).toMatchObject({ state: 'done', error: null });
  });

  it('serves none of the calls of a job the host turns out not to own; an owned twin is served once owned', async () => {
    const later = (owned: boolean) => new Promise<boolean>((resolve) => setTimeout(() => resolve(owned), 1000));
    // Warm: the konnector is compiled and its next instance ready, so the guest makes its calls well within the wait.
    expect((await runProbe({})).report.state).toBe('done');
    const lost: LogLine[] = [];
    await expect(runProbe({}, limits, { jobId: 'not-owned', gate: new JobGate(later(false)), lines: lost })).rejects.toThrow(JobStopped);
    expect(lost.filter((line) => line.source === 'konnector')).toEqual([]);
    expect(await probeDocument('not-owned')).toBe(404);

    let ownedAt = Infinity;
    const owned = later(true).then((yes) => {
      ownedAt = Date.now();
      return yes;
    });
    let firstLineAt: number | undefined;
    const twin = await runProbe({}, limits, {
      jobId: 'owned', gate: new JobGate(owned), onLog: (line) => {
        if (line.source === 'konnector') firstLineAt ??= Date.now();
      },
    });
    expect(twin.report).toMatchObject({ state: 'done', saved: { 'io.cozy.probes': 1 } });
    expect(await probeDocument('owned')).toBe(200);
    // Its log lines reach the job's log once the job is owned.
    expect(firstLineAt).toBeGreaterThanOrEqual(ownedAt);
  });

  it('stops a job whose gate is revoked mid-run and serves none of its later calls; an unrevoked twin saves', async () => {
    const gate = new JobGate();
    const lines: LogLine[] = [];
    // Revoked once the konnector is running (its first line), while it sleeps before saving.
    const revoked = runProbe({ mode: 'sleep', ms: 30_000 }, limits, {
      jobId: 'revoked', gate, lines, onLog: (line) => line.message === 'sleeping' && gate.revoke('its lease lapsed'),
    });
    await expect(revoked).rejects.toThrow(/the host lost the job: its lease lapsed/);
    expect(lines.map((line) => line.message)).not.toContain('slept');
    expect(await probeDocument('revoked')).toBe(404);

    const twin = await runProbe({ mode: 'sleep', ms: 10 }, limits, { jobId: 'not-revoked', gate: new JobGate() });
    expect(twin.report).toMatchObject({ state: 'done', saved: { 'io.cozy.probes': 1 } });
    expect(await probeDocument('not-revoked')).toBe(200);
  });

  it('keeps a benign job correct while another job spins beside it', async () => {
    const [spinner, benign] = await Promise.all([runProbe({ mode: 'spin' }), runProbe({})]);
    expect(spinner.report.error).toBe('LIMIT_EXCEEDED.WALL_CLOCK');
    expect(benign.report).toMatchObject({ state: 'done', saved: { 'io.cozy.probes': 1 } });
  });

  it('shares one compiled engine between konnectors of one toolchain, each instance with its own snapshot', async () => {
    const other = fixtureDir('src-layout');
    const [probeKonnector, otherKonnector] = await Promise.all([loadOnce(probe, limits), loadOnce(other, limits)]);
    const [engineName] = Object.keys(probeKonnector.snapshots);
    expect(engineName).toBeDefined();
    expect(otherKonnector.modules[engineName!]).toBe(probeKonnector.modules[engineName!]);
    expect(otherKonnector.snapshots[engineName!]!.data).not.toEqual(probeKonnector.snapshots[engineName!]!.data);
    // Another memory cap is another engine: the cap is compiled into it.
    const capped = await loadOnce(probe, { ...limits, memoryBytes: 48 * MiB });
    expect(capped.modules[engineName!]).not.toBe(probeKonnector.modules[engineName!]);

    // Jobs of both, interleaved on the same workers, each run their own konnector.
    const lines: LogLine[] = [];
    const runOther = () => runJob(otherKonnector, { accountId: 'other-account', instance: 'sandbox.cozy.localhost', fields: {} },
      { couchUrl: couch.url, limits, onLog: (line) => lines.push(line) });
    const [a, b, c] = await Promise.all([runProbe({}), runOther(), runProbe({})]);
    expect(a.report).toMatchObject({ state: 'done', saved: { 'io.cozy.probes': 1 } });
    expect(c.report).toMatchObject({ state: 'done', saved: { 'io.cozy.probes': 1 } });
    expect(b).toMatchObject({ state: 'done', error: null });
    expect(lines.map((line) => line.message)).toContain('started from src/index.js, manual execution: false');
    expect((await runOther()).state).toBe('done');
  });

  it("refuses a konnector whose memory starts above the job's memory cap, and loads it under a cap that fits", async () => {
    const artifact = await readComponentArtifact(await buildOnce(probe));
    await expect(loadKonnector(artifact, { memoryBytes: 4 * MiB })).rejects.toThrow(/the konnector's memory starts at \d+ pages \(\d+ KiB\), above the cap of 64 pages: raise the memory limit/);
    await expect(loadKonnector(artifact, { memoryBytes: 32 * MiB })).resolves.toMatchObject({ metered: true });
  });
});
