/** Validation of the request a guest hands to `http.send`, before any policy or network step. */
import { HttpError } from './errors.ts';

export const METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * Header names the host owns. Letting the guest set them would let it:
 * - `host`: address another virtual host than the one the policy checked;
 * - `content-length`, `transfer-encoding`: frame the body itself, i.e. smuggle
 *   a second request into the connection;
 * - `connection`, `keep-alive`, `upgrade`, `te`, `trailer`, `expect`: change
 *   the connection's life or protocol, which the host's pool manages;
 * - `proxy-*`: there is no proxy; such headers would only leak to the origin.
 *
 * A `cookie` header is the konnector's own cookies (a library's jar, or one it
 * set by hand): it holds only what the konnector already knows, so it may
 * come, and the host merges it with the job's jar (`mergeCookieHeader`).
 */
const HOST_OWNED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect']);

/** RFC 9110 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 field value: visible Latin-1 and inner spaces/tabs; no CR, LF, NUL or other controls. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Guest header names and values together (request line included) may not exceed this. */
export const MAX_REQUEST_HEAD_BYTES = 64 * 1024;

export interface ValidRequest {
  method: string;
  url: URL;
  headers: [string, string][];
  body?: Uint8Array;
}

function invalid(message: string): HttpError {
  return new HttpError('invalid-request', message);
}

export function validateHeaders(headers: readonly (readonly [string, string])[]): [string, string][] {
  return headers.map(([name, value]) => {
    if (!TOKEN.test(name)) throw invalid(`header name ${JSON.stringify(name)} is not a valid HTTP token`);
    const lower = name.toLowerCase();
    if (HOST_OWNED.has(lower) || lower.startsWith('proxy-')) {
      throw invalid(`header "${name}" is set by the host and may not come from the konnector`);
    }
    if (!FIELD_VALUE.test(value)) {
      throw invalid(
        `header "${name}" has a value with CR, LF, NUL, another control character or a character above U+00FF ` +
          '(encode it, e.g. with encodeURIComponent)',
      );
    }
    return [name, value.replace(/^[\t ]+|[\t ]+$/g, '')];
  });
}

/** Bytes of header lines as sent (`name: value\r\n`). */
export function fieldBytes(headers: readonly (readonly [string, string])[]): number {
  let n = 0;
  for (const [name, value] of headers) n += name.length + value.length + 4;
  return n;
}

/** Bytes of the request line and headers as sent (close enough for budgets). */
export function headBytes(method: string, url: URL, headers: readonly (readonly [string, string])[]): number {
  return method.length + url.pathname.length + url.search.length + 12 + fieldBytes(headers);
}

export function validateRequest(
  req: { method: string; url: string; headers: readonly (readonly [string, string])[]; body?: Uint8Array },
  limits: { maxRequestBodyBytes: number; maxHeaders: number },
): ValidRequest {
  const maxBodyBytes = limits.maxRequestBodyBytes;
  if (!METHODS.includes(req.method)) {
    throw invalid(`method ${JSON.stringify(req.method)} is not supported (use one of ${METHODS.join(', ')}, upper case)`);
  }
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    throw invalid(`url ${JSON.stringify(req.url.slice(0, 200))} is not an absolute URL`);
  }
  if (url.username !== '' || url.password !== '') {
    throw invalid(`url of ${url.hostname} carries credentials: send them in an Authorization header instead`);
  }
  if (req.headers.length > limits.maxHeaders) {
    throw invalid(`the request has ${req.headers.length} header fields, more than ${limits.maxHeaders}`);
  }
  const headers = validateHeaders(req.headers);
  if (headBytes(req.method, url, headers) > MAX_REQUEST_HEAD_BYTES) {
    throw invalid(`the request line and headers exceed ${MAX_REQUEST_HEAD_BYTES} bytes`);
  }
  if (req.body && req.body.byteLength > maxBodyBytes) {
    throw new HttpError('too-large', `request body of ${req.body.byteLength} bytes exceeds the limit of ${maxBodyBytes} bytes`);
  }
  return { method: req.method, url, headers, body: req.body };
}

/**
 * The `cookie` header sent for a request: the job's jar's cookies, then the
 * konnector's own ones whose names the jar does not hold for this URL. The
 * jar wins a name both have, so a guest's stale copy never overrides what the
 * vendor set; the guest's cookies are sent, never stored in the jar.
 */
export function mergeCookieHeader(fromJar: string | undefined, fromGuest: readonly string[]): string | undefined {
  const pairs = fromJar ? fromJar.split(/;\s*/) : [];
  const held = new Set(pairs.map((pair) => pair.split('=', 1)[0]!.trim()));
  for (const pair of fromGuest.flatMap((value) => value.split(';'))) {
    const trimmed = pair.trim();
    if (trimmed === '') continue;
    const name = trimmed.split('=', 1)[0]!.trim();
    if (held.has(name)) continue;
    held.add(name);
    pairs.push(trimmed);
  }
  return pairs.length > 0 ? pairs.join('; ') : undefined;
}
