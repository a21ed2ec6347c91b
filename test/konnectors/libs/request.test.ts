/**
 * requestFactory and signin of the guest SDK, run as guest code against real
 * HTTP servers on 127.0.0.1 (see guest-harness.ts).
 */
import type { ServerResponse } from 'node:http';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVendorSite, type VendorSite } from '../../../konnectors/examples/example-bills/vendor-site.mts';
import type { HttpRequest } from '../../../host-api/http/index.ts';
import { startTestServer, type TestServer } from '../../support/http-server.ts';
import { createTestHost, loadGuest } from '../guest-harness.ts';

const GUEST = `
import { BaseKonnector, requestFactory, signin, submitForm } from 'cozy-konnector-libs';
export const json = requestFactory();
export const html = requestFactory({ cheerio: true, json: false });
// As in cozy-konnector-libs, json is always !cheerio: json: false is overridden.
export const full = requestFactory({ resolveWithFullResponse: true, json: false });
export const factory = (options) => requestFactory(options);
export { signin, submitForm };
const konnector = new BaseKonnector(async () => {});
export const signinMethod = (options) => konnector.signin(options);
export const title = ($) => $('h1').text();
`;

const ENCODED_BODIES = {
  json: Buffer.from('{"bills":[{"amount":12.5,"vendor":"Énergie"}]}'),
  html: Buffer.from('<html><body><h1>Factures</h1><p>Énergie</p></body></html>'),
  bytes: Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256)),
};

/** Content codings as servers apply them; `deflate-raw` is sent as `deflate` (a raw stream, as some servers send). */
const ENCODERS: Record<string, (body: Buffer) => Buffer> = {
  gzip: gzipSync,
  'x-gzip': gzipSync,
  deflate: deflateSync,
  'deflate-raw': deflateRawSync,
  br: brotliCompressSync,
  'gzip, br': (body) => brotliCompressSync(gzipSync(body)),
};

function sendEncoded(res: ServerResponse, coding: string, body: Buffer, type = 'application/octet-stream') {
  res.writeHead(200, { 'content-type': type, 'content-encoding': coding === 'deflate-raw' ? 'deflate' : coding });
  res.end(ENCODERS[coding]!(body));
}

/** Echoes requests as JSON, and a few fixed answers. */
function startApi(): Promise<TestServer> {
  return startTestServer((req, res) => {
    const url = new URL(req.url, 'http://api.example');
    const route = url.pathname;
    if (route === '/echo') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: req.body.toString('utf8') }));
    } else if (route === '/json') {
      res.writeHead(200, { 'content-type': 'application/json', 'x-Multi': ['a', 'b'], 'set-cookie': ['a=1', 'b=2'] });
      res.end('{"a":1,"list":[true]}');
    } else if (route === '/html') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body><h1>Bills</h1><table><tr><td>1</td></tr></table></body></html>');
    } else if (route === '/redirect') {
      res.writeHead(Number(url.searchParams.get('status') ?? 302), { location: '/echo?from=redirect' });
      res.end();
    } else if (route === '/status') {
      res.writeHead(Number(url.searchParams.get('code')), { 'content-type': 'text/plain' });
      res.end(`status ${url.searchParams.get('code')}`);
    } else if (route === '/bytes') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
    } else if (route === '/encoded') {
      // /encoded?coding=C&kind=json|html|bytes: one of ENCODED_BODIES under coding C.
      const kind = url.searchParams.get('kind') as keyof typeof ENCODED_BODIES;
      sendEncoded(res, url.searchParams.get('coding')!, ENCODED_BODIES[kind], kind === 'json' ? 'application/json' : kind === 'html' ? 'text/html' : undefined);
    } else if (route === '/zeros') {
      // /zeros?coding=C&bytes=N: N zero bytes under coding C.
      sendEncoded(res, url.searchParams.get('coding')!, Buffer.alloc(Number(url.searchParams.get('bytes'))));
    } else if (route === '/mislabelled') {
      // Bytes as sent, whatever the Content-Encoding claims.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': url.searchParams.get('coding')! });
      res.end(gzipSync(ENCODED_BODIES.bytes));
    } else if (route === '/latin1') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=iso-8859-1' });
      res.end(Buffer.from('café crème', 'latin1'));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
}

let api: TestServer;
let site: VendorSite;

beforeAll(async () => {
  [api, site] = await Promise.all([startApi(), startVendorSite()]);
});

afterAll(async () => {
  await Promise.all([api.stop(), site.stop()]);
});

type Requester = ((first: unknown, second?: unknown) => Promise<any>) & Record<string, any>;
interface Exports {
  json: Requester;
  html: Requester;
  full: Requester;
  factory(options: unknown): Requester;
  signin(options: unknown): Promise<any>;
  submitForm: unknown;
  signinMethod(options: unknown): Promise<any>;
  title($: unknown): string;
}

/**
 * The guest's exports, with a fresh host (and cookie jar), after a job that
 * gave the SDK its response-size limit (the runner's default unless given).
 */
async function guest(sent: HttpRequest[] = [], maxResponseBytes?: number) {
  const host = createTestHost({
    http: { connectTo: { 'api.example:80': api.port, 'energy.example:80': site.port }, sent },
  });
  const loaded = await loadGuest({ code: GUEST }, host);
  await loaded.run({ maxResponseBytes });
  return { ...(loaded.exports as unknown as Exports), logs: host.logs };
}

const echo = 'http://api.example/echo';

describe('requestFactory', () => {
  it("answers with bluebird promises, as request-promise's: konnectors chain .map() and .mapSeries() on them", async () => {
    const { json } = await guest();
    const answered = json(echo.replace(/echo$/, 'json')).then(() => [1, 2, 3]) as unknown as { mapSeries(f: (n: number) => number): Promise<number[]> };
    const ids = await answered.mapSeries((n) => n * 2);
    expect(ids).toEqual([2, 4, 6]);
    await expect(json('not a url at all')).rejects.toThrow();
  });

  it('parses JSON by default, asks for it, and sends no User-Agent (cozy-konnector-libs defaults)', async () => {
    const { json } = await guest();
    expect(await json('http://api.example/json')).toEqual({ a: 1, list: [true] });
    const seen = await json(echo);
    expect(seen.method).toBe('GET');
    expect(seen.headers.accept).toBe('application/json');
    expect(seen.headers['user-agent']).toBeUndefined();
  });

  it('resolves with a cheerio $ (parse5: the table gets its tbody) and a browser User-Agent', async () => {
    const sent: HttpRequest[] = [];
    const { html, title } = await guest(sent);
    const $ = await html('http://api.example/html');
    expect(title($)).toBe('Bills');
    expect($('table > tbody > tr > td').text()).toBe('1');
    expect(sent[0]!.headers).toContainEqual(['User-Agent', expect.stringContaining('Mozilla/5.0')]);
  });

  it('encodes qs like request/qs: nested objects, arrays, spaces, null and undefined', async () => {
    const { json } = await guest();
    const seen = await json({ uri: `${echo}?page=2`, qs: { q: 'a b&c', filter: { from: '2024-01' }, ids: [1, 2], empty: null, skip: undefined } });
    expect(seen.url).toBe('/echo?page=2&q=a%20b%26c&filter%5Bfrom%5D=2024-01&ids%5B0%5D=1&ids%5B1%5D=2&empty=');
  });

  it('posts a urlencoded form, and a JSON body with json on', async () => {
    const { json } = await guest();
    const form = await json.post(echo, { form: { login: 'jane@example.org', remember: 1 } });
    expect(form.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(form.body).toBe('login=jane%40example.org&remember=1');

    const body = await json({ uri: echo, method: 'PUT', body: { amount: 12.5, tags: ['a'] } });
    expect(body.method).toBe('PUT');
    expect(body.headers['content-type']).toBe('application/json');
    expect(JSON.parse(body.body)).toEqual({ amount: 12.5, tags: ['a'] });
  });

  it('gives the full response: status, Node-style headers, final URL after redirects', async () => {
    const { full } = await guest();
    const res = await full('http://api.example/json');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(res.headers['x-multi']).toBe('a, b');
    expect(res.body).toEqual({ a: 1, list: [true] });

    const redirected = await full('http://api.example/redirect');
    expect(redirected.request.uri.href).toBe('http://api.example/echo?from=redirect');
    expect(redirected.body.url).toBe('/echo?from=redirect');
  });

  it('rejects a non-2xx answer with a StatusCodeError, and resolves it with simple: false', async () => {
    const { json, full } = await guest();
    await expect(json('http://api.example/status?code=503')).rejects.toMatchObject({
      name: 'StatusCodeError', kind: 'status-code', statusCode: 503, error: 'status 503', message: '503 - "status 503"',
    });
    const res = await full({ uri: 'http://api.example/status?code=404', simple: false });
    expect(res.statusCode).toBe(404);
    // Not JSON: stays a string.
    expect(res.body).toBe('status 404');
  });

  it('follows redirects unless followRedirect is false', async () => {
    const { json, full } = await guest();
    await expect(json({ uri: 'http://api.example/redirect', followRedirect: false })).rejects.toMatchObject({ statusCode: 302 });
    const res = await full({ uri: 'http://api.example/redirect', followRedirect: false, simple: false });
    expect(res.headers.location).toBe('/echo?from=redirect');
  });

  it('follows redirects of a POST by default (followAllRedirects), not when it is turned off', async () => {
    const { json, factory } = await guest();
    const landed = await json.post('http://api.example/redirect?status=303', { form: { a: 1 } });
    expect(landed).toMatchObject({ method: 'GET', url: '/echo?from=redirect' });
    const strict = factory({ followAllRedirects: false });
    await expect(strict.post('http://api.example/redirect?status=303', { form: { a: 1 } })).rejects.toMatchObject({ statusCode: 303 });
  });

  it('returns raw bytes with encoding: null, and decodes latin1', async () => {
    const { json } = await guest();
    const bytes = await json({ uri: 'http://api.example/bytes', encoding: null });
    expect(Array.from(bytes as Uint8Array)).toEqual(Array.from({ length: 256 }, (_, i) => i));
    expect(await json({ uri: 'http://api.example/latin1', encoding: 'latin1' })).toBe('café crème');
  });

  it('merges defaults() headers case-insensitively, the call winning', async () => {
    const { factory } = await guest();
    const rq = factory({ headers: { 'X-Client': 'one', Accept: 'text/html' } }).defaults({ headers: { 'x-client': 'two' } });
    const seen = await rq(echo);
    expect(seen.headers['x-client']).toBe('two');
    expect(seen.headers.accept).toBe('text/html');
    expect(seen.body).toBe('');
  });

  it("sends request's `auth` as an Authorization header: basic, bearer, a bearer function; a header the caller set wins", async () => {
    const { json, factory } = await guest();
    const header = async (options: Record<string, unknown>) => ((await json({ uri: echo, ...options })) as { headers: Record<string, string> }).headers.authorization;
    expect(await header({ auth: { user: 'jane', pass: 'sécret' } })).toBe(`Basic ${Buffer.from('jane:sécret').toString('base64')}`);
    expect(await header({ auth: { username: 'jane', password: 'p' } })).toBe(`Basic ${Buffer.from('jane:p').toString('base64')}`);
    expect(await header({ auth: { bearer: 'tok' } })).toBe('Bearer tok');
    expect(await header({ auth: { bearer: () => 'fresh' } })).toBe('Bearer fresh');
    expect(await header({ auth: { bearer: 'tok' }, headers: { Authorization: 'Token mine' } })).toBe('Token mine');
    const viaDefaults = factory({ json: true, auth: { bearer: 'from-defaults' } });
    expect(((await viaDefaults(echo)) as { headers: Record<string, string> }).headers.authorization).toBe('Bearer from-defaults');
    await expect(json({ uri: echo, auth: { pass: 'p' } })).rejects.toThrow(/`auth` needs `user`/);
  });

  it('refuses unsupported options by name, and accepts the ones the host makes moot', async () => {
    const { json, factory } = await guest();
    expect(() => factory({ formData: { file: 'x' } })).toThrow(/request option `formData` \(in requestFactory\(\)\).*multipart/);
    await expect(json({ uri: echo, auth: { user: 'u', pass: 'p', sendImmediately: false } })).rejects.toMatchObject({
      name: 'UnsupportedError', kind: 'unsupported', message: expect.stringContaining('sendImmediately'),
    });
    // The benign twin: jar, strictSSL, gzip and timeout are accepted (the host owns cookies, TLS, timeouts).
    const rq = factory({ jar: true, strictSSL: false, gzip: true, timeout: 5000 });
    expect((await rq(echo)).method).toBe('GET');
  });

  it("gives request.jar(): a mirror of the cookies the vendor set in this job's requests it was passed to, readable as request's jar is", async () => {
    const { factory } = await guest();
    const jar = factory({}).jar();
    const base = echo.replace(/\/echo$/, '');
    expect(jar.getCookieString(base)).toBe('');
    await factory({ jar, json: true })(`${base}/json`);
    expect(jar.getCookieString(base)).toBe('a=1; b=2');
    expect(jar._jar.toJSON().cookies.map((c: { key: string; value: string }) => `${c.key}=${c.value}`)).toEqual(['a=1', 'b=2']);
    // A jar not passed to the request sees nothing: each jar holds what its own requests were answered.
    const other = factory({}).jar();
    await factory({ json: true })(`${base}/json`);
    expect(other.getCookies(base)).toEqual([]);
    other.setCookie('c=3', base);
    expect(other.getCookieString(base)).toBe('c=3');
    // A cookie set by hand goes with the requests the jar is passed to, beside the host's.
    const seen = await factory({ jar: other, json: true })(echo);
    expect(seen.headers.cookie.split('; ').sort()).toEqual(['a=1', 'b=2', 'c=3']);
  });

  it('turns a host refusal into a RequestError carrying the WIT error kind', async () => {
    const { json } = await guest();
    await expect(json('http://elsewhere.example/')).rejects.toMatchObject({
      name: 'RequestError', kind: 'request', cause: { name: 'HostError', interface: 'http', kind: 'denied' },
    });
    await expect(json('/relative/path')).rejects.toMatchObject({ name: 'InvalidArgumentError', message: expect.stringContaining('baseUrl') });
    const base = (await guest()).factory({ baseUrl: 'http://api.example/' });
    expect((await base('/echo')).url).toBe('/echo');
  });
});

describe('compressed responses', () => {
  const encoded = (coding: string, kind: string) => `http://api.example/encoded?coding=${encodeURIComponent(coding)}&kind=${kind}`;

  it('asks for gzip and deflate as request does, unless the konnector sets its own Accept-Encoding or gzip: false', async () => {
    const { json, factory } = await guest();
    expect((await json(echo)).headers['accept-encoding']).toBe('gzip, deflate');
    expect((await factory({ headers: { 'accept-encoding': 'br' } })(echo)).headers['accept-encoding']).toBe('br');
    expect((await factory({ gzip: false })(echo)).headers['accept-encoding']).toBeUndefined();
  });

  it.each(Object.keys(ENCODERS))('decodes a %s body to the exact JSON, cheerio page and bytes', async (coding) => {
    const { json, html, full, title } = await guest();
    expect(await json(encoded(coding, 'json'))).toEqual({ bills: [{ amount: 12.5, vendor: 'Énergie' }] });
    const $ = await html(encoded(coding, 'html'));
    expect(title($)).toBe('Factures');
    expect($('p').text()).toBe('Énergie');
    const bytes = await json({ uri: encoded(coding, 'bytes'), encoding: null });
    expect(Buffer.from(bytes as Uint8Array).equals(ENCODED_BODIES.bytes)).toBe(true);
    // The headers stay those the server sent, as with request.
    const res = await full(encoded(coding, 'json'));
    expect(res.headers['content-encoding']).toBe(coding === 'deflate-raw' ? 'deflate' : coding);
  });

  it('leaves a body whose coding it does not know as sent, as request does', async () => {
    const { json } = await guest();
    for (const coding of ['zstd', 'gzip, zstd']) {
      const bytes = await json({ uri: `http://api.example/mislabelled?coding=${encodeURIComponent(coding)}`, encoding: null });
      expect(Buffer.from(bytes as Uint8Array).equals(gzipSync(ENCODED_BODIES.bytes))).toBe(true);
    }
  });

  it('fails with a RequestError naming the coding when a body cannot be decoded', async () => {
    const { json } = await guest();
    for (const coding of ['br', 'deflate']) {
      // gzip bytes are neither a brotli nor a deflate stream.
      await expect(json(`http://api.example/mislabelled?coding=${coding}`)).rejects.toMatchObject({
        name: 'RequestError', message: expect.stringContaining(`GET http://api.example: the ${coding} response body cannot be decoded`),
      });
    }
  });

  it.each(['gzip', 'deflate', 'br'])("holds a %s body to the job's response-size limit: past it, the host's too-large error; at it, the body whole", async (coding) => {
    const limit = 256 * 1024;
    const { json } = await guest([], limit);
    const zeros = (bytes: number) => json({ uri: `http://api.example/zeros?coding=${coding}&bytes=${bytes}`, encoding: null });
    expect((await zeros(limit)).length).toBe(limit);
    const tooLarge = {
      name: 'RequestError',
      cause: { name: 'HostError', interface: 'http', kind: 'too-large', message: `http: too-large: GET http://api.example: the response body decoded from ${coding} exceeds ${limit} bytes` },
    };
    await expect(zeros(limit + 1)).rejects.toMatchObject(tooLarge);
    await expect(zeros(64 * 1024 * 1024)).rejects.toMatchObject(tooLarge);
  });
});

describe('signin', () => {
  const form = { url: 'http://energy.example/login', formSelector: 'form#login-form' };
  const loggedIn = (_status: number, $: any) => $('a[href="/logout"]').length === 1;

  it('submits the form with its hidden inputs and resolves with the parsed landing page', async () => {
    const sent: HttpRequest[] = [];
    const { signin, title } = await guest(sent);
    const $ = await signin({ ...form, formData: { login: site.credentials.login, password: site.credentials.password }, validate: loggedIn });
    expect($('.welcome').text()).toBe(`Welcome, ${site.credentials.login}`);
    expect(title($)).toBe('Example Energy');
    const posted = new TextDecoder().decode(sent[1]!.body);
    expect(posted).toMatch(/^csrf=[0-9a-f]{32}&login=jane\.doe%40example\.org&password=correct%20horse%20battery%20staple$/);
  });

  it('computes formData from the login page when given a function', async () => {
    const { signin } = await guest();
    const $ = await signin({
      ...form,
      formData: ($page: any) => ({ login: site.credentials.login, password: $page('form#login-form').length ? site.credentials.password : '' }),
      validate: loggedIn,
    });
    expect($('a[href="/logout"]')).toHaveLength(1);
  });

  it('fails with LOGIN_FAILED when validate says so', async () => {
    const { signin } = await guest();
    await expect(signin({ ...form, formData: { login: site.credentials.login, password: 'nope' }, validate: loggedIn }))
      .rejects.toMatchObject({ message: 'LOGIN_FAILED' });
  });

  it('rejects with INVALID_FORM and VENDOR_DOWN as cozy-konnector-libs does', async () => {
    const { signin, logs } = await guest();
    await expect(signin({ ...form, formSelector: 'form#missing' })).rejects.toMatchObject({ message: 'INVALID_FORM' });
    await expect(signin({ ...form, url: 'http://down.example/login' })).rejects.toMatchObject({ message: 'VENDOR_DOWN' });
    expect(logs.at(-1)).toEqual({ level: 'error', message: expect.stringContaining("http://down.example is not in the operator's allowedHosts") });
  });

  it('throws at once, before any request, on a missing url or formSelector and an unknown parse strategy', async () => {
    const sent: HttpRequest[] = [];
    const { signin } = await guest(sent);
    expect(() => signin({ formSelector: form.formSelector })).toThrow('signin: `url` must be defined');
    expect(() => signin({ url: form.url })).toThrow('signin: `formSelector` must be defined');
    expect(() => signin({ ...form, parse: 'xml' })).toThrow('UNKNOWN_PARSING_STRATEGY');
    expect(sent).toEqual([]);
    // The benign twin: the same call with a known strategy goes on to the vendor, and rejects there.
    await expect(signin({ ...form, parse: 'raw', validate: () => false })).rejects.toMatchObject({ message: 'LOGIN_FAILED' });
    expect(sent.map((request) => request.method)).toEqual(['GET', 'POST']);
    expect(sent[1]!.headers).toContainEqual(['Referer', form.url]);
  });

  it("rejects, as BaseKonnector's async signin method, where the function throws at once", async () => {
    const { signinMethod } = await guest();
    const pending = signinMethod({ formSelector: form.formSelector });
    await expect(pending).rejects.toThrow('signin: `url` must be defined');
  });

  it('is also exported as submitForm, as upstream', async () => {
    const { signin, submitForm } = await guest();
    expect(submitForm).toBe(signin);
  });
});
