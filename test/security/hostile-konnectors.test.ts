/**
 * Hostile konnectors, end to end: real konnectors built with the real
 * `konnector build`, run as jobs in the sandbox against real loopback servers
 * and the embedded CouchDB. Each attack comes with a benign twin that must
 * succeed, and the guest's own view of every refusal (the error kind and
 * message it caught, which it logs as JSON) is asserted.
 *
 * Attacks go to the ports an attacker wants (the stack's 6060, CouchDB's
 * 5984); the servers standing for those services listen on free ports, which
 * the twins reach through the operator's connect-to. Every TCP socket the host
 * creates for a job is counted: a refused request must never open one.
 * The table printed at the end sums it up.
 *
 * Every job runs on both engines (test/support/engines.ts): the same body, the
 * konnector loaded for componentize-js or QuickJS; where an engine differs
 * safely, the test says so and docs/engines.md lists it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { databaseName } from '../../host-api/documents.ts';
import { parseConnectTo } from '../../host-api/http/index.ts';
import type { JobEnvironment } from '../../runner/sandbox/job.ts';
import { LimitsSchema, type Limits } from '../../runner/limits.ts';
import type { LoadedKonnector } from '../../runner/sandbox/loader.ts';
import type { EngineName } from '../../runner/sandbox/pool.ts';
import { fakeResolver, watchSockets } from '../host-api/http/helpers.ts';
import { buildOnce, fixtureDir } from '../support/artifacts.ts';
import { konnectorCli } from '../support/cli.ts';
import { startTestCouch, type TestCouch } from '../support/couch.ts';
import { ENGINES, loadOn } from '../support/engines.ts';
import { startTestServer, type TestServer } from '../support/http-server.ts';
import {
  BILLS,
  describeOutcome,
  runHostile,
  startVendorSite,
  type HostileRun,
  type Outcome,
} from './support.ts';
import { AttackTable } from './table.ts';

const MiB = 1024 * 1024;
const limits: Limits = LimitsSchema.parse({
  memoryBytes: 64 * MiB,
  wallClockMs: 30_000,
  http: {
    maxRequests: 20,
    maxResponseBytes: 1 * MiB,
    maxRequestBodyBytes: 256 * 1024,
    connectTimeoutMs: 2_000,
    headersTimeoutMs: 1_500,
    bodyTimeoutMs: 1_500,
    maxRedirects: 3,
  },
});

const netDir = fixtureDir('hostile-net');
const escapeDir = fixtureDir('hostile-escape');
const table = new AttackTable();
/** What the host's environment holds and a konnector must never see. */
const CANARY = `canary-${process.pid}-${Date.now()}`;

let couch: TestCouch;
let tmp: string;
let vendor: Awaited<ReturnType<typeof startVendorSite>>;
/** What answers where cozy-stack's admin API would be (6060) and where CouchDB would be (5984), on free ports. */
let stack: TestServer;
let couchPort: TestServer;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'hostile-'));
  process.env.COZY_CREDENTIALS = CANARY;
  [couch, vendor, stack, couchPort] = await Promise.all([
    startTestCouch(),
    startVendorSite(),
    startTestServer((_req, res) => res.end('stack admin'), { anyAddress: true }),
    startTestServer((_req, res) => res.end('{"couchdb":"Welcome"}'), { anyAddress: true }),
  ]);
});

afterAll(async () => {
  delete process.env.COZY_CREDENTIALS;
  await Promise.all([couch?.stop(), vendor?.stop(), stack?.stop(), couchPort?.stop()]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
  console.log(`\n${table.format()}\n`);
});

function env(extra: Partial<JobEnvironment> = {}): JobEnvironment {
  return { couchUrl: couch.url, limits, connectTo: [vendor.connectTo], ...extra };
}

/** The refusal as the guest saw it, the same message in the runner's log, and the job still done. */
function expectRefused(run: HostileRun, outcome: Outcome | undefined, kind: string, message: RegExp) {
  expect(outcome).toMatchObject({ ok: false, kind, message: expect.stringMatching(message) });
  expect(run.runnerLines.map((l) => l.message)).toContain(outcome!.message);
  expect(run.report).toMatchObject({ state: 'done', error: null });
}

/** hostile-escape's outcome of one named attempt. */
function attempted(run: HostileRun, name: string): Outcome | undefined {
  return run.outcomes.find((o) => o.attempt === name);
}

function counts(...servers: TestServer[]): number[] {
  return servers.map((s) => s.connections);
}

describe.each(ENGINES)('on %s', (engine: EngineName) => {
  const row = (attack: string, expected: string) => table.row(attack, expected, engine);
  let hostileNet: LoadedKonnector;
  let hostileEscape: LoadedKonnector;

  beforeAll(async () => {
    [hostileNet, hostileEscape] = await Promise.all([loadOn(engine, netDir, limits), loadOn(engine, escapeDir, limits)]);
  }, 120_000);

  /** hostile-net does the requests; each one's outcome is the line the konnector logged for it. */
  async function request(steps: Record<string, unknown>[], extra: Partial<JobEnvironment> = {}) {
    const run = await runHostile(hostileNet, { requests: steps }, env(extra));
    return { ...run, outcome: (i = 0) => run.outcomes.find((o) => o.request === i) };
  }

  describe('no way out but the WIT imports', () => {
    test('process, require, WebAssembly and the environment are absent; the konnector runs to its end', async () => {
      const observe = row('read process.env, require, WebAssembly', 'undefined in the guest; job still done');
      const run = await runHostile(hostileEscape, {}, env());
      const [globals, processEnv, viaFunction] = ['globals', 'process.env', 'Function("return process.env")'].map((name) => attempted(run, name));
      observe(`globals ${JSON.stringify(globals?.value)}; process.env -> ${describeOutcome(processEnv)}`);
      expect(run.report).toMatchObject({ state: 'done', error: null });
      expect(globals).toMatchObject({
        attempt: 'globals',
        ok: true,
        value: {
          process: 'undefined',
          require: 'undefined',
          module: 'undefined',
          global: 'undefined',
          WebAssembly: 'undefined',
          Deno: 'undefined',
          Bun: 'undefined',
          XMLHttpRequest: 'undefined',
          WebSocket: 'undefined',
        },
      });
      // The engines word their errors their own way.
      const undefinedProcess = engine === 'quickjs' ? /cannot read property 'env' of undefined/ : /process is undefined/;
      expect(processEnv).toMatchObject({ ok: false, kind: 'TypeError', message: expect.stringMatching(undefinedProcess) });
      expect(viaFunction).toMatchObject({ ok: false, kind: 'ReferenceError', message: engine === 'quickjs' ? "'process' is not defined" : 'process is not defined' });
      expect(JSON.stringify(run)).not.toContain(CANARY);
    });

    describe('files and /proc: the engine has no filesystem, a dynamic import reads nothing', () => {
      const secretModule = () => path.join(tmp, 'secret.mjs');
      test.each([
        ['node:fs', () => 'node:fs'],
        ['node:child_process', () => 'node:child_process'],
        ['/proc/self/environ', () => '/proc/self/environ'],
        ['/etc/passwd', () => '/etc/passwd'],
        ['a module file on the host holding a secret', () => pathToFileURL(secretModule()).href],
      ])('import(%s) is refused without reading anything', async (label, specifier) => {
        await writeFile(secretModule(), `export default ${JSON.stringify(CANARY)};\n`);
        // componentize-js traps on a dynamic import; QuickJS (no module loader) rejects it and the konnector goes on (docs/engines.md).
        const expected = engine === 'quickjs' ? 'ReferenceError in the guest, nothing read; job done' : 'engine traps: job UNKNOWN_ERROR.CRASH, nothing read';
        const observe = row(`import(${label})`, expected);
        const run = await runHostile(hostileEscape, { imports: [specifier()] }, env());
        const imported = attempted(run, `import ${specifier()}`);
        observe(`${run.report.error}: ${run.report.message}; ${describeOutcome(imported)}`);
        if (engine === 'quickjs') {
          expect(imported).toMatchObject({ ok: false, kind: 'ReferenceError', message: `could not load module '${specifier()}'` });
          expect(run.report).toMatchObject({ state: 'done', error: null });
        } else {
          expect(run.report).toMatchObject({ state: 'errored', error: 'UNKNOWN_ERROR.CRASH' });
          // The guest never got past the import: no outcome for it.
          expect(imported).toBeUndefined();
        }
        expect(JSON.stringify(run)).not.toContain(CANARY);
        expect(JSON.stringify(run)).not.toMatch(/root:x:0:0/);
      });
    });

    test("fetch() goes through the host's egress policy: the stack's admin port is denied, the vendor answers", async () => {
      const observe = row('fetch("http://127.0.0.1:6060/")', 'denied, 0 connections; fetch of the vendor: 200');
      const before = vendor.connections;
      const attack = 'http://127.0.0.1:6060/';
      const run = await runHostile(hostileEscape, { fetch: [attack, 'http://vendor.test/ping'] }, env());
      const [refused, twin] = [attempted(run, `fetch ${attack}`), attempted(run, 'fetch http://vendor.test/ping')];
      observe(`${describeOutcome(refused)}; ${run.sockets} sockets; twin -> ${describeOutcome(twin)}`);
      expect(run.report).toMatchObject({ state: 'done', error: null });
      expect(refused).toMatchObject({ ok: false, kind: 'TypeError', message: expect.stringMatching(/^fetch failed: http denied: egress policy: port 6060 of host 127\.0\.0\.1 is refused/) });
      // One socket, the twin's, to the vendor: none toward 6060.
      expect([run.sockets, vendor.connections - before]).toEqual([1, 1]);
      expect(twin).toMatchObject({ ok: true, value: { status: 200, text: 'pong' } });
    });

    test('every clock tells whole milliseconds only; the twin: they advance, a 30 ms timer is seen to take 30 ms', async () => {
      const observe = row('read Date.now, new Date, performance.now (and QuickJS\'s __host.now) 1000 times each', 'no fraction of a millisecond; clocks advance');
      const run = await runHostile(hostileEscape, { clock: true }, env());
      const clock = attempted(run, 'clock') as Outcome & { value?: { fractions: Record<string, number>; slept: Record<string, number> } };
      observe(describeOutcome(clock));
      expect(run.report).toMatchObject({ state: 'done', error: null });
      const clocks = ['Date.now', 'new Date', 'performance.now', ...(engine === 'quickjs' ? ['__host.now'] : [])];
      expect(clock).toMatchObject({ ok: true, value: { fractions: Object.fromEntries(clocks.map((name) => [name, 0])) } });
      for (const elapsed of Object.values(clock!.value!.slept)) expect(elapsed).toBeGreaterThanOrEqual(30);
    });

    test("other doctypes (io.cozy.accounts holds credentials) are forbidden; the konnector's own doctype is readable", async () => {
      const observe = row('documents.find io.cozy.accounts / io.cozy.bills (not granted)', 'forbidden; own doctype readable');
      const run = await runHostile(hostileEscape, { find: ['io.cozy.accounts', 'io.cozy.bills', 'io.cozy.probes'] }, env());
      const [accounts, bills, probes] = ['io.cozy.accounts', 'io.cozy.bills', 'io.cozy.probes'].map((doctype) => attempted(run, `find ${doctype}`));
      observe(`${describeOutcome(accounts)}; own doctype -> ${describeOutcome(probes)}`);
      expect(accounts).toMatchObject({ ok: false, kind: 'forbidden', message: expect.stringMatching(/io\.cozy\.accounts/) });
      expect(bills).toMatchObject({ ok: false, kind: 'forbidden', message: expect.stringMatching(/io\.cozy\.bills/) });
      expect(probes).toMatchObject({ ok: true, value: 0 });
    });
  });

  describe('egress to internal addresses, even when the manifest asks for them', () => {
    // hostile-net's manifest lists each of these hosts and ports in allowed_hosts,
    // so only the address rule stands between the konnector and the target.
    const attacks: [url: string, rule: RegExp, listener: () => TestServer | undefined][] = [
      ['http://127.0.0.1:6060/instances', /127\.0\.0\.1 is in 127\.0\.0\.0\/8 \(loopback\)/, () => stack],
      ['http://[::1]:6060/instances', /::1\/128 \(loopback\)/, () => stack],
      ['http://0.0.0.0:6060/instances', /0\.0\.0\.0 is in 0\.0\.0\.0\/8/, () => stack],
      ['http://2130706433:6060/instances', /127\.0\.0\.1 is in 127\.0\.0\.0\/8/, () => stack],
      ['http://0x7f.1:6060/instances', /127\.0\.0\.1 is in 127\.0\.0\.0\/8/, () => stack],
      ['http://[::ffff:127.0.0.1]:6060/instances', /::ffff:7f00:1 embeds 127\.0\.0\.1/, () => stack],
      ['http://localhost:5984/_all_dbs', /host localhost resolves only to refused addresses/, () => couchPort],
      ['http://169.254.169.254/latest/meta-data/iam/', /169\.254\.0\.0\/16 \(link-local/, () => undefined],
      ['http://10.0.0.1/', /10\.0\.0\.0\/8 \(private use\)/, () => undefined],
      ['http://172.16.0.1/', /172\.16\.0\.0\/12 \(private use\)/, () => undefined],
      ['http://192.168.1.1/', /192\.168\.0\.0\/16 \(private use\)/, () => undefined],
    ];

    test.each(attacks)('%s is denied before any connection; mapped by the operator it is reached', async (url, rule, listener) => {
      const target = listener() ?? stack;
      const observe = row(`GET ${url}`, 'denied, 0 connections; twin via operator connect-to: 200');
      // The system resolver: `localhost` resolves as it would in production.
      const before = target.connections;
      const attack = await request([{ url }]);
      observe(`${describeOutcome(attack.outcome())}; ${target.connections - before} connections, ${attack.sockets} sockets`);
      expectRefused(attack, attack.outcome(), 'denied', rule);
      expect(target.connections).toBe(before);
      expect(attack.sockets).toBe(0);

      // Twin: the operator maps the destination to the listener; the same konnector gets through.
      const { hostname, port } = new URL(url);
      const mapping = parseConnectTo(`${hostname}:${port || 80}:127.0.0.1:${target.port}`);
      const twin = await request([{ url }], { connectTo: [mapping] });
      expect(twin.outcome()).toMatchObject({ ok: true, status: 200 });
      expect(target.connections).toBe(before + 1);
    });

    test('a public-looking name resolving to 127.0.0.1 is denied after one resolution', async () => {
      const observe = row('GET http://stack.test:6060/ (DNS answers 127.0.0.1)', 'denied, 0 connections');
      const dns = fakeResolver({ 'stack.test': ['127.0.0.1'] });
      const before = stack.connections;
      const run = await request([{ url: 'http://stack.test:6060/instances' }], { resolve: dns.resolve });
      observe(`${describeOutcome(run.outcome())}; ${stack.connections - before} connections`);
      expectRefused(run, run.outcome(), 'denied', /host stack\.test resolves only to refused addresses: 127\.0\.0\.1 is in 127\.0\.0\.0\/8/);
      expect(dns.calls).toEqual(['stack.test']);
      expect([stack.connections, run.sockets]).toEqual([before, 0]);

      const twin = await request([{ url: 'http://stack.test:6060/instances' }], {
        resolve: dns.resolve,
        connectTo: [parseConnectTo(`stack.test:6060:127.0.0.1:${stack.port}`)],
      });
      expect(twin.outcome()).toMatchObject({ ok: true, status: 200, text: 'stack admin' });
    });

    test('DNS rebinding: the socket goes to the address checked; the later private answer is denied', async () => {
      const observe = row('DNS rebinding rebind.test:6060 (public, then 127.0.0.1)', 'socket pinned to the checked public address; then denied');
      const dns = fakeResolver({ 'rebind.test': (call) => (call === 1 ? ['93.184.215.14'] : ['127.0.0.1']) });
      const before = stack.connections;
      // No packet may leave the machine: the test stops the socket once its (pinned) lookup answered.
      const watch = watchSockets({ stopBeforeConnect: true });
      let run;
      try {
        run = await request([{ url: 'http://rebind.test:6060/instances' }, { url: 'http://rebind.test:6060/instances' }], { resolve: dns.resolve });
      } finally {
        watch.stop();
      }
      observe(`1st: ${describeOutcome(run.outcome(0))}; 2nd: ${describeOutcome(run.outcome(1))}; ${stack.connections - before} connections`);
      expect(run.outcome(0)).toMatchObject({ ok: false, kind: 'network', message: expect.stringMatching(/before connecting to 93\.184\.215\.14/) });
      expect(watch.lookups).toEqual([{ host: 'rebind.test', address: '93.184.215.14' }]);
      expectRefused(run, run.outcome(1), 'denied', /rebind\.test resolves only to refused addresses: 127\.0\.0\.1/);
      // One resolution per connection, none between the check and the connect.
      expect(dns.calls).toEqual(['rebind.test', 'rebind.test']);
      expect(stack.connections).toBe(before);
    });

    test.each([
      ['http://127.0.0.1:6060/instances', /address of host 127\.0\.0\.1 refused/],
      ['http://localhost:5984/_all_dbs', /host localhost resolves only to refused addresses/],
      ['http://169.254.169.254/latest/meta-data/', /169\.254\.0\.0\/16/],
    ])('a redirect from the vendor to %s is denied at the hop; a redirect within the vendor is followed', async (to, rule) => {
      const observe = row(`302 vendor.test -> ${to}`, 'denied at the hop, 0 connections; twin redirect followed');
      const before = counts(stack, couchPort, vendor);
      const vendorRequests = vendor.requests.length;
      const run = await request([
        { url: `http://vendor.test/go?to=${encodeURIComponent(to)}` },
        { url: `http://vendor.test/go?to=${encodeURIComponent('/ping')}` },
      ]);
      observe(`${describeOutcome(run.outcome(0))}; twin: ${describeOutcome(run.outcome(1))}`);
      expectRefused(run, run.outcome(0), 'denied', rule);
      // Every socket the job opened went to the vendor.
      const [, , vendorBefore] = before;
      expect(counts(stack, couchPort)).toEqual(before.slice(0, 2));
      expect(run.sockets).toBe(vendor.connections - vendorBefore!);
      expect(run.outcome(1)).toMatchObject({ ok: true, status: 200, url: 'http://vendor.test/ping', text: 'pong' });
      expect(vendor.requests.slice(vendorRequests).map((r) => new URL(r.url, 'http://x').pathname)).toEqual(['/go', '/go', '/ping']);
    });

    test('a host outside the manifest allowed_hosts is denied, even one the operator maps; a listed one passes', async () => {
      const observe = row('GET http://evil.test/ (not in allowed_hosts)', 'denied, 0 connections; *.vendor.test: 200');
      const before = vendor.connections;
      const connectTo = ['evil.test', 'api.vendor.test'].map((h) => parseConnectTo(`${h}:80:127.0.0.1:${vendor.port}`));
      const run = await request([{ url: 'http://evil.test/ping' }, { url: 'http://vendor.test:8080/ping' }, { url: 'http://api.vendor.test/ping' }], { connectTo });
      observe(`${describeOutcome(run.outcome(0))}; port 8080: ${describeOutcome(run.outcome(1))}`);
      expectRefused(run, run.outcome(0), 'denied', /http:\/\/evil\.test is not in the konnector's allowedHosts \(vendor\.test, \*\.vendor\.test, /);
      expectRefused(run, run.outcome(1), 'denied', /port 8080 of host vendor\.test is refused \(the konnector's allowedHosts permits ports 80, 443\)/);
      expect(run.outcome(2)).toMatchObject({ ok: true, status: 200, text: 'pong' });
      expect(vendor.connections).toBe(before + 1);
    });

    test('schemes other than http and https are denied; http goes out', async () => {
      const urls = [
        'file:///etc/passwd',
        'file:///proc/self/environ',
        'ftp://vendor.test/bills.pdf',
        `gopher://127.0.0.1:${stack.port}/_SET`,
        'ws://vendor.test/socket',
        'data:text/plain,hello',
      ];
      const observers = urls.map((url) => row(`GET ${url}`, 'denied (scheme), nothing sent'));
      const before = counts(stack, vendor);
      const run = await request([...urls.map((url) => ({ url })), { url: 'http://vendor.test/ping' }]);
      urls.forEach((_, i) => observers[i]!(describeOutcome(run.outcome(i))));
      urls.forEach((url, i) => expectRefused(run, run.outcome(i), 'denied', new RegExp(`scheme "${new URL(url).protocol}" is refused`)));
      expect(run.outcome(urls.length)).toMatchObject({ ok: true, status: 200 });
      expect(counts(stack, vendor)).toEqual([before[0], before[1]! + 1]);
    });
  });

  describe('resource attacks', () => {
    test('a 1 GiB streamed response is cut at the response cap; the server stops well short of 1 GiB', async () => {
      const observe = row('1 GiB chunked response', `too-large at ${limits.http.maxResponseBytes} bytes, stream aborted`);
      const run = await request([{ url: 'http://vendor.test/stream' }, { url: 'http://vendor.test/stream?bytes=524288' }]);
      const stream = vendor.streams.at(-2)!;
      await stream.closed;
      observe(`${describeOutcome(run.outcome(0))}; server wrote ${(stream.written / MiB).toFixed(1)} MiB before the abort`);
      expectRefused(run, run.outcome(0), 'too-large', /the response body exceeds 1048576 bytes/);
      expect(stream.written).toBeLessThan(64 * MiB);
      expect(run.outcome(1)).toMatchObject({ ok: true, status: 200, bytes: 524288 });
      expect(run.report.bytesIn).toBeLessThan(2 * MiB);
      expect(run.report.memoryPeakBytes).toBeLessThanOrEqual(limits.memoryBytes);
    });

    test('a response announcing 1 GiB is refused on its headers, its body unread', async () => {
      const observe = row('1 GiB announced by content-length', 'too-large before reading the body');
      const run = await request([{ url: 'http://vendor.test/stream?declared' }]);
      await vendor.streams.at(-1)!.closed;
      observe(describeOutcome(run.outcome()));
      expectRefused(run, run.outcome(), 'too-large', /the response body of 1073741824 bytes exceeds 1048576 bytes/);
      expect(run.report.bytesIn).toBeLessThan(64 * 1024);
    });

    test('a slow drip and a server that never answers time out; a short drip completes', async () => {
      const observeDrip = row('slow drip, 1 byte / 100 ms forever', `timeout at bodyTimeout ${limits.http.bodyTimeoutMs} ms`);
      const observeStall = row('server never sends headers', `timeout at headersTimeout ${limits.http.headersTimeoutMs} ms`);
      const run = await request([{ url: 'http://vendor.test/drip' }, { url: 'http://vendor.test/stall' }, { url: 'http://vendor.test/drip?bytes=3&every=10' }]);
      observeDrip(describeOutcome(run.outcome(0)));
      observeStall(describeOutcome(run.outcome(1)));
      expect(run.outcome(0)).toMatchObject({ ok: false, kind: 'timeout', message: expect.stringMatching(/the response body took longer than 1500 ms/) });
      expect(run.outcome(1)).toMatchObject({ ok: false, kind: 'timeout', message: expect.stringMatching(/Headers Timeout/i) });
      expect(run.outcome(2)).toMatchObject({ ok: true, status: 200, text: '...' });
      expect(run.report.state).toBe('done');
    });

    test('a request flood ends the job at its request budget; another job has its own budget', async () => {
      const max = limits.http.maxRequests;
      const observe = row('flood: 1000 requests in one job', `job ends LIMIT_EXCEEDED.HTTP_REQUESTS after ${max}`);
      const pings = () => vendor.requests.filter((r) => r.url === '/ping').length;
      const before = pings();
      const flood = await request([{ url: 'http://vendor.test/ping', repeat: 1000 }]);
      observe(`${flood.report.error}: ${flood.report.message}; ${pings() - before} requests reached the server`);
      expect(flood.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.HTTP_REQUESTS', requests: max });
      expect(flood.report.message).toMatch(new RegExp(`HTTP_REQUESTS budget \\(limit ${max}\\b`));
      // The guest is not told (it could only retry): its request never returns.
      expect(flood.outcome()).toBeUndefined();
      expect(pings() - before).toBe(max);

      const twin = await request([{ url: 'http://vendor.test/ping', repeat: max }]);
      expect(twin.report).toMatchObject({ state: 'done', requests: max });
      expect(twin.outcome()).toMatchObject({ ok: true, sent: max });
    });

    test('an oversized request body and a redirect loop are refused; their twins pass', async () => {
      const observeBody = row('POST a 300 KiB body', 'too-large, nothing sent');
      const observeLoop = row('redirect loop', `network error after ${limits.http.maxRedirects} hops`);
      const posts = () => vendor.requests.filter((r) => r.method === 'POST').length;
      const loops = () => vendor.requests.filter((r) => r.url === '/loop').length;
      const [postsBefore, loopsBefore] = [posts(), loops()];
      const run = await request([
        { method: 'POST', url: 'http://vendor.test/ping', bodyBytes: 300 * 1024 },
        { url: 'http://vendor.test/loop' },
        { method: 'POST', url: 'http://vendor.test/ping', bodyBytes: 1024 },
      ]);
      observeBody(describeOutcome(run.outcome(0)));
      observeLoop(`${describeOutcome(run.outcome(1))}; ${loops() - loopsBefore} hops reached the server`);
      expectRefused(run, run.outcome(0), 'too-large', /request body of 307200 bytes exceeds the limit of 262144 bytes/);
      expect(run.outcome(1)).toMatchObject({ ok: false, kind: 'network', message: expect.stringMatching(/more than 3 redirects/) });
      expect(loops() - loopsBefore).toBe(limits.http.maxRedirects + 1);
      expect(run.outcome(2)).toMatchObject({ ok: true, status: 200 });
      expect(posts() - postsBefore).toBe(1);
    });
  });

  describe('request smuggling', () => {
    const smuggled = 'GET /admin HTTP/1.1\r\nHost: 127.0.0.1:6060\r\n\r\n';
    const attacks: [label: string, step: Record<string, unknown>, rule: RegExp][] = [
      ['CRLF in a header value', { headers: [['x-note', `a\r\nHost: 127.0.0.1:6060`]] }, /header "x-note" has a value with CR, LF/],
      ['CRLF in a header name', { headers: [['x-a\r\nHost', '127.0.0.1']] }, /is not a valid HTTP token/],
      ['Host override', { headers: [['Host', '127.0.0.1:6060']] }, /header "Host" is set by the host/],
      ['Transfer-Encoding + smuggled request', { method: 'POST', headers: [['Transfer-Encoding', 'chunked']], body: `0\r\n\r\n${smuggled}` }, /header "Transfer-Encoding" is set by the host/],
      ['Content-Length: 0 + smuggled request', { method: 'POST', headers: [['Content-Length', '0']], body: smuggled }, /header "Content-Length" is set by the host/],
      ['CRLF in the method', { method: 'GET /admin HTTP/1.1\r\nHost: 127.0.0.1:6060\r\n\r\nGET' }, /method .* is not supported/],
    ];

    test('header and method injection is refused before sending; clean headers and a CRLF-stripped URL go out', async () => {
      const observers = attacks.map(([label]) => row(label, 'invalid-request, nothing sent'));
      const observeUrl = row('CRLF in the URL', 'stripped by URL parsing; Host stays vendor.test');
      const before = counts(stack);
      const echoes = vendor.requests.length;
      const run = await request([
        ...attacks.map(([, step]) => ({ url: 'http://vendor.test/echo', ...step })),
        { url: 'http://vendor.test/echo\r\nHost: 127.0.0.1:6060' },
        { url: 'http://vendor.test/echo', headers: [['X-Note', 'hello']] },
      ]);
      attacks.forEach((_, i) => observers[i]!(describeOutcome(run.outcome(i))));
      const seen = vendor.requests.slice(echoes);
      observeUrl(`server saw ${JSON.stringify(seen[0]?.url)} with Host ${seen[0]?.headers.host}`);
      attacks.forEach(([, , rule], i) => expectRefused(run, run.outcome(i), 'invalid-request', rule));
      // Only the last two requests reached the vendor, each as one clean request.
      expect(seen.map((r) => [r.url, r.headers.host])).toEqual([
        ['/echoHost:%20127.0.0.1:6060', 'vendor.test'],
        ['/echo', 'vendor.test'],
      ]);
      expect(JSON.parse(String(run.outcome(attacks.length + 1)?.text))).toMatchObject({ 'x-note': 'hello', host: 'vendor.test' });
      expect(counts(stack)).toEqual(before);
    });
  });

  describe('the job log', () => {
    // The suite reads what the guest saw from its log. A konnector that returns
    // right after writing must not lose its last lines.
    test('keeps every log line a konnector wrote just before returning', async () => {
      const observe = row('return right after logging', 'every line in the job log');
      const written = ['globals', 'leftovers', 'process.env', 'Function("return process.env")'];
      const lost: number[] = [];
      for (let job = 0; job < 10; job++) {
        const run = await runHostile(hostileEscape, {}, env());
        expect(run.report.state).toBe('done');
        expect(run.outcomes.map((o) => o.attempt)).toEqual(written.slice(0, run.outcomes.length));
        lost.push(written.length - run.outcomes.length);
      }
      observe(`lines lost per job: ${lost.join(', ')}`);
      expect(lost).toEqual(Array(10).fill(0));
    });
  });

  describe('isolation between jobs', () => {
    test("a job never sees another job's cookies; within a job the jar replays them", async () => {
      const observe = row("read another job's session cookie", 'no cookie sent; own cookie replayed');
      const seen = vendor.requests.length;
      const alice = await request([{ url: 'http://vendor.test/login?as=alice' }, { url: 'http://vendor.test/whoami' }]);
      const mallory = await request([{ url: 'http://vendor.test/whoami' }]);
      observe(`other job's /whoami: ${describeOutcome(mallory.outcome())}; own: ${describeOutcome(alice.outcome(1))}`);
      expect(alice.outcome(1)).toMatchObject({ ok: true, text: 'session=alice' });
      expect(mallory.outcome()).toMatchObject({ ok: true, text: 'no cookie' });
      expect(vendor.requests.slice(seen).filter((r) => r.url === '/whoami').map((r) => r.headers.cookie)).toEqual(['session=alice', undefined]);
    });

    test.each([
      ['returns', {}],
      // What traps: a dynamic import on componentize-js, a runaway recursion on QuickJS (its import is a catchable error).
      ['traps', engine === 'quickjs' ? { recurse: true } : { imports: ['node:fs'] }],
    ])('a job that plants a secret in globals and prototypes, then %s, leaves nothing to the next job', async (how, ending) => {
      const observe = row(`plant a secret in globalThis and Object.prototype, then ${how}`, 'next jobs start clean');
      const secret = `planted-${Math.random()}`;
      const planter = await runHostile(hostileEscape, { plant: secret, ...ending }, env());
      // One after another, so that a pooled worker would be reused.
      const next = [await runHostile(hostileEscape, {}, env()), await runHostile(hostileEscape, {}, env())];
      observe(`planter ${planter.report.state}; next jobs found ${next.map((run) => JSON.stringify(attempted(run, 'leftovers')?.value)).join(', ')}`);
      expect(attempted(planter, 'leftovers')).toMatchObject({ ok: true, value: { global: null, prototype: null } });
      expect(planter.report).toMatchObject(how === 'returns' ? { state: 'done' } : { state: 'errored', error: 'UNKNOWN_ERROR.CRASH' });
      for (const run of next) {
        expect(run.report).toMatchObject({ state: 'done', error: null });
        expect(attempted(run, 'leftovers')).toMatchObject({ ok: true, value: { global: null, prototype: null } });
        expect(JSON.stringify(run)).not.toContain(secret);
      }
    });

    test('a spinning job and a flooding job beside a benign one: the benign job saves its bills correctly', async () => {
      const observeSpin = row('spin forever beside a benign job', 'LIMIT_EXCEEDED.WALL_CLOCK (or FUEL); benign job done');
      const observeFlood = row('flood 100000 requests beside a benign job', 'LIMIT_EXCEEDED.HTTP_REQUESTS; benign job done');
      const observeBenign = row('benign job beside the attackers', '3 bills in CouchDB, correct metadata');
      const account = `benign-account-${engine}`;
      const [spinner, flooder, benign] = await Promise.all([
        runHostile(hostileEscape, { spin: true }, env({ limits: { ...limits, wallClockMs: 3_000 } })),
        runHostile(hostileNet, { requests: [{ url: 'http://vendor.test/ping', repeat: 100_000 }] }, env({ limits: { ...limits, http: { ...limits.http, maxRequests: 200 } } })),
        runHostile(hostileNet, { requests: [{ url: 'http://vendor.test/ping' }], bills: 'http://vendor.test/bills' }, env(), account),
      ]);
      const response = await fetch(`${couch.url}/${databaseName('hostile.cozy.localhost', 'io.cozy.bills')}/_all_docs?include_docs=true`);
      const stored = ((await response.json()) as { rows: { doc: Record<string, unknown> & { cozyMetadata: Record<string, unknown> } }[] }).rows
        .map((r) => r.doc)
        .filter((doc) => doc.cozyMetadata.sourceAccount === account);
      observeSpin(`${spinner.report.error}: ${spinner.report.message}`);
      observeFlood(`${flooder.report.error}: ${flooder.report.message}`);
      observeBenign(`${benign.report.state}, saved ${JSON.stringify(benign.report.saved)}, ${stored.length} bills of the account in CouchDB`);
      // Whichever stops it first: the wall clock, or fuel metering where it is on.
      expect(spinner.report).toMatchObject({ state: 'errored', error: expect.stringMatching(/^LIMIT_EXCEEDED\.(WALL_CLOCK|FUEL)$/) });
      expect(flooder.report).toMatchObject({ state: 'errored', error: 'LIMIT_EXCEEDED.HTTP_REQUESTS', requests: 200 });
      expect(benign.report).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.bills': BILLS.length } });
      expect(benign.outcomes).toEqual([expect.objectContaining({ ok: true, text: 'pong' }), { bills: BILLS.length }]);
      expect(stored.map(({ vendor, vendorRef, amount, currency, date }) => ({ vendor, vendorRef, amount, currency, date })).sort((a, b) =>
        String(a.vendorRef).localeCompare(String(b.vendorRef)),
      )).toEqual(BILLS);
      for (const doc of stored) expect(doc.cozyMetadata).toMatchObject({ createdByApp: 'hostile-net', sourceAccount: account });
    });
  });
});

// Single-engine: the import list of a component (`konnector inspect` reads the componentize-js artifact); the QuickJS engine's imports are pinned in test/quickjs/engine.test.ts.
test('inspect lists only cozy:konnector/* and wasi:random/* imports: no wasi:cli/environment, filesystem, sockets or http', async () => {
  const observe = table.row('import wasi:cli/environment, wasi:filesystem, wasi:sockets, wasi:http', 'absent from `konnector inspect` imports');
  const inspected = await Promise.all(
    [netDir, escapeDir].map(async (dir) => {
      const cli = await konnectorCli(['inspect', await buildOnce(dir), '--json']);
      expect(cli.code, cli.stderr).toBe(0);
      return (JSON.parse(cli.stdout) as { imports: string[] }).imports;
    }),
  );
  observe(`imports: ${[...new Set(inspected.flat())].join(', ')}`);
  for (const imports of inspected) {
    expect(imports).toContain('cozy:konnector/http@0.1.0');
    for (const name of imports) expect(name).toMatch(/^(cozy:konnector\/(http|documents|files|log|clock)|wasi:random\/random)@/);
    expect(imports.join(' ')).not.toMatch(/wasi:(cli|filesystem|sockets|http|io)/);
  }
});
