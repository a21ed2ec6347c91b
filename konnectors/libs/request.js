/**
 * `requestFactory`: request-promise's API (the subset konnectors use) on top of
 * the host's `http.send`. Defaults are cozy-konnector-libs' own: JSON on,
 * redirects followed for every method, a browser User-Agent with `cheerio`.
 *
 * ```js
 * const request = requestFactory({ cheerio: true, jar: true })
 * const $ = await request('https://vendor.example/bills')
 * ```
 *
 * Cookies: the host keeps a cookie jar private to the job and replays it on
 * every request, so `jar: true` has no effect. A jar from `request.jar()`
 * mirrors the cookies the vendor sets in the requests it is passed to, and the
 * cookies set in it by hand are sent: the host merges a `Cookie` header with its
 * own jar (the host's jar wins a name both hold).
 *
 * Compression: `Accept-Encoding: gzip, deflate` is sent unless the konnector
 * sets its own or `gzip: false`, and a gzip, deflate or br body is decoded here
 * (the host never decompresses), within the job's response-size limit: past it
 * the request fails with the host's `too-large` error (decompress.js).
 */
import Bluebird from 'bluebird';
import { load } from 'cheerio';
import { Cookie, CookieJar } from 'tough-cookie';
import { responseLimit } from './context.js';
import { ACCEPT_ENCODING, decodeContent } from './decompress.js';
import { send } from './host.js';
import { stringify } from './querystring.js';
import { HostError, InvalidArgumentError, RequestError, StatusCodeError, UnsupportedError } from './exceptions.js';

export const DEFAULT_USER_AGENT = 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:36.0) Gecko/20100101 Firefox/36.0';

/** Options with a behaviour here. */
const HANDLED = new Set([
  'uri', 'url', 'baseUrl', 'method', 'headers', 'qs', 'form', 'body', 'json', 'cheerio', 'userAgent',
  'resolveWithFullResponse', 'followRedirect', 'followAllRedirects', 'encoding', 'simple', 'transform', 'auth',
  'gzip',
]);

/** Options accepted for compatibility, without effect: the host owns what they control. */
const IGNORED = new Set([
  'jar', // the host keeps the job's cookies (a jar from `jar()` also records what it sees)
  'strictSSL', // the host always verifies TLS certificates
  'rejectUnauthorized',
  'timeout', // the host enforces the job's timeouts
  'debug',
]);

const HINTS = {
  formData: 'multipart bodies are not supported yet; send a urlencoded `form` or a `body`',
  multipart: 'multipart bodies are not supported yet; send a urlencoded `form` or a `body`',
  proxy: 'the host decides how requests leave the sandbox',
  agent: 'the host decides how requests leave the sandbox',
  callback: 'use the returned promise',
};

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

function checkOptionNames(options, where) {
  for (const name of Object.keys(options)) {
    if (HANDLED.has(name) || IGNORED.has(name)) continue;
    throw new UnsupportedError(`the request option \`${name}\` (in ${where})`, HINTS[name] ?? `supported options are ${[...HANDLED, ...IGNORED].join(', ')}`);
  }
}

/** Header objects merged by name, case-insensitively; later ones win. */
function mergeHeaders(...sources) {
  const merged = new Map();
  for (const headers of sources) {
    if (!headers) continue;
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined) continue;
      merged.set(name.toLowerCase(), [name, value]);
    }
  }
  return Object.fromEntries(merged.values());
}

/** request's `auth`: basic (`user`/`username`, `pass`/`password`) or `bearer` (a string or a function giving one), sent at once. */
function authorization(auth) {
  if (auth.sendImmediately === false) {
    throw new UnsupportedError('`auth.sendImmediately: false` (a challenge first)', 'the credentials are sent with the request itself');
  }
  if (auth.bearer !== undefined) {
    return `Bearer ${typeof auth.bearer === 'function' ? auth.bearer() : auth.bearer}`;
  }
  const user = auth.user ?? auth.username;
  const pass = auth.pass ?? auth.password ?? '';
  if (user === undefined) throw new InvalidArgumentError('request: `auth` needs `user` (and `pass`) or `bearer`');
  const bytes = new TextEncoder().encode(`${user}:${pass}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

function hasHeader(headers, name) {
  return Object.keys(headers).some((key) => key.toLowerCase() === name);
}

/** cozy-konnector-libs' defaults (request.js `mergeDefaultOptions` and `getRequestOptions`). */
function factoryDefaults({ debug: _debug, ...options }) {
  const merged = {
    cheerio: false,
    headers: {},
    followAllRedirects: true,
    ...options,
    // As cozy-konnector-libs: JSON exactly when not cheerio, whatever `json` says.
    json: !options.cheerio,
  };
  const wantsUserAgent = merged.cheerio ? merged.userAgent === undefined || merged.userAgent : merged.userAgent;
  const { userAgent: _userAgent, ...rest } = merged;
  return {
    ...rest,
    headers: wantsUserAgent ? mergeHeaders({ 'User-Agent': DEFAULT_USER_AGENT }, merged.headers) : mergeHeaders(merged.headers),
  };
}

function resolveUrl(options) {
  const target = options.uri ?? options.url;
  if (target === undefined) throw new InvalidArgumentError('request: no URL: pass it as the first argument or as `uri`');
  let text = target instanceof URL ? target.href : String(target);
  if (options.baseUrl !== undefined) {
    text = `${String(options.baseUrl).replace(/\/+$/, '')}/${text.replace(/^\/+/, '')}`;
  }
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(`request: ${JSON.stringify(text)} is not an absolute URL: give a full http(s) URL or set \`baseUrl\``);
  }
  if (options.qs) {
    const query = stringify(options.qs);
    if (query) url.search = url.search ? `${url.search}&${query}` : `?${query}`;
  }
  return url.href;
}

const encoder = new TextEncoder();

function toBytes(body, what) {
  if (typeof body === 'string') return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new InvalidArgumentError(`request: ${what} must be a string or bytes (Uint8Array); for an object set \`json: true\``);
}

/** The request body and the content type it implies, if any. */
function buildBody(options) {
  const { form, body, json } = options;
  if (form !== undefined && body !== undefined) {
    throw new InvalidArgumentError('request: give either `form` or `body`, not both');
  }
  if (form !== undefined) {
    return { bytes: encoder.encode(typeof form === 'string' ? form : stringify(form)), type: 'application/x-www-form-urlencoded' };
  }
  const payload = body !== undefined ? body : json !== null && typeof json === 'object' ? json : undefined;
  if (payload === undefined) return { bytes: undefined, type: undefined };
  const isRaw = typeof payload === 'string' || payload instanceof Uint8Array || payload instanceof ArrayBuffer;
  if (json && !isRaw) return { bytes: encoder.encode(JSON.stringify(payload)), type: 'application/json' };
  return { bytes: toBytes(payload, '`body`'), type: undefined };
}

function headerList(headers) {
  const list = [];
  for (const [name, value] of Object.entries(headers)) {
    for (const item of Array.isArray(value) ? value : [value]) list.push([name, String(item)]);
  }
  return list;
}

/** Like Node's `IncomingMessage.headers`: lower-case names, `set-cookie` as an array, other repeats joined. */
function headerObject(list) {
  const headers = {};
  for (const [rawName, value] of list) {
    const name = rawName.toLowerCase();
    if (name === 'set-cookie') (headers[name] ??= []).push(value);
    else headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return headers;
}

function latin1(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return text;
}

function decodeBody(bytes, encoding) {
  // The component's bindings make the body in another realm: `instanceof Uint8Array` fails on it, so it is re-viewed.
  if (encoding === null) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const name = (encoding ?? 'utf8').toLowerCase();
  if (name === 'utf8' || name === 'utf-8') return new TextDecoder().decode(bytes);
  if (name === 'latin1' || name === 'binary' || name === 'iso-8859-1') return latin1(bytes);
  throw new UnsupportedError(`the response encoding ${JSON.stringify(encoding)}`, 'use utf8, latin1, or null for raw bytes');
}

function parseJson(body) {
  if (typeof body !== 'string' || body === '') return body;
  try {
    return JSON.parse(body);
  } catch {
    return body; // like request: a body that is not JSON stays a string
  }
}

function shouldFollow(method, options) {
  if (typeof options.followRedirect === 'function') {
    throw new UnsupportedError('a function as `followRedirect`', 'use true or false');
  }
  if (options.followRedirect === false) return false;
  return method === 'GET' || method === 'HEAD' || options.followAllRedirects === true;
}

async function perform(options) {
  const method = String(options.method ?? 'GET').toUpperCase();
  if (!METHODS.has(method)) {
    throw new InvalidArgumentError(`request: unsupported method ${JSON.stringify(options.method)}: use one of ${[...METHODS].join(', ')}`);
  }
  const url = resolveUrl(options);
  const { bytes, type } = buildBody(options);
  const headers = mergeHeaders(options.headers);
  const ownCookies = options.jar instanceof CookieJarMirror ? options.jar.getCookieString(url) : '';
  if (ownCookies !== '' && !hasHeader(headers, 'cookie')) headers.Cookie = ownCookies;
  if (options.userAgent === true && !hasHeader(headers, 'user-agent')) headers['User-Agent'] = DEFAULT_USER_AGENT;
  if (type && !hasHeader(headers, 'content-type')) headers['Content-Type'] = type;
  if (options.json && !hasHeader(headers, 'accept')) headers.Accept = 'application/json';
  if (options.auth && !hasHeader(headers, 'authorization')) headers.Authorization = authorization(options.auth);
  if (options.gzip !== false && !hasHeader(headers, 'accept-encoding')) headers['Accept-Encoding'] = ACCEPT_ENCODING;

  let answer;
  try {
    answer = await send({ method, url, headers: headerList(headers), body: bytes, followRedirects: shouldFollow(method, options) });
  } catch (error) {
    if (error instanceof HostError) throw new RequestError(error, options);
    throw error;
  }

  if (options.jar instanceof CookieJarMirror) options.jar.record(answer.url, answer.headers);
  const responseHeaders = headerObject(answer.headers);
  let content;
  try {
    // Whatever `gzip` says: a coding decoded here is always undone (request would hand back the encoded bytes with gzip: false).
    const where = `${method} ${new URL(answer.url).origin}`;
    content = await decodeContent(answer.body, responseHeaders['content-encoding'], { limit: responseLimit(), where });
  } catch (error) {
    throw new RequestError(error, options);
  }
  let body = decodeBody(content, options.encoding);
  if (options.json && !options.cheerio) body = parseJson(body);
  const response = {
    statusCode: answer.status,
    headers: responseHeaders,
    body,
    url: answer.url,
    request: { method, href: answer.url, uri: new URL(answer.url), headers },
  };
  if (options.simple !== false && (answer.status < 200 || answer.status > 299)) {
    throw new StatusCodeError(answer.status, body, options, response);
  }
  const full = options.resolveWithFullResponse === true;
  if (typeof options.transform === 'function') return options.transform(body, response, full);
  if (options.cheerio) {
    const $ = load(typeof body === 'string' ? body : new TextDecoder().decode(body));
    return full ? { ...response, body: $ } : $;
  }
  return full ? response : body;
}

function normalizeArguments(first, second) {
  if (typeof second === 'function' || typeof first === 'function') {
    throw new UnsupportedError('request callbacks', HINTS.callback);
  }
  if (typeof first === 'string' || first instanceof URL) return { ...(second ?? {}), uri: first };
  if (first && typeof first === 'object' && second === undefined) return first;
  throw new InvalidArgumentError('request: call it with a URL, a URL and options, or an options object');
}

/**
 * What `request.jar()` gives: request's RequestJar over a tough-cookie jar
 * (`_jar`, as CookieKonnector code reads it). The host keeps the cookies it
 * sends; this jar mirrors the `set-cookie` answers of the requests it is
 * passed to (`jar: j`), so a konnector can read the cookies its vendor set in
 * this job. Cookies set here by hand go with those requests too (the host
 * merges them with its own jar).
 */
export class CookieJarMirror {
  constructor() {
    this._jar = new CookieJar(undefined, { looseMode: true });
  }

  record(url, headers) {
    for (const [name, value] of headers) {
      if (name.toLowerCase() === 'set-cookie') this._jar.setCookieSync(value, url, { ignoreError: true });
    }
  }

  setCookie(cookie, uri, options) {
    return this._jar.setCookieSync(cookie, uri, { ignoreError: true, ...options });
  }

  getCookieString(uri) {
    return this._jar.getCookieStringSync(uri);
  }

  getCookies(uri) {
    return this._jar.getCookiesSync(uri);
  }
}

/** A request-promise-like function bound to `defaults` (no cozy defaults added). */
export function makeRequester(defaults) {
  // A bluebird promise, as request-promise's: konnectors chain `.map()`, `.mapSeries()`... on it.
  const rq = (first, second) =>
    Bluebird.try(() => {
      const options = normalizeArguments(first, second);
      checkOptionNames(options, 'the request call');
      return perform({ ...defaults, ...options, headers: mergeHeaders(defaults.headers, options.headers) });
    });
  for (const method of ['get', 'head', 'post', 'put', 'patch', 'delete', 'options']) {
    rq[method] = (first, second) => rq({ ...normalizeArguments(first, second), method: method.toUpperCase() });
  }
  rq.del = rq.delete;
  rq.defaults = (options = {}) => {
    checkOptionNames(options, 'defaults()');
    return makeRequester({ ...defaults, ...options, headers: mergeHeaders(defaults.headers, options.headers) });
  };
  rq.jar = () => new CookieJarMirror();
  rq.cookie = (text) => Cookie.parse(text, { loose: true });
  return rq;
}

/**
 * @param {object} [options] request options used as defaults for every call
 * @param {boolean} [options.cheerio] resolve with a cheerio `$` of the body (turns `json` off)
 * @param {boolean} [options.json] serialize object bodies and parse JSON answers (default true)
 * @param {boolean} [options.resolveWithFullResponse] resolve with `{statusCode, headers, body, request}`
 * @param {boolean} [options.gzip] false: ask for no compression (a compressed answer is decoded all the same)
 * @returns {Function} `request(uri | options, [options])` returning a promise
 */
export function requestFactory(options = {}) {
  checkOptionNames(options, 'requestFactory()');
  return makeRequester(factoryDefaults(options));
}
