/** Request validation (header smuggling, methods, URLs), response shape, redirects and the cookie jar. */
import { describe, expect, test } from 'vitest';
import { expectHttpError, get, makeHttp, startServer, text, watchSockets } from './helpers.ts';

async function vendor(handler?: Parameters<typeof startServer>[0]) {
  const server = await startServer(handler);
  return { server, connectTo: [`vendor.test:80:127.0.0.1:${server.port}`, `other.test:80:127.0.0.1:${server.port}`] };
}

describe('headers from the konnector', () => {
  test.each([
    ['x-note', 'a\r\nHost: 169.254.169.254'],
    ['x-note', 'a\nSet-Cookie: x=y'],
    ['x-note', 'a\rb'],
    ['x-note', 'a\0b'],
    ['x-note', 'caf\u00e9 \u20ac'],
    ['Host', '169.254.169.254'],
    ['host', 'internal.test'],
    ['Content-Length', '0'],
    ['Transfer-Encoding', 'chunked'],
    ['Connection', 'keep-alive, Upgrade'],
    ['Upgrade', 'websocket'],
    ['Keep-Alive', 'timeout=600'],
    ['TE', 'trailers'],
    ['Trailer', 'x-smuggled'],
    ['Expect', '100-continue'],
    ['Proxy-Authorization', 'Basic Zm9vOmJhcg=='],
    ['proxy-connection', 'keep-alive'],
    ['X Note', 'space in the name'],
    ['X-Note:', 'colon in the name'],
    ['', 'empty name'],
    ['x-n\u00f6te', 'non-token name'],
  ])('%j: %j is refused before anything is sent', async (name, value) => {
    const { server, connectTo } = await vendor();
    const { http, logs } = makeHttp({ connectTo });
    const watch = watchSockets();
    try {
      const err = await expectHttpError(http.send(get('http://vendor.test/', { headers: [[name, value]] })), 'invalid-request');
      expect(err.message).toMatch(/header/);
      expect(logs).toEqual([`warning: ${err.message}`]);
    } finally {
      watch.stop();
    }
    expect(watch.sockets).toHaveLength(0);
    expect(server.connections).toBe(0);
  });

  test('the twin: ordinary headers, repeated ones included, arrive as sent', async () => {
    const { server, connectTo } = await vendor();
    const { http } = makeHttp({ connectTo });
    const headers: [string, string][] = [
      ['Accept', 'text/html'],
      ['X-Token', ' abc\tdef '],
      ['Authorization', 'Bearer t0k3n'],
      ['x-multi', 'one'],
      ['x-multi', 'two'],
      ['X-Latin1', 'r\u00e9sum\u00e9'],
    ];
    await http.send(get('http://vendor.test/', { headers }));
    const [seen] = server.requests;
    expect(seen!.headers).toMatchObject({
      accept: 'text/html',
      'x-token': 'abc\tdef',
      authorization: 'Bearer t0k3n',
      'x-multi': 'one, two',
      'x-latin1': 'r\u00e9sum\u00e9',
    });
    expect(seen!.headers.host).toBe('vendor.test');
    expect(seen!.headers.cookie).toBeUndefined();
  });
});

describe('methods, URLs and bodies', () => {
  test.each(['TRACE', 'CONNECT', 'get', 'PROPFIND', ''])('method %j is refused', async (method) => {
    const { server, connectTo } = await vendor();
    const { http } = makeHttp({ connectTo });
    await expectHttpError(http.send(get('http://vendor.test/', { method })), 'invalid-request', /method .* is not supported/);
    expect(server.connections).toBe(0);
  });

  test('every WIT method goes out with its body', async () => {
    const { server, connectTo } = await vendor((req, res) => res.end(req.method === 'HEAD' ? undefined : `${req.method} ${req.body.length}`));
    const { http } = makeHttp({ connectTo });
    for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
      const body = ['POST', 'PUT', 'PATCH'].includes(method) ? new TextEncoder().encode('a=1&b=2') : undefined;
      const res = await http.send(get('http://vendor.test/x', { method, body }));
      expect(text(res.body)).toBe(method === 'HEAD' ? '' : `${method} ${body ? 7 : 0}`);
    }
    expect(server.requests.map((r) => r.method)).toEqual(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
    expect(server.requests[2]!.body.toString()).toBe('a=1&b=2');
  });

  test.each([
    ['not a url', /is not an absolute URL/],
    ['/relative/path', /is not an absolute URL/],
    ['http://user:secret@vendor.test/', /carries credentials/],
  ])('url %j is refused', async (url, message) => {
    const { http } = makeHttp();
    await expectHttpError(http.send(get(url)), 'invalid-request', message);
  });

  test('the response comes back whole: status, final URL, repeated headers, binary body', async () => {
    const binary = Buffer.from([0, 1, 2, 253, 254, 255, 13, 10]);
    const { connectTo } = await vendor((_req, res) => {
      res.statusCode = 418;
      res.setHeader('x-many', ['a', 'b']);
      res.setHeader('set-cookie', ['s=1; Path=/', 't=2; Path=/']);
      res.end(binary);
    });
    const { http } = makeHttp({ connectTo });
    const res = await http.send(get('http://vendor.test/teapot?q=1#frag'));
    expect(res.status).toBe(418);
    expect(res.url).toBe('http://vendor.test/teapot?q=1#frag');
    expect(res.headers).toEqual(expect.arrayContaining([['x-many', 'a'], ['x-many', 'b'], ['set-cookie', 's=1; Path=/'], ['set-cookie', 't=2; Path=/']]));
    expect(Buffer.from(res.body)).toEqual(binary);
  });
});

describe('redirects', () => {
  function redirector(status: number, to = '/target') {
    return vendor((req, res) => {
      if (req.url === '/start') res.writeHead(status, { location: to }).end('moved');
      else res.end(JSON.stringify({ method: req.method, body: req.body.toString(), type: req.headers['content-type'] ?? null, auth: req.headers.authorization ?? null }));
    });
  }
  const post = (url: string) =>
    get(url, { method: 'POST', body: new TextEncoder().encode('x=1'), headers: [['content-type', 'application/x-www-form-urlencoded'], ['authorization', 'Bearer t']] });

  test.each([
    [303, 'GET', '', null],
    [302, 'GET', '', null],
    [301, 'GET', '', null],
    [307, 'POST', 'x=1', 'application/x-www-form-urlencoded'],
    [308, 'POST', 'x=1', 'application/x-www-form-urlencoded'],
  ])('a POST answered %i continues as %s', async (status, method, body, type) => {
    const { connectTo } = await redirector(status);
    const { http } = makeHttp({ connectTo });
    const res = await http.send(post('http://vendor.test/start'));
    expect([res.status, res.url]).toEqual([200, 'http://vendor.test/target']);
    expect(JSON.parse(text(res.body))).toEqual({ method, body, type, auth: 'Bearer t' });
  });

  test('a cross-origin hop drops the Authorization header', async () => {
    const { connectTo } = await redirector(307, 'http://other.test/target');
    const { http } = makeHttp({ connectTo });
    const res = await http.send(post('http://vendor.test/start'));
    expect(res.url).toBe('http://other.test/target');
    expect(JSON.parse(text(res.body))).toMatchObject({ method: 'POST', auth: null });
  });

  test('followRedirects false hands the 3xx back as is', async () => {
    const { server, connectTo } = await redirector(302);
    const { http } = makeHttp({ connectTo });
    const res = await http.send(get('http://vendor.test/start', { followRedirects: false }));
    expect([res.status, res.url, text(res.body)]).toEqual([302, 'http://vendor.test/start', 'moved']);
    expect(res.headers).toContainEqual(['location', '/target']);
    expect(server.requests).toHaveLength(1);
  });

  test('hops are capped at maxRedirects, each hop counting as a request', async () => {
    const { server, connectTo } = await vendor((req, res) => res.writeHead(302, { location: `/loop${req.url.length}` }).end());
    const { http } = makeHttp({ connectTo, limits: { maxRedirects: 3 } });
    await expectHttpError(http.send(get('http://vendor.test/')), 'network', /more than 3 redirects/);
    expect(server.requests).toHaveLength(4);
    expect(http.stats.requests).toBe(4);

    const twin = makeHttp({ connectTo, limits: { maxRedirects: 3 } });
    const res = await twin.http.send(get('http://vendor.test/', { followRedirects: false }));
    expect(res.status).toBe(302);
  });
});

describe('the cookie jar', () => {
  /** A vendor whose /login sets a session cookie and redirects to /account, which needs it. */
  function loginSite() {
    return vendor((req, res) => {
      if (req.url === '/login') {
        res.writeHead(302, { location: '/account', 'set-cookie': 'session=s3cr3t; Path=/; HttpOnly' }).end();
      } else if (req.url === '/account') {
        res.statusCode = req.headers.cookie === 'session=s3cr3t' ? 200 : 401;
        res.end(req.headers.cookie ?? 'no cookie');
      } else res.end(req.headers.cookie ?? 'no cookie');
    });
  }

  test('cookies set on a redirect hop are sent on the next hop and later requests', async () => {
    const { connectTo } = await loginSite();
    const { http } = makeHttp({ connectTo });
    const login = await http.send(get('http://vendor.test/login'));
    expect([login.status, login.url]).toEqual([200, 'http://vendor.test/account']);
    expect(text((await http.send(get('http://vendor.test/bills'))).body)).toBe('session=s3cr3t');
  });

  test('two jobs never share cookies', async () => {
    const { connectTo } = await loginSite();
    const alice = makeHttp({ connectTo });
    const bob = makeHttp({ connectTo });
    expect((await alice.http.send(get('http://vendor.test/login'))).status).toBe(200);
    const bobs = await bob.http.send(get('http://vendor.test/account'));
    expect([bobs.status, text(bobs.body)]).toEqual([401, 'no cookie']);
    expect(text((await alice.http.send(get('http://vendor.test/account'))).body)).toBe('session=s3cr3t');
  });

  test("a konnector's cookie header is merged with the jar: the jar wins a name both hold, and keeps none of the konnector's", async () => {
    const { connectTo } = await loginSite();
    const { http } = makeHttp({ connectTo });
    await http.send(get('http://vendor.test/login'));
    const merged = await http.send(get('http://vendor.test/bills', { headers: [['Cookie', 'session=forged; lang=fr']] }));
    expect(text(merged.body)).toBe('session=s3cr3t; lang=fr');
    expect(text((await http.send(get('http://vendor.test/bills'))).body)).toBe('session=s3cr3t');
  });

  test('a cookie stays with its domain', async () => {
    const { connectTo } = await loginSite();
    const { http } = makeHttp({ connectTo });
    await http.send(get('http://vendor.test/login'));
    expect(text((await http.send(get('http://other.test/bills'))).body)).toBe('no cookie');
  });
});

describe('bounded host work: cookies and header counts', () => {
  /** /cookies?n=N sets N cookies c0..cN-1 (PREFIX in their names); /count answers how many cookies came back. */
  function cookieSite() {
    return vendor((req, res) => {
      const url = new URL(req.url, 'http://vendor.test');
      if (url.pathname === '/cookies') {
        const n = Number(url.searchParams.get('n'));
        const prefix = url.searchParams.get('prefix') ?? 'c';
        res.setHeader('set-cookie', Array.from({ length: n }, (_, i) => `${prefix}${i}=${'v'.repeat(20)}; Path=/`));
        res.end('set');
      } else if (url.pathname === '/headers') {
        const n = Number(url.searchParams.get('n'));
        for (let i = 0; i < n; i++) res.setHeader(`x-h${i}`, '1');
        res.end('many');
      } else res.end(String(req.headers.cookie?.split('; ').length ?? 0));
    });
  }

  test('the jar takes maxCookies set-cookie values per job, then drops the rest with one warning; fewer all count', async () => {
    const { connectTo } = await cookieSite();
    const { http, logs } = makeHttp({ connectTo, limits: { maxCookies: 30 } });
    for (const prefix of ['a', 'b', 'c']) await http.send(get(`http://vendor.test/cookies?n=20&prefix=${prefix}`));
    expect(text((await http.send(get('http://vendor.test/count'))).body)).toBe('30');
    expect(logs.filter((l) => /maxCookies/.test(l))).toEqual([
      "warning: the job's cookie jar took 30 set-cookie values (maxCookies): later ones are dropped",
    ]);

    const twin = makeHttp({ connectTo, limits: { maxCookies: 30 } });
    await twin.http.send(get('http://vendor.test/cookies?n=20'));
    expect(text((await twin.http.send(get('http://vendor.test/count'))).body)).toBe('20');
    expect(twin.logs).toEqual([]);
  });

  test('the kept session is cut to its newest cookies within maxSessionBytes, with a warning, and resumes', async () => {
    const { connectTo } = await cookieSite();
    const { http, logs } = makeHttp({ connectTo, limits: { maxCookies: 100, maxSessionBytes: 4096 } });
    await http.send(get('http://vendor.test/cookies?n=60'));
    const session = await http.session();
    expect(Buffer.byteLength(session)).toBeLessThanOrEqual(4096);
    const kept = (JSON.parse(session) as { cookies: { key: string }[] }).cookies.map((c) => c.key);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.at(-1)).toBe('c59');
    expect(logs).toContainEqual(expect.stringMatching(new RegExp(`session is cut to its ${kept.length} newest cookies of 60`)));

    const next = makeHttp({ connectTo, session, limits: { maxSessionBytes: 4096 } });
    expect(text((await next.http.send(get('http://vendor.test/count'))).body)).toBe(String(kept.length));
    expect(next.logs).toEqual([]);
  });

  test('a kept session over maxSessionBytes is not read: the job starts without it, with a warning', async () => {
    const { connectTo } = await cookieSite();
    const big = makeHttp({ connectTo, limits: { maxSessionBytes: 1024 * 1024 } });
    await big.http.send(get('http://vendor.test/cookies?n=60'));
    const session = await big.http.session();
    const { http, logs } = makeHttp({ connectTo, session, limits: { maxSessionBytes: 1024 } });
    expect(text((await http.send(get('http://vendor.test/count'))).body)).toBe('0');
    expect(logs).toContainEqual(expect.stringMatching(/kept vendor session is \d+ bytes, more than maxSessionBytes 1024: starting without it/));
  });

  test('an unreadable kept session starts an empty jar with a warning, not silently', async () => {
    const { connectTo } = await cookieSite();
    const { http, logs } = makeHttp({ connectTo, session: '{"cookies": "not a list"' });
    expect(text((await http.send(get('http://vendor.test/count'))).body)).toBe('0');
    expect(logs).toContainEqual(expect.stringMatching(/^warning: the kept vendor session could not be read \(.+\): starting without it$/));
  });

  test('more header fields than maxHeaders: too-large for a response, invalid-request for a request; at the limit both pass', async () => {
    const { connectTo } = await cookieSite();
    const { http } = makeHttp({ connectTo, limits: { maxHeaders: 20 } });
    await expectHttpError(http.send(get('http://vendor.test/headers?n=30')), 'too-large', /the response has 3\d header fields, more than 20/);
    const headers = Array.from({ length: 21 }, (_, i): [string, string] => [`x-g${i}`, '1']);
    await expectHttpError(http.send(get('http://vendor.test/count', { headers })), 'invalid-request', /21 header fields, more than 20/);
    expect((await http.send(get('http://vendor.test/headers?n=10'))).status).toBe(200);
    expect((await http.send(get('http://vendor.test/count', { headers: headers.slice(1) }))).status).toBe(200);
  });
});
