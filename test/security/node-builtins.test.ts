/**
 * Attacks through Node's modules as a konnector's npm dependencies reach them
 * (runner/compile/guest-http.js, guest-unavailable.js): http, https and request
 * go through the host's egress policy like any send, files and processes fail
 * with a named error, and request's cookie jar sees only its own job's
 * cookies. Decompression bombs, through request's zlib and through the SDK's
 * own decoding, stay within the job's limits. Each attack has a benign twin
 * that succeeds. Every job-level test runs on both engines (test/support/engines.ts): the same body, the
 * konnector loaded for componentize-js or QuickJS.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobEnvironment } from '../../runner/sandbox/job.ts';
import { LimitsSchema } from '../../runner/limits.ts';
import type { EngineName } from '../../runner/sandbox/pool.ts';
import { buildOnce, fixtureDir } from '../support/artifacts.ts';
import { konnectorCli } from '../support/cli.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';
import { ENGINES, loadOn } from '../support/engines.ts';
import { startTestServer, type TestServer } from '../support/http-server.ts';
import { runHostile, startVendorSite, type Outcome } from './support.ts';

const limits = LimitsSchema.parse({ memoryBytes: 256 * 1024 * 1024, wallClockMs: 60_000, http: { connectTimeoutMs: 2_000 } });
const dir = fixtureDir('hostile-builtins');

let couch: TestCouch;
let vendor: Awaited<ReturnType<typeof startVendorSite>>;
/** A service on this machine a konnector must not reach. */
let internal: TestServer;

beforeAll(async () => {
  [couch, vendor, internal] = await Promise.all([
    startTestCouch(),
    startVendorSite(),
    startTestServer((_req, res) => res.end('internal secret'), { anyAddress: true }),
  ]);
});

afterAll(async () => {
  await Promise.all([couch?.stop(), vendor?.stop(), internal?.stop()]);
});

describe.each(ENGINES)('on %s', (engine: EngineName) => {
  const konnector = () => loadOn(engine, dir, limits);

  const env = (jobLimits = limits): JobEnvironment => ({ couchUrl: couch.url, limits: jobLimits, connectTo: [vendor.connectTo] });

  async function steps(todo: Record<string, unknown>[], account?: string): Promise<Outcome[]> {
    const run = await runHostile(await konnector(), { steps: todo }, env(), account);
    expect(run.report, run.lines.map((l) => l.message).join('\n')).toMatchObject({ state: 'done', error: null });
    return todo.map((_, index) => run.outcomes.find((o) => o.step === index)!);
  }

  describe('http, https and request go through the egress policy', () => {
    const targets = () => [
      `http://127.0.0.1:${internal.port}/`,
      'http://169.254.169.254/latest/meta-data/',
      `http://127.0.0.1:${new URL(couch.url).port}/_all_dbs`,
    ];

    test.each(['http', 'request'])('%s to loopback, the metadata address and the CouchDB port is denied; to the vendor it succeeds', async (via) => {
      const outcomes = await steps([...targets().map((url) => ({ via, url })), { via, url: 'http://vendor.test/ping' }]);
      for (const outcome of outcomes.slice(0, -1)) {
        // With the code Node gives a refused connection, which libraries test.
        expect(outcome).toMatchObject({ ok: false, kind: 'denied', code: 'ECONNREFUSED', message: expect.stringMatching(/egress|not allowed|loopback|private|link-local|refused/i) });
      }
      expect(outcomes.at(-1)).toMatchObject({ ok: true, status: 200, text: 'pong' });
      expect(internal.connections).toBe(0);
    });

    test('https to the metadata address and to loopback is denied as well', async () => {
      const outcomes = await steps([{ via: 'https', url: 'https://169.254.169.254/' }, { via: 'https', url: `https://127.0.0.1:${internal.port}/` }]);
      for (const outcome of outcomes) expect(outcome).toMatchObject({ ok: false, kind: 'denied' });
      expect(internal.connections).toBe(0);
    });
  });

  describe('files and processes', () => {
    test('fs.readFileSync("/etc/passwd") and child_process.exec fail with a named error; the job goes on to reach its vendor', async () => {
      const [file, exec, twin] = await steps([{ via: 'fs' }, { via: 'child_process' }, { via: 'http', url: 'http://vendor.test/ping' }]);
      expect(file).toMatchObject({ ok: false, message: expect.stringContaining('fs.readFileSync is not available in the konnector sandbox') });
      expect(exec).toMatchObject({ ok: false, message: expect.stringContaining('child_process.exec is not available in the konnector sandbox') });
      expect(JSON.stringify([file, exec])).not.toContain('root:');
      expect(twin).toMatchObject({ ok: true, text: 'pong' });
    });
  });

  describe("request's cookie jar", () => {
    test("sees only its own job's cookies: another account's concurrent job gets none of them", async () => {
      const [[alice], [bob]] = await Promise.all([
        steps([{ via: 'jar', url: 'http://vendor.test', login: 'alice' }], 'alice-account'),
        steps([{ via: 'jar', url: 'http://vendor.test' }], 'bob-account'),
      ]);
      // The benign twin: the job that signed in sends its cookie and its jar mirrors it.
      expect(alice).toMatchObject({ ok: true, whoami: 'session=alice', jar: 'session=alice' });
      expect(bob).toMatchObject({ ok: true, whoami: 'no cookie', jar: '' });
    });
  });

  describe('a decompression bomb', () => {
    test("request's gzip decoding of a 1 GiB bomb (1 MB on the wire) ends the job at a limit; a gzip body of 100 kB decodes whole", async () => {
      const [twin] = await steps([{ via: 'gzip', url: 'http://vendor.test/gzip?bytes=100000' }]);
      expect(twin).toMatchObject({ ok: true, decodedBytes: 100_000 });
      const bomb = await runHostile(await konnector(), { steps: [{ via: 'gzip', url: `http://vendor.test/gzip?bytes=${2 ** 30}` }] }, env());
      expect(bomb.report).toMatchObject({ state: 'errored', error: expect.stringMatching(/^LIMIT_EXCEEDED\./) });
      expect(bomb.outcomes).toEqual([]);
      // Decoding is guest work: it spends the job's fuel (LIMIT_EXCEEDED.FUEL with these limits) inside its capped memory.
      expect(bomb.report.memoryPeakBytes).toBeLessThanOrEqual(limits.memoryBytes);
    });

    test("the SDK's requestFactory decodes gzip and br bombs only up to the job's response-size limit: too-large; bodies at the limit decode whole", async () => {
      const maxResponseBytes = 4 * 1024 * 1024;
      const sdkLimits = { ...limits, http: { ...limits.http, maxResponseBytes } };
      const urls = [
        `http://vendor.test/gzip?bytes=${maxResponseBytes}`,
        `http://vendor.test/br?bytes=${maxResponseBytes}`,
        `http://vendor.test/gzip?bytes=${maxResponseBytes + 1}`,
        `http://vendor.test/gzip?bytes=${2 ** 30}`,
        `http://vendor.test/br?bytes=${2 ** 28}`,
      ];
      const run = await runHostile(await konnector(), { steps: urls.map((url) => ({ via: 'sdk', url })) }, env(sdkLimits));
      expect(run.report, run.lines.map((l) => l.message).join('\n')).toMatchObject({ state: 'done', error: null });
      const [gzipTwin, brTwin, ...bombs] = urls.map((_, index) => run.outcomes.find((o) => o.step === index));
      expect(brTwin).toMatchObject({ ok: true, decodedBytes: maxResponseBytes });
      // The host's own error for a body past the limit: a konnector handles both alike.
      const tooLarge = (coding: string) => ({ ok: false, kind: 'too-large', message: `http: too-large: GET http://vendor.test: the response body decoded from ${coding} exceeds ${maxResponseBytes} bytes` });
      expect(bombs[2]).toMatchObject(tooLarge('br'));
      if (engine === 'quickjs') {
        // QuickJS has no DecompressionStream (docs/engines.md): the SDK refuses every gzip body by name, the twin and the bombs alike.
        for (const gzip of [gzipTwin, bombs[0], bombs[1]]) {
          expect(gzip).toMatchObject({ ok: false, kind: 'network', message: expect.stringMatching(/the body is gzip-encoded, which this engine cannot decode/) });
        }
      } else {
        expect(gzipTwin).toMatchObject({ ok: true, decodedBytes: maxResponseBytes });
        for (const bomb of [bombs[0], bombs[1]]) expect(bomb).toMatchObject(tooLarge('gzip'));
      }
      // 1 GiB and 256 MiB of zeros came in 1 MB and 600 bytes: decoding stopped near the limit, far inside the memory cap.
      expect(run.report.bytesIn).toBeLessThan(2 * 1024 * 1024);
      expect(run.report.memoryPeakBytes).toBeLessThan(limits.memoryBytes / 2);
    });
  });
});

// Single-engine: the component's import list is the componentize-js artifact's (QuickJS's engine imports are pinned in test/quickjs/engine.test.ts).
test('konnector inspect lists only cozy:konnector/* and wasi:random/* imports', async () => {
  const inspected = await konnectorCli(['inspect', await buildOnce(dir), '--json']);
  expect(inspected.code, inspected.stderr).toBe(0);
  const { imports } = JSON.parse(inspected.stdout) as { imports: string[] };
  expect(imports).toContain('cozy:konnector/http@0.1.0');
  expect(imports.filter((name) => !/^(cozy:konnector|wasi:random)\//.test(name))).toEqual([]);
});
