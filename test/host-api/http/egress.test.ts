/**
 * The egress policy against real loopback servers: every attack is refused
 * before a connection opens (the server's connection count stays 0 and Node
 * creates no client socket), next to a benign twin that succeeds.
 */
import { describe, expect, test } from 'vitest';
import { expectHttpError, fakeResolver, get, makeHttp, startServer, text, watchSockets } from './helpers.ts';

/** Expects the request refused with no socket created, and the refusal logged. */
async function expectRefusedOffline(run: () => Promise<unknown>, message: RegExp, logs: string[]) {
  const watch = watchSockets();
  try {
    const err = await expectHttpError(run(), 'denied', message);
    expect(watch.sockets).toHaveLength(0);
    expect(logs).toContain(`warning: ${err.message}`);
  } finally {
    watch.stop();
  }
}

describe('literal loopback addresses, in every spelling', () => {
  // Each spelling reaches the dual-stack test server if let through.
  const spellings: [spelling: string, range: RegExp][] = [
    ['127.0.0.1', /127\.0\.0\.0\/8 \(loopback\)/],
    ['2130706433', /127\.0\.0\.0\/8/],
    ['0x7f.1', /127\.0\.0\.0\/8/],
    ['0177.0.0.1', /127\.0\.0\.0\/8/],
    ['127.1', /127\.0\.0\.0\/8/],
    ['0x7f000001', /127\.0\.0\.0\/8/],
    ['127.255.255.254', /127\.0\.0\.0\/8/],
    ['127.0.0.1.', /127\.0\.0\.0\/8/],
    ['%31%32%37.0.0.1', /127\.0\.0\.0\/8/],
    ['\uff11\uff12\uff17.\uff10.\uff10.\uff11', /127\.0\.0\.0\/8/],
    ['[::ffff:127.0.0.1]', /::ffff:7f00:1 embeds 127\.0\.0\.1/],
    ['[::ffff:7f00:1]', /embeds 127\.0\.0\.1/],
    ['[::1]', /::1\/128 \(loopback\)/],
    ['0.0.0.0', /0\.0\.0\.0\/8/],
    ['0', /0\.0\.0\.0\/8/],
    ['[::]', /::\/128 \(unspecified\)/],
  ];

  test.each(spellings)('http://%s:PORT is refused; the same through a connect-to exception succeeds', async (spelling, range) => {
    const server = await startServer();
    const url = `http://${spelling}:${server.port}/`;
    // allowedHosts opens the test server's port, so only the address rule stands in the way.
    const allowedHosts = [new URL(url).host];

    const attacker = makeHttp({ allowedHosts });
    await expectRefusedOffline(() => attacker.http.send(get(url)), range, attacker.logs);
    expect(server.connections).toBe(0);

    const { host } = new URL(url);
    const twin = makeHttp({ allowedHosts, connectTo: [`${host}:127.0.0.1:${server.port}`] });
    const res = await twin.http.send(get(url));
    expect([res.status, text(res.body)]).toEqual([200, 'ok']);
    expect(server.connections).toBe(1);
  });
});

describe('literal private, link-local and special addresses', () => {
  const addresses: [host: string, range: RegExp][] = [
    ['169.254.169.254', /169\.254\.0\.0\/16 \(link-local/],
    ['10.0.0.1', /10\.0\.0\.0\/8 \(private use\)/],
    ['10.255.255.255', /10\.0\.0\.0\/8/],
    ['172.16.0.1', /172\.16\.0\.0\/12/],
    ['172.31.255.254', /172\.16\.0\.0\/12/],
    ['192.168.1.1', /192\.168\.0\.0\/16/],
    ['100.64.0.1', /100\.64\.0\.0\/10/],
    ['192.0.0.170', /192\.0\.0\.0\/24/],
    ['198.18.0.1', /198\.18\.0\.0\/15/],
    ['224.0.0.1', /224\.0\.0\.0\/4 \(multicast\)/],
    ['255.255.255.255', /240\.0\.0\.0\/4/],
    ['[fe80::1]', /fe80::\/10 \(link-local\)/],
    ['[fd00:ec2::254]', /fc00::\/7 \(unique local\)/],
    ['[::ffff:169.254.169.254]', /embeds 169\.254\.169\.254/],
    ['[64:ff9b::a9fe:a9fe]', /64:ff9b::a9fe:a9fe embeds 169\.254\.169\.254/],
    ['[2002:a00:1::]', /2002:a00:1:: embeds 10\.0\.0\.1/],
    ['[2001:db8::1]', /2001:db8::\/32 \(documentation\)/],
    ['[::7f00:1]', /outside the global unicast space/],
  ];

  test.each(addresses)('http://%s/ is refused offline; the operator can map it to a test server', async (host, range) => {
    const server = await startServer();
    const attacker = makeHttp();
    await expectRefusedOffline(() => attacker.http.send(get(`http://${host}/latest/meta-data/`)), range, attacker.logs);

    const twin = makeHttp({ connectTo: [`${host}:80:127.0.0.1:${server.port}`] });
    const res = await twin.http.send(get(`http://${host}/latest/meta-data/`));
    expect(res.status).toBe(200);
    expect(server.requests.map((r) => r.url)).toEqual(['/latest/meta-data/']);
  });
});

describe('names resolving to internal addresses', () => {
  test('a public-looking name resolving to 127.0.0.1 is refused; mapped by the operator it succeeds', async () => {
    const server = await startServer();
    const dns = fakeResolver({ 'vendor.test': ['127.0.0.1'] });
    const allowedHosts = [`vendor.test:${server.port}`];
    const url = `http://vendor.test:${server.port}/bills`;

    const attacker = makeHttp({ allowedHosts, resolve: dns.resolve });
    const err = await expectHttpError(attacker.http.send(get(url)), 'denied', /vendor\.test resolves only to refused addresses: 127\.0\.0\.1 is in 127\.0\.0\.0\/8/);
    expect(attacker.logs).toEqual([`warning: ${err.message}`]);
    expect(dns.calls).toEqual(['vendor.test']);
    expect(server.connections).toBe(0);

    const twin = makeHttp({ allowedHosts, resolve: dns.resolve, connectTo: [`vendor.test:${server.port}:127.0.0.1:${server.port}`] });
    expect((await twin.http.send(get(url))).status).toBe(200);
    expect(dns.calls).toEqual(['vendor.test']); // the mapping needs no DNS
    expect(server.requests.map((r) => [r.url, r.headers.host])).toEqual([['/bills', `vendor.test:${server.port}`]]);
  });

  test.each([
    ['::1', /::1\/128/],
    ['::ffff:127.0.0.1', /embeds 127\.0\.0\.1/],
    ['64:ff9b::7f00:1', /embeds 127\.0\.0\.1/],
    ['169.254.169.254', /169\.254\.0\.0\/16/],
    ['not-an-ip', /"not-an-ip" is not an IP address/],
  ])('a name resolving to %s is refused before connecting', async (answer, reason) => {
    const server = await startServer();
    const dns = fakeResolver({ 'vendor.test': [answer] });
    const { http, logs } = makeHttp({ allowedHosts: [`vendor.test:${server.port}`], resolve: dns.resolve });
    await expectHttpError(http.send(get(`http://vendor.test:${server.port}/`)), 'denied', reason);
    expect(logs).toHaveLength(1);
    expect(server.connections).toBe(0);
  });

  test('localhost through the system resolver is refused', async () => {
    const server = await startServer();
    const { http } = makeHttp({ allowedHosts: [`localhost:${server.port}`], resolve: undefined });
    await expectHttpError(http.send(get(`http://localhost:${server.port}/`)), 'denied', /host localhost resolves only to refused addresses/);
    expect(server.connections).toBe(0);
  });

  test('of mixed answers only the public address is handed to the socket', async () => {
    const dns = fakeResolver({ 'vendor.test': ['127.0.0.1', '10.1.2.3', '93.184.215.14', '::1', 'fd00::1'] });
    const { http } = makeHttp({ resolve: dns.resolve });
    const watch = watchSockets({ stopBeforeConnect: true });
    try {
      await expectHttpError(http.send(get('http://vendor.test/')), 'network', /stopped by the test before connecting to 93\.184\.215\.14/);
    } finally {
      watch.stop();
    }
    expect(watch.lookups).toEqual([{ host: 'vendor.test', address: '93.184.215.14' }]);
  });

  test('DNS rebinding: the connection goes to the address checked, and a later private answer is refused', async () => {
    const server = await startServer();
    // First answer public, every later one the loopback test server.
    const dns = fakeResolver({ 'rebind.test': (call) => (call === 1 ? ['93.184.215.14'] : ['127.0.0.1']) });
    const { http } = makeHttp({ allowedHosts: [`rebind.test:${server.port}`], resolve: dns.resolve });
    const url = `http://rebind.test:${server.port}/`;

    const watch = watchSockets({ stopBeforeConnect: true });
    try {
      await expectHttpError(http.send(get(url)), 'network', /stopped by the test before connecting to 93\.184\.215\.14/);
    } finally {
      watch.stop();
    }
    // One resolution, and the socket was given that checked answer only: no second lookup to rebind.
    expect(dns.calls).toEqual(['rebind.test']);
    expect(watch.lookups).toEqual([{ host: 'rebind.test', address: '93.184.215.14' }]);

    // The next connection resolves anew, gets the private answer, and is refused.
    await expectHttpError(http.send(get(url)), 'denied', /127\.0\.0\.1 is in 127\.0\.0\.0\/8/);
    expect(dns.calls).toEqual(['rebind.test', 'rebind.test']);
    expect(server.connections).toBe(0);
  });
});

describe('destination rules', () => {
  test.each([
    ['file:///etc/passwd', /scheme "file:"/],
    ['ftp://vendor.test/bills.pdf', /scheme "ftp:"/],
    ['gopher://127.0.0.1:6060/_', /scheme "gopher:"/],
    ['ws://vendor.test/socket', /scheme "ws:"/],
    ['data:text/plain,hello', /scheme "data:"/],
    ['javascript:alert(1)', /scheme "javascript:"/],
  ])('%s is refused offline', async (url, rule) => {
    const { http, logs } = makeHttp();
    await expectRefusedOffline(() => http.send(get(url)), rule, logs);
  });

  test('proxy settings in the environment are ignored', async () => {
    const proxy = await startServer();
    const server = await startServer();
    const saved = { ...process.env };
    Object.assign(process.env, {
      HTTP_PROXY: `http://127.0.0.1:${proxy.port}`,
      http_proxy: `http://127.0.0.1:${proxy.port}`,
      HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
      ALL_PROXY: `http://127.0.0.1:${proxy.port}`,
    });
    try {
      const { http } = makeHttp({ connectTo: [`vendor.test:80:127.0.0.1:${server.port}`] });
      expect((await http.send(get('http://vendor.test/'))).status).toBe(200);
    } finally {
      process.env = saved;
    }
    expect(proxy.connections).toBe(0);
    expect(server.requests.map((r) => r.headers.host)).toEqual(['vendor.test']);
  });

  test('the twin of a refused scheme: http goes out (https: tls.test.ts)', async () => {
    const server = await startServer();
    const { http } = makeHttp({ connectTo: [`vendor.test:80:127.0.0.1:${server.port}`] });
    expect((await http.send(get('http://vendor.test/'))).status).toBe(200);
  });

  test('ports other than 80 and 443 are refused, unless the operator maps them or allowedHosts names them', async () => {
    const server = await startServer();
    const dns = fakeResolver({ 'vendor.test': ['93.184.215.14'] });
    const url = `http://vendor.test:${server.port}/`;
    const plain = makeHttp({ resolve: dns.resolve });
    await expectRefusedOffline(() => plain.http.send(get('http://vendor.test:25/')), /port 25 of host vendor\.test is refused/, plain.logs);
    await expectRefusedOffline(() => plain.http.send(get(url)), /port \d+ of host vendor\.test is refused/, plain.logs);

    const wrongPort = makeHttp({ allowedHosts: ['vendor.test:8443'], resolve: dns.resolve });
    await expectRefusedOffline(() => wrongPort.http.send(get(url)), /allowedHosts permits ports 8443/, wrongPort.logs);

    const mapping = `vendor.test:${server.port}:127.0.0.1:${server.port}`;
    expect((await makeHttp({ connectTo: [mapping] }).http.send(get(url))).status).toBe(200);
    expect((await makeHttp({ allowedHosts: [`vendor.test:${server.port}`], connectTo: [mapping] }).http.send(get(url))).status).toBe(200);
    expect(dns.calls).toEqual([]);
  });

  test('with allowedHosts only matching hosts and schemes pass', async () => {
    const server = await startServer();
    const connectTo = ['vendor.test', 'api.vendor.test', 'a.b.vendor.test', 'evil.test', 'vendor.test.evil.test'].map(
      (h) => `${h}:80:127.0.0.1:${server.port}`,
    );
    const { http, logs } = makeHttp({ allowedHosts: ['vendor.test', 'http://*.vendor.test'], connectTo });

    for (const ok of ['http://vendor.test/', 'http://VENDOR.test./', 'http://api.vendor.test/', 'http://a.b.vendor.test/']) {
      expect((await http.send(get(ok))).status).toBe(200);
    }
    for (const host of ['evil.test', 'vendor.test.evil.test']) {
      await expectRefusedOffline(
        () => http.send(get(`http://${host}/`)),
        new RegExp(`http://${host.replace(/\./g, '\\.')} is not in the konnector's allowedHosts \\(vendor\\.test, http://\\*\\.vendor\\.test\\)`),
        logs,
      );
    }
    // The wildcard entry is http-only; the plain entry allows both schemes.
    await expectRefusedOffline(() => http.send(get('https://api.vendor.test/')), /https:\/\/api\.vendor\.test is not in/, logs);
    expect(server.requests).toHaveLength(4);
  });

  test('a connect-to exception covers only its own host and port', async () => {
    const server = await startServer();
    const dns = fakeResolver({ 'other.test': ['127.0.0.1'], 'vendor.test': ['127.0.0.1'] });
    const { http } = makeHttp({ resolve: dns.resolve, connectTo: [`vendor.test:80:127.0.0.1:${server.port}`] });
    expect((await http.send(get('http://vendor.test/'))).status).toBe(200);
    await expectHttpError(http.send(get('http://other.test/')), 'denied', /other\.test resolves only to refused/);
    await expectHttpError(http.send(get('https://vendor.test/')), 'denied', /vendor\.test resolves only to refused/);
    await expectHttpError(http.send(get(`http://127.0.0.1:${server.port}/`)), 'denied', /port \d+ of host 127\.0\.0\.1/);
    expect(server.connections).toBe(1);
  });
});

describe('redirects are re-checked at every hop', () => {
  async function vendorRedirectingTo(location: (internalPort: number) => string) {
    const internal = await startServer((_req, res) => res.end('secret'));
    const vendor = await startServer((req, res) => {
      if (req.url === '/go') res.writeHead(302, { location: location(internal.port) }).end();
      else res.end(`landed on ${req.url}`);
    });
    return { internal, vendor, connectTo: `vendor.test:80:127.0.0.1:${vendor.port}` };
  }

  test('a redirect to an internal address is refused; a redirect within the vendor is followed', async () => {
    const { internal, vendor, connectTo } = await vendorRedirectingTo((port) => `http://127.0.0.1:${port}/admin`);
    const { http, logs } = makeHttp({ connectTo: [connectTo], allowedHosts: ['vendor.test', '127.0.0.1'] });
    await expectHttpError(http.send(get('http://vendor.test/go')), 'denied', /port \d+ of host 127\.0\.0\.1 is refused/);
    expect(logs).toHaveLength(1);

    const open = makeHttp({ connectTo: [connectTo], allowedHosts: ['vendor.test', `127.0.0.1:${internal.port}`] });
    await expectHttpError(open.http.send(get('http://vendor.test/go')), 'denied', /address of host 127\.0\.0\.1 refused: 127\.0\.0\.1 is in 127\.0\.0\.0\/8/);
    expect(internal.connections).toBe(0);

    const twin = await vendorRedirectingTo(() => '/home');
    const res = await makeHttp({ connectTo: [twin.connectTo] }).http.send(get('http://vendor.test/go'));
    expect([res.status, res.url, text(res.body)]).toEqual([200, 'http://vendor.test/home', 'landed on /home']);
    expect(vendor.requests.map((r) => r.url)).toEqual(['/go', '/go']);
  });

  test.each([
    ['http://169.254.169.254/latest/meta-data/iam', /169\.254\.0\.0\/16/],
    ['file:///etc/passwd', /scheme "file:"/],
    ['http://evil.test/', /http:\/\/evil\.test is not in the konnector's allowedHosts/],
    ['http://internal.test/', /internal\.test resolves only to refused addresses: 10\.0\.0\.7/],
    ['http://[::1]/', /::1\/128/],
  ])('a redirect to %s is refused', async (target, rule) => {
    const { vendor, connectTo } = await vendorRedirectingTo(() => target);
    const dns = fakeResolver({ 'internal.test': ['10.0.0.7'] });
    const allowedHosts = target.includes('evil') ? ['vendor.test'] : undefined;
    const { http } = makeHttp({ connectTo: [connectTo], resolve: dns.resolve, allowedHosts });
    await expectHttpError(http.send(get('http://vendor.test/go')), 'denied', rule);
    expect(vendor.requests.map((r) => r.url)).toEqual(['/go']);
  });
});
