/**
 * The QuickJS engine's raw host call (`__host.call`, engine-main.c), as a hostile konnector would use it,
 * in a real job (runJob): an unknown op, malformed JSON, a byte range past its buffer and arguments outside
 * the WIT types are each answered `invalid` and the job goes on; a failure told on the bundle's own call (failure.ts) does not end a
 * job that returns; the same call well formed saves its
 * document. The engine's own log primitive (`__host.log`) is held to the job's log budget like `log.write`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogLine } from '../../host-api/log.ts';
import { defaultLimits, type Limits } from '../../runner/limits.ts';
import { loadQuickjsKonnector } from '../../runner/quickjs/artifact.ts';
import { runJob } from '../../runner/sandbox/job.ts';
import { startTestCouch, storedDocs, type TestCouch } from '../support/couch.ts';

const INSTANCE = 'raw.cozy.example';
let couch: TestCouch;
let dir: string;

const MANIFEST = { slug: 'raw-calls', name: 'Raw calls', version: '1.0.0', type: 'konnector', fields: {}, permissions: { probes: { type: 'io.cozy.probes' } } };

const KONNECTOR = `
export function run(job) {
  const fields = JSON.parse(job.fields);
  if (fields.lines !== undefined) {
    for (let i = 0; i < fields.lines; i++) __host.log('info', 'raw line ' + i);
    return;
  }
  const tries = [
    ['unknown', '{"op":"fs.readFile","args":["/etc/passwd"]}'],
    ['malformed', '{"op":'],
    ['past its buffer', '{"op":"files.save","args":["a.txt",{"$bytes":[0,1000000]},true]}', new ArrayBuffer(4)],
    ['outside the WIT', '{"op":"documents.save","args":["io.cozy.probes",{"not":"a string"}]}'],
    ['well formed', '{"op":"documents.save","args":["io.cozy.probes","{\\\\"_id\\\\":\\\\"raw-1\\\\"}"]}'],
    ['failure, not a code and a message', '{"op":"konnector.fail","args":[1]}'],
    ['failure told, then the run returns', '{"op":"konnector.fail","args":["login-failed","told"]}'],
  ];
  for (const [name, text, bytes] of tries) __host.log('info', name + ' ' + __host.call(text, bytes)[0]);
}
`;

beforeAll(async () => {
  couch = await startTestCouch();
  dir = await mkdtemp(path.join(os.tmpdir(), 'quickjs-raw-'));
  await writeFile(path.join(dir, 'manifest.konnector'), JSON.stringify(MANIFEST));
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'raw-calls', private: true, type: 'module', main: 'index.js' }));
  await writeFile(path.join(dir, 'index.js'), KONNECTOR);
}, 120_000);

afterAll(async () => {
  await couch?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function run(fields: Record<string, unknown>, limits: Limits = defaultLimits) {
  const lines: LogLine[] = [];
  const report = await runJob(await loadQuickjsKonnector(dir, limits), { accountId: 'account-1', instance: INSTANCE, fields }, {
    couchUrl: couch.url, limits, onLog: (line) => lines.push(line),
  });
  return { report, messages: lines.filter((l) => l.source === 'konnector').map((l) => l.message) };
}

describe('the raw host call on QuickJS', () => {
  it('answers malformed and forbidden calls `invalid`, and serves the well-formed twin', async () => {
    const { report, messages } = await run({});
    expect(report).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.probes': 1 } });
    expect(messages[0]).toMatch(/^unknown \{"invalid":"fs\.readFile is not a function of the konnector world; it has http\.send, http\.keepSession, documents\.save/);
    expect(messages[1]).toMatch(/^malformed \{"invalid":"a host call that is not JSON/);
    expect(messages[2]).toBe('past its buffer {"invalid":"a byte array refers to bytes [0,1000000] of a 4-byte buffer"}');
    expect(messages[3]).toMatch(/^outside the WIT \{"invalid":"documents\.save: arguments the WIT does not allow:\\n {2}- 1: Expected string, received object"\}$/);
    expect(messages[4]).toMatch(/^well formed \{"ok":"\{.*\\"_id\\":\\"raw-1\\"/);
    // The bundle's failure call (runner/quickjs/failure.ts): checked, and a failure told counts only if the run ends with it.
    expect(messages[5]).toBe('failure, not a code and a message {"invalid":"konnector.fail takes a code and a message"}');
    expect(messages[6]).toBe('failure told, then the run returns {}');
    expect((await storedDocs(couch.url, INSTANCE, 'io.cozy.probes')).map((doc) => doc._id)).toEqual(['raw-1']);
  }, 120_000);

  it("holds the engine's own log primitive to the job's log budget; a job within it is done", async () => {
    const limits: Limits = { ...defaultLimits, log: { ...defaultLimits.log, maxLines: 5 } };
    const over = await run({ lines: 10 }, limits);
    expect(over.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.LOG_LINES' });
    const within = await run({ lines: 5 }, limits);
    expect(within.report).toMatchObject({ state: 'done', error: null, budgets: { logLines: { used: 5, limit: 5 } } });
  }, 120_000);
});
