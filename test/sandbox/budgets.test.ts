import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../../runner/sandbox/job.ts';
import { defaultLimits, LimitsSchema, type Limits } from '../../runner/limits.ts';
import { fixtureDir, loadOnce } from '../support/artifacts.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';

const probe = fixtureDir('sandbox-probe');
let couch: TestCouch;

beforeAll(async () => {
  couch = await startTestCouch();
});

afterAll(async () => {
  await couch?.stop();
});

async function runProbe(fields: Record<string, unknown>, limits: Limits) {
  return runJob(
    await loadOnce(probe, limits),
    { accountId: 'budget-account', instance: 'budgets.cozy.localhost', fields },
    { couchUrl: couch.url, limits },
  );
}

const withLimits = (overrides: object): Limits => LimitsSchema.parse({ ...overrides });

describe('per-job budgets', () => {
  it.each([
    ['log lines', { log: { maxLines: 50 } }, { mode: 'chatter', count: 500 }, { mode: 'chatter', count: 40 }, 'LIMIT_EXCEEDED.LOG_LINES'],
    ['log bytes', { log: { maxBytes: 900 } }, { mode: 'chatter', count: 200 }, { mode: 'chatter', count: 10 }, 'LIMIT_EXCEEDED.LOG_BYTES'],
    ['documents', { documents: { maxDocuments: 5 } }, { mode: 'hoard', count: 20 }, { mode: 'hoard', count: 3 }, 'LIMIT_EXCEEDED.DOCUMENTS'],
  ])('%s: exceeding ends the job with its own error; the twin under it succeeds', async (_name, overrides, attack, twin, code) => {
    const limits = withLimits(overrides);
    const over = await runProbe(attack, limits);
    expect(over).toMatchObject({ state: 'errored', error: code });
    expect(over.message).toMatch(/budget \(limit \d+, used \d+\)/);

    const under = await runProbe(twin, limits);
    expect(under).toMatchObject({ state: 'done', error: null });
  });

  it('reports the usage of every budget against its limit', async () => {
    const report = await runProbe({ mode: 'hoard', count: 2 }, defaultLimits);
    expect(report.state).toBe('done');
    expect(report.budgets.documents).toEqual({ used: 3, limit: defaultLimits.documents.maxDocuments });
    expect(report.budgets.logLines).toEqual({ used: 1, limit: defaultLimits.log.maxLines });
    expect(report.budgets.memoryBytes.used).toBeGreaterThan(0);
    expect(report.budgets.memoryBytes.limit).toBe(defaultLimits.memoryBytes);
    expect(report.budgets.httpRequests).toEqual({ used: 0, limit: defaultLimits.http.maxRequests });
    expect(report.budgets.wallClockMs.used).toBe(report.durationMs);
  });
});
