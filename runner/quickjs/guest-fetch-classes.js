// The web's Headers, Request and Response, which QuickJS 2021-03-27 lacks and `fetch` (runner/compile/guest-fetch.js)
// carries its values in: what the fetch standard says of them for whole bodies (no streams, no Blob, no FormData;
// those stay missing as on docs/porting.md). The network is the host's `http.send`, reached only by guest-fetch.js.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/i;

function headerName(name) {
  const text = String(name);
  if (!TOKEN.test(text)) throw new TypeError(`Headers: "${text}" is not a valid HTTP header name`);
  return text.toLowerCase();
}

function headerValue(value) {
  const text = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
  if (/[\0\r\n]/.test(text)) throw new TypeError(`Headers: ${JSON.stringify(text)} is not a valid HTTP header value`);
  return text;
}

const LIST = Symbol('headers');

export class Headers {
  constructor(init) {
    Object.defineProperty(this, LIST, { value: new Map() });
    if (init === undefined || init === null) return;
    if (init instanceof Headers) {
      for (const [name, values] of init[LIST]) this[LIST].set(name, [...values]);
    } else if (typeof init[Symbol.iterator] === 'function') {
      for (const pair of init) {
        const [name, value, ...rest] = [...pair];
        if (value === undefined || rest.length > 0) throw new TypeError('Headers: each header must be a [name, value] pair');
        this.append(name, value);
      }
    } else if (typeof init === 'object') {
      for (const name of Object.keys(init)) this.append(name, init[name]);
    } else {
      throw new TypeError('Headers: init must be headers, pairs or a record');
    }
  }

  append(name, value) {
    const key = headerName(name);
    const values = this[LIST].get(key);
    if (values) values.push(headerValue(value));
    else this[LIST].set(key, [headerValue(value)]);
  }

  set(name, value) {
    this[LIST].set(headerName(name), [headerValue(value)]);
  }

  delete(name) {
    this[LIST].delete(headerName(name));
  }

  has(name) {
    return this[LIST].has(headerName(name));
  }

  get(name) {
    const values = this[LIST].get(headerName(name));
    return values ? values.join(', ') : null;
  }

  getSetCookie() {
    return [...(this[LIST].get('set-cookie') ?? [])];
  }

  *entries() {
    for (const name of [...this[LIST].keys()].sort()) {
      // set-cookie is the one header never combined (fetch standard, "sort and combine").
      if (name === 'set-cookie') for (const value of this[LIST].get(name)) yield [name, value];
      else yield [name, this.get(name)];
    }
  }

  *keys() {
    for (const [name] of this.entries()) yield name;
  }

  *values() {
    for (const [, value] of this.entries()) yield value;
  }

  forEach(callback, thisArg) {
    for (const [name, value] of this.entries()) callback.call(thisArg, value, name, this);
  }

  [Symbol.iterator]() {
    return this.entries();
  }

  get [Symbol.toStringTag]() {
    return 'Headers';
  }
}

const BYTES = Symbol('body');
const USED = Symbol('bodyUsed');

/** A body as bytes, and the content type it implies. */
function extract(body) {
  if (body === undefined || body === null) return { bytes: null, type: null };
  if (typeof body === 'string') return { bytes: encoder.encode(body), type: 'text/plain;charset=UTF-8' };
  if (body instanceof ArrayBuffer) return { bytes: new Uint8Array(body.slice(0)), type: null };
  if (ArrayBuffer.isView(body)) return { bytes: new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)), type: null };
  if (typeof URLSearchParams === 'function' && body instanceof URLSearchParams) {
    return { bytes: encoder.encode(String(body)), type: 'application/x-www-form-urlencoded;charset=UTF-8' };
  }
  return { bytes: encoder.encode(String(body)), type: 'text/plain;charset=UTF-8' };
}

function setBody(target, body, headers) {
  const { bytes, type } = extract(body);
  Object.defineProperty(target, BYTES, { value: bytes, writable: true });
  Object.defineProperty(target, USED, { value: false, writable: true });
  if (type && !headers.has('content-type')) headers.set('content-type', type);
}

/** The body read once, as the standard's "consume body". */
function consume(target) {
  if (target[USED]) return Promise.reject(new TypeError('Body has already been used'));
  target[USED] = true;
  return Promise.resolve(target[BYTES] ?? new Uint8Array(0));
}

const bodyMethods = {
  get bodyUsed() {
    return this[USED];
  },
  arrayBuffer() {
    return consume(this).then((bytes) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  },
  bytes() {
    return consume(this).then((bytes) => new Uint8Array(bytes));
  },
  text() {
    return consume(this).then((bytes) => decoder.decode(bytes));
  },
  json() {
    return this.text().then((text) => JSON.parse(text));
  },
};

function mixBody(cls) {
  for (const name of Object.getOwnPropertyNames(bodyMethods)) {
    Object.defineProperty(cls.prototype, name, { ...Object.getOwnPropertyDescriptor(bodyMethods, name), enumerable: false });
  }
}

const METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH'];

export class Request {
  constructor(input, init = {}) {
    const from = input instanceof Request ? input : null;
    const url = from ? from.url : new URL(String(input)).href;
    let method = init.method ?? from?.method ?? 'GET';
    if (!TOKEN.test(method)) throw new TypeError(`Request: "${method}" is not a valid HTTP method`);
    const upper = method.toUpperCase();
    if (METHODS.includes(upper)) method = upper;
    if (['CONNECT', 'TRACE', 'TRACK'].includes(upper)) throw new TypeError(`Request: the method ${upper} is forbidden`);
    this.url = url;
    this.method = method;
    this.headers = new Headers(init.headers ?? from?.headers);
    this.redirect = init.redirect ?? from?.redirect ?? 'follow';
    this.signal = init.signal ?? from?.signal ?? null;
    this.credentials = init.credentials ?? from?.credentials ?? 'same-origin';
    this.mode = init.mode ?? from?.mode ?? 'cors';
    this.cache = init.cache ?? from?.cache ?? 'default';
    this.referrer = init.referrer ?? from?.referrer ?? 'about:client';
    const body = init.body !== undefined ? init.body : from ? from[BYTES] : null;
    if (body !== null && body !== undefined && (method === 'GET' || method === 'HEAD')) {
      throw new TypeError(`Request: a ${method} request cannot have a body`);
    }
    setBody(this, body, this.headers);
  }

  clone() {
    if (this[USED]) throw new TypeError('Request.clone: the body has already been used');
    return new Request(this);
  }

  get [Symbol.toStringTag]() {
    return 'Request';
  }
}
mixBody(Request);

const NULL_BODY_STATUSES = [101, 103, 204, 205, 304];

export class Response {
  constructor(body = null, init = {}) {
    const status = init.status ?? 200;
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`Response: status ${status} is outside 200-599`);
    if (body !== null && body !== undefined && NULL_BODY_STATUSES.includes(status)) throw new TypeError(`Response: a ${status} response cannot have a body`);
    this.status = status;
    this.statusText = init.statusText ?? '';
    this.ok = status >= 200 && status < 300;
    this.headers = new Headers(init.headers);
    this.type = 'default';
    this.url = '';
    this.redirected = false;
    setBody(this, body, this.headers);
  }

  clone() {
    if (this[USED]) throw new TypeError('Response.clone: the body has already been used');
    const copy = new Response(this[BYTES], { status: this.status, statusText: this.statusText, headers: this.headers });
    Object.defineProperty(copy, 'url', { value: this.url });
    Object.defineProperty(copy, 'redirected', { value: this.redirected });
    return copy;
  }

  static json(data, init = {}) {
    const headers = new Headers(init.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new Response(JSON.stringify(data), { ...init, headers });
  }

  static redirect(url, status = 302) {
    if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError(`Response.redirect: ${status} is not a redirect status`);
    return new Response(null, { status, headers: { location: new URL(String(url)).href } });
  }

  get [Symbol.toStringTag]() {
    return 'Response';
  }
}
mixBody(Response);
