// Node's `http` and `https` for konnectors and their npm dependencies
// (request, request-promise, oauth, vendor SDKs), on the one way out the
// sandbox has: the host's `http.send` (wit/konnector.wit). A request is
// buffered until `end()`, then sent whole; the response arrives whole and is
// replayed as a readable stream. Redirects are never followed here: the
// calling library follows them itself, each hop a new send the host checks.
//
// What the host owns is not sent from here: framing and connection headers
// (host, content-length, transfer-encoding, connection...) are dropped. A
// `cookie` header is sent and the host merges it with the job's jar (the
// jar's cookies win by name). Timeouts are the host's: `setTimeout` is kept
// for compatibility and never fires, as a send that takes too long fails with
// a `timeout` error instead.
import { EventEmitter } from 'events';
import { Readable } from 'stream';
import { Buffer } from 'buffer';
import { send } from '../../konnectors/libs/host.js';
import { HOST_OWNED } from './guest-fetch.js';

export const METHODS = ['ACL', 'BIND', 'CHECKOUT', 'CONNECT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LINK', 'LOCK', 'M-SEARCH',
  'MERGE', 'MKACTIVITY', 'MKCALENDAR', 'MKCOL', 'MOVE', 'NOTIFY', 'OPTIONS', 'PATCH', 'POST', 'PROPFIND', 'PROPPATCH',
  'PURGE', 'PUT', 'QUERY', 'REBIND', 'REPORT', 'SEARCH', 'SOURCE', 'SUBSCRIBE', 'TRACE', 'UNBIND', 'UNLINK', 'UNLOCK',
  'UNSUBSCRIBE'];

export const STATUS_CODES = {
  100: 'Continue', 101: 'Switching Protocols', 102: 'Processing', 103: 'Early Hints', 200: 'OK', 201: 'Created',
  202: 'Accepted', 203: 'Non-Authoritative Information', 204: 'No Content', 205: 'Reset Content', 206: 'Partial Content',
  207: 'Multi-Status', 208: 'Already Reported', 226: 'IM Used', 300: 'Multiple Choices', 301: 'Moved Permanently',
  302: 'Found', 303: 'See Other', 304: 'Not Modified', 305: 'Use Proxy', 307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  409: 'Conflict', 410: 'Gone', 411: 'Length Required', 412: 'Precondition Failed', 413: 'Payload Too Large',
  414: 'URI Too Long', 415: 'Unsupported Media Type', 416: 'Range Not Satisfiable', 417: 'Expectation Failed',
  418: "I'm a Teapot", 421: 'Misdirected Request', 422: 'Unprocessable Entity', 423: 'Locked', 424: 'Failed Dependency',
  425: 'Too Early', 426: 'Upgrade Required', 428: 'Precondition Required', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 451: 'Unavailable For Legal Reasons', 500: 'Internal Server Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported', 506: 'Variant Also Negotiates', 507: 'Insufficient Storage', 508: 'Loop Detected',
  509: 'Bandwidth Limit Exceeded', 510: 'Not Extended', 511: 'Network Authentication Required',
};

/** Connections are the host's: an Agent only carries the options libraries give it. */
export class Agent extends EventEmitter {
  constructor(options = {}) {
    super();
    this.options = { ...options };
    this.keepAlive = Boolean(options.keepAlive);
    this.maxSockets = options.maxSockets ?? Infinity;
    this.maxFreeSockets = options.maxFreeSockets ?? 256;
    this.sockets = {};
    this.freeSockets = {};
    this.requests = {};
  }

  destroy() {}
}

/** What libraries read of a socket: an https response's is authorized, as the host verified the certificate. */
function socketFacts(protocol) {
  const socket = new EventEmitter();
  return Object.assign(socket, {
    authorized: protocol === 'https:',
    encrypted: protocol === 'https:',
    connecting: false,
    remoteAddress: undefined,
    setTimeout: () => socket,
    setNoDelay: () => socket,
    setKeepAlive: () => socket,
    destroy: () => {},
    ref: () => socket,
    unref: () => socket,
  });
}

/** Node's IncomingMessage: a readable stream of the whole body, with its status and headers. */
export class IncomingMessage extends Readable {
  /** The body not streamed yet (Node's IncomingMessage has no `body`; libraries such as request set one). */
  #unread;

  constructor(answer, protocol) {
    super();
    this.statusCode = answer.status;
    this.statusMessage = STATUS_CODES[answer.status] ?? '';
    this.httpVersion = '1.1';
    this.httpVersionMajor = 1;
    this.httpVersionMinor = 1;
    this.url = '';
    this.rawHeaders = answer.headers.flat();
    this.headers = {};
    for (const [name, value] of answer.headers) {
      const key = name.toLowerCase();
      if (key === 'set-cookie') (this.headers[key] ??= []).push(value);
      else this.headers[key] = key in this.headers ? `${this.headers[key]}, ${value}` : value;
    }
    this.trailers = {};
    this.rawTrailers = [];
    this.socket = this.connection = socketFacts(protocol);
    this.complete = false;
    this.#unread = answer.body;
  }

  _read() {
    if (this.#unread === undefined) return;
    const body = Buffer.from(this.#unread.buffer, this.#unread.byteOffset, this.#unread.byteLength);
    this.#unread = undefined;
    if (body.length > 0) this.push(body);
    this.complete = true;
    this.push(null);
  }

  setTimeout(_ms, callback) {
    if (callback) this.once('timeout', callback);
    return this;
  }
}

function requestUrl(protocol, options) {
  const hostname = (options.hostname ?? options.host ?? 'localhost').replace(/:\d+$/, '');
  const host = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
  const port = options.port ?? (typeof options.host === 'string' ? /:(\d+)$/.exec(options.host)?.[1] : undefined);
  return `${options.protocol ?? protocol}//${host}${port ? `:${port}` : ''}${options.path ?? '/'}`;
}

/**
 * The host's refusal or failure with the `code` Node gives the same event, which libraries test
 * (request's ETIMEDOUT, retry helpers' ECONNRESET): the egress policy's refusal reads as a refused connection.
 */
function withNodeCode(error) {
  if (!error || typeof error !== 'object' || error.code !== undefined) return error;
  const message = String(error.message ?? '');
  if (error.kind === 'timeout') error.code = 'ETIMEDOUT';
  else if (error.kind === 'denied') error.code = 'ECONNREFUSED';
  else if (error.kind === 'network') {
    error.code = /could not resolve/.test(message) ? 'ENOTFOUND' : /refused/i.test(message) ? 'ECONNREFUSED' : 'ECONNRESET';
  }
  return error;
}

/** Node's ClientRequest: collects headers and body, sends on `end()`, emits 'response' or 'error'. */
export class ClientRequest extends EventEmitter {
  constructor(protocol, options, onResponse) {
    super();
    this.method = String(options.method ?? 'GET').toUpperCase();
    this.path = options.path ?? '/';
    this.url = requestUrl(protocol, options);
    this.protocol = protocol;
    this.host = options.hostname ?? options.host;
    this.agent = options.agent;
    this.headers = new Map();
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (value !== undefined) this.setHeader(name, value);
    }
    if (options.auth && !this.hasHeader('authorization')) {
      this.setHeader('Authorization', `Basic ${Buffer.from(options.auth).toString('base64')}`);
    }
    this.chunks = [];
    this.finished = false;
    this.aborted = false;
    this.destroyed = false;
    this.writable = true;
    if (onResponse) this.once('response', onResponse);
  }

  setHeader(name, value) {
    this.headers.set(name.toLowerCase(), [name, value]);
    return this;
  }

  getHeader(name) {
    return this.headers.get(name.toLowerCase())?.[1];
  }

  hasHeader(name) {
    return this.headers.has(name.toLowerCase());
  }

  removeHeader(name) {
    this.headers.delete(name.toLowerCase());
  }

  getHeaders() {
    return Object.fromEntries([...this.headers].map(([key, [, value]]) => [key, value]));
  }

  getHeaderNames() {
    return [...this.headers.keys()];
  }

  write(chunk, encoding, callback) {
    if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
    if (this.finished) {
      this.fail(new Error(`write after end: the request to ${this.url} was already sent`));
      return false;
    }
    if (chunk !== undefined && chunk !== null) this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk));
    if (callback) queueMicrotask(callback);
    return true;
  }

  end(chunk, encoding, callback) {
    if (typeof chunk === 'function') [callback, chunk] = [chunk, undefined];
    if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
    if (this.finished) return this;
    this.write(chunk, encoding);
    this.finished = true;
    this.writable = false;
    if (callback) this.once('finish', callback);
    // Sent once the caller's current turn is over, as Node does: listeners it adds after end() still hear.
    Promise.resolve().then(() => this.dispatch());
    return this;
  }

  async dispatch() {
    if (this.aborted) return;
    this.emit('socket', socketFacts(this.protocol));
    this.emit('finish');
    const headers = [];
    for (const [, [name, value]] of this.headers) {
      if (HOST_OWNED.has(name.toLowerCase()) || name.toLowerCase().startsWith('proxy-')) continue;
      for (const one of Array.isArray(value) ? value : [value]) headers.push([name, String(one)]);
    }
    const body = this.chunks.length > 0 ? new Uint8Array(Buffer.concat(this.chunks)) : undefined;
    let answer;
    try {
      answer = await send({ method: this.method, url: this.url, headers, body, followRedirects: false });
    } catch (error) {
      this.fail(withNodeCode(error));
      return;
    }
    if (this.aborted) return;
    this.res = new IncomingMessage(answer, this.protocol);
    this.res.req = this;
    if (this.listenerCount('response') === 0) this.res.resume();
    this.emit('response', this.res);
    this.emit('close');
  }

  fail(error) {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('error', error);
    this.emit('close');
  }

  abort() {
    if (this.aborted) return;
    this.aborted = true;
    this.destroyed = true;
    this.emit('abort');
    this.emit('close');
  }

  destroy(error) {
    if (error) this.fail(error);
    this.abort();
    return this;
  }

  setTimeout(_ms, callback) {
    if (callback) this.once('timeout', callback);
    return this;
  }

  setNoDelay() {}

  setSocketKeepAlive() {}

  flushHeaders() {}
}

function createModule(protocol) {
  const globalAgent = new Agent();
  /** http.request(url | options, [options], [callback]) as Node takes it. */
  function request(first, second, third) {
    let options;
    let callback = third;
    if (typeof first === 'string' || first instanceof URL) {
      const url = new URL(first);
      options = {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        auth: url.username ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined,
      };
      if (typeof second === 'function') callback = second;
      else options = { ...options, ...second };
    } else {
      options = first ?? {};
      callback = second;
    }
    return new ClientRequest(protocol, options, callback);
  }
  function get(first, second, third) {
    const req = request(first, second, third);
    req.end();
    return req;
  }
  const createServer = () => {
    throw new Error(`${protocol.slice(0, -1)}.createServer is not available in the konnector sandbox: a konnector cannot listen for connections`);
  };
  return { request, get, createServer, Agent, globalAgent, ClientRequest, IncomingMessage, METHODS, STATUS_CODES };
}

export const http = createModule('http:');
export const https = createModule('https:');
