/** Size caps, timeouts, per-job budgets, the concurrency cap and close(). */
import { describe, expect, test } from 'vitest';
import { createHttp, HttpConfigError } from '../../../host-api/http/index.ts';
import { expectHttpError, get, LIMITS, makeHttp, startServer, text, watchSockets } from './helpers.ts';
import { expectBudgetExceeded } from '../../support/budget.ts';

async function vendor(handler?: Parameters<typeof startServer>[0]) {
  const server = await startServer(handler);
  return { server, connectTo: [`vendor.test:80:127.0.0.1:${server.port}`] };
}

/** Serves /N as N bytes, announced with content-length, or chunked with ?chunked. */
function sized() {
  return vendor((req, res) => {
    const url = new URL(req.url, 'http://x');
    const body = Buffer.alloc(Number(url.pathname.slice(1)), 'a');
    if (url.searchParams.has('chunked')) {
      res.write(body.subarray(0, 10));
      res.end(body.subarray(10));
    } else res.end(body);
  });
}

describe('response size', () => {
  test.each(['', '?chunked'])('a body over maxResponseBytes is cut off (%s); one at the cap passes', async (mode) => {
    const { connectTo } = await sized();
    const { http, logs } = makeHttp({ connectTo, limits: { maxResponseBytes: 1000 } });
    await expectHttpError(http.send(get(`http://vendor.test/1001${mode}`)), 'too-large', /exceeds 1000 bytes/);
    expect(logs).toHaveLength(1);
    expect((await http.send(get(`http://vendor.test/1000${mode}`))).body.byteLength).toBe(1000);
  });

  test('an announced oversize body is refused without reading it', async () => {
    const { connectTo } = await sized();
    const { http } = makeHttp({ connectTo, limits: { maxResponseBytes: 1000 } });
    await expectHttpError(http.send(get('http://vendor.test/500000')), 'too-large', /body of 500000 bytes exceeds 1000 bytes/);
    expect(http.stats.bytesIn).toBeLessThan(1000);
  });
});

describe('request body size', () => {
  test('a body over maxRequestBodyBytes is refused before connecting; one at the cap is sent', async () => {
    const { server, connectTo } = await vendor((req, res) => res.end(String(req.body.length)));
    const { http } = makeHttp({ connectTo, limits: { maxRequestBodyBytes: 100 } });
    const watch = watchSockets();
    try {
      await expectHttpError(http.send(get('http://vendor.test/', { method: 'POST', body: new Uint8Array(101) })), 'too-large', /101 bytes exceeds the limit of 100/);
      expect(watch.sockets).toHaveLength(0);
    } finally {
      watch.stop();
    }
    const res = await http.send(get('http://vendor.test/', { method: 'POST', body: new Uint8Array(100) }));
    expect(text(res.body)).toBe('100');
    expect(server.requests).toHaveLength(1);
  });
});

describe('timeouts', () => {
  test('a slow drip that never ends hits the body deadline; a short drip completes', async () => {
    const { connectTo } = await vendor((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let sent = 0;
      const drip = setInterval(() => {
        res.write('x');
        sent += 1;
        if (req.url === '/short' && sent === 3) {
          clearInterval(drip);
          res.end();
        }
      }, 20);
      res.on('close', () => clearInterval(drip));
    });
    // The drip's gaps (20 ms) are far below the deadline: only a total deadline stops it.
    const { http } = makeHttp({ connectTo, limits: { bodyTimeoutMs: 400 } });
    await expectHttpError(http.send(get('http://vendor.test/forever')), 'timeout', /response body took longer than 400 ms/);
    expect(text((await http.send(get('http://vendor.test/short'))).body)).toBe('xxx');
  });

  test('a server that never answers hits the headers timeout', async () => {
    const { server, connectTo } = await vendor((req, res) => {
      if (req.url === '/fast') res.end('fast');
    });
    const { http } = makeHttp({ connectTo, limits: { headersTimeoutMs: 200 } });
    await expectHttpError(http.send(get('http://vendor.test/hang')), 'timeout', /Headers Timeout/i);
    expect(text((await http.send(get('http://vendor.test/fast'))).body)).toBe('fast');
    expect(server.requests.map((r) => r.url)).toEqual(['/hang', '/fast']);
  });

  test('a resolver that never answers hits the connect timeout', async () => {
    const { http } = makeHttp({ resolve: () => new Promise(() => {}), limits: { connectTimeoutMs: 200 } });
    await expectHttpError(http.send(get('http://vendor.test/')), 'timeout', /resolving vendor\.test took longer than 200 ms/);
  });
});

describe('budgets', () => {
  test('past maxRequests nothing more is sent; redirect hops count', async () => {
    const { server, connectTo } = await vendor((req, res) => {
      if (req.url === '/hop') res.writeHead(302, { location: '/' }).end();
      else res.end('ok');
    });
    const { http, logs } = makeHttp({ connectTo, limits: { maxRequests: 3 } });
    await http.send(get('http://vendor.test/'));
    await http.send(get('http://vendor.test/hop'));
    await expectBudgetExceeded(http.send(get('http://vendor.test/')), 'HTTP_REQUESTS', 3);
    // The sandbox ends the job and logs why; the capability itself logs only refusals.
    expect(logs).toHaveLength(0);
    expect(server.requests.map((r) => r.url)).toEqual(['/', '/hop', '/']);
    expect(http.stats.requests).toBe(3);
  });

  test('past maxBytesOut a request is refused before it is sent', async () => {
    const { server, connectTo } = await vendor();
    const { http } = makeHttp({ connectTo, limits: { maxBytesOut: 2000 } });
    await http.send(get('http://vendor.test/', { method: 'POST', body: new Uint8Array(1000) }));
    expect(http.stats.bytesOut).toBeGreaterThan(1000);
    await expectBudgetExceeded(http.send(get('http://vendor.test/', { method: 'POST', body: new Uint8Array(1000) })), 'HTTP_BYTES_OUT', 2000);
    expect(server.requests).toHaveLength(1);
    expect((await http.send(get('http://vendor.test/small'))).status).toBe(200);
  });

  test('past maxBytesIn the response is cut off', async () => {
    const { connectTo } = await sized();
    const { http } = makeHttp({ connectTo, limits: { maxBytesIn: 3000 } });
    await http.send(get('http://vendor.test/2000'));
    await expectBudgetExceeded(http.send(get('http://vendor.test/2000?chunked')), 'HTTP_BYTES_IN', 3000);
    expect(http.stats.bytesIn).toBeLessThanOrEqual(3000);
  });
});

describe('concurrency', () => {
  /** Holds every request until released; records the most seen in flight at once. */
  async function gate() {
    let inFlight = 0;
    let maxInFlight = 0;
    const waiting: (() => void)[] = [];
    const arrived: (() => void)[] = [];
    const { server, connectTo } = await vendor((_req, res) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      waiting.push(() => {
        inFlight -= 1;
        res.end('done');
      });
      arrived.splice(0).forEach((f) => f());
    });
    return {
      server,
      connectTo,
      get maxInFlight() {
        return maxInFlight;
      },
      /** Resolves once `n` requests are being held. */
      until: async (n: number) => {
        while (waiting.length < n) await new Promise<void>((r) => arrived.push(r));
      },
      releaseAll: () => waiting.splice(0).forEach((f) => f()),
    };
  }

  test('with maxConcurrent 2, two requests are in flight together', async () => {
    const g = await gate();
    const { http } = makeHttp({ connectTo: g.connectTo, limits: { maxConcurrent: 2 } });
    const both = Promise.all([http.send(get('http://vendor.test/a')), http.send(get('http://vendor.test/b'))]);
    await g.until(2); // would never happen under a cap of 1
    g.releaseAll();
    expect((await both).map((r) => text(r.body))).toEqual(['done', 'done']);
    expect(g.maxInFlight).toBe(2);
  });

  test('with maxConcurrent 1, the second request waits for the first', async () => {
    const g = await gate();
    const { http } = makeHttp({ connectTo: g.connectTo, limits: { maxConcurrent: 1 } });
    const first = http.send(get('http://vendor.test/a'));
    const second = http.send(get('http://vendor.test/b'));
    await g.until(1);
    // Can only pass wrongly (if the check ran before a leaked request arrived), never fail wrongly.
    await new Promise((r) => setTimeout(r, 100));
    expect(g.server.requests.map((r) => r.url)).toEqual(['/a']);
    g.releaseAll();
    await first;
    await g.until(1);
    g.releaseAll();
    await second;
    expect(g.server.requests.map((r) => r.url)).toEqual(['/a', '/b']);
    expect(g.maxInFlight).toBe(1);
  });
});

describe('lifecycle and configuration', () => {
  test('close() aborts what is in flight, and later sends fail', async () => {
    let arrived!: () => void;
    const received = new Promise<void>((r) => (arrived = r));
    const { connectTo } = await vendor(() => arrived());
    const { http } = makeHttp({ connectTo });
    const pending = http.send(get('http://vendor.test/hang'));
    await received;
    await http.close();
    await expectHttpError(pending, 'network');
    await expectHttpError(http.send(get('http://vendor.test/')), 'network', /closed/);
  });

  test.each([
    [{ maxRequests: -1 }, /maxRequests/],
    [{ maxConcurrent: 0 }, /maxConcurrent/],
    [{ connectTimeoutMs: 1.5 }, /connectTimeoutMs/],
    [{ maxRedirect: 3 }, /Unrecognized key/],
  ])('invalid limits %j are refused at creation', (patch, message) => {
    expect(() => createHttp({ limits: { ...LIMITS, ...patch } as typeof LIMITS })).toThrow(HttpConfigError);
    expect(() => createHttp({ limits: { ...LIMITS, ...patch } as typeof LIMITS })).toThrow(message);
  });

  test('a bad allowedHosts entry or connect-to is refused at creation', () => {
    expect(() => createHttp({ limits: LIMITS, allowedHosts: ['ftp://vendor.test'] })).toThrow(/allowedHosts entry "ftp:\/\/vendor\.test": scheme "ftp"/);
    expect(() => createHttp({ limits: LIMITS, connectTo: [{ host: 'vendor.test', port: 80, toAddress: 'localhost', toPort: 8080 }] })).toThrow(
      /"localhost" is not an IP address/,
    );
  });
});
