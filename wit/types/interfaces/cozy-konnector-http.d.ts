/** @module Interface cozy:konnector/http@0.1.0 **/
/**
 * Sends one request and waits for the whole response.
 * Limits: requests per job, bytes in and out per job, response size,
 * request body size, timeouts, redirect hops.
 */
export function send(req: Request): Response;
/**
 * Keeps the job's cookies for the next job of the same konnector and
 * account (cozy-konnector-libs' CookieKonnector session), or with false
 * forgets the kept ones. Without a call nothing changes; a job ending with
 * LOGIN_FAILED or USER_ACTION_NEEDED forgets them. Only that konnector and
 * account ever get them back.
 */
export function keepSession(keep: boolean): void;
/**
 * A request the guest asks the host to send.
 */
export interface Request {
  /**
   * HTTP method, upper case: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
   */
  method: string,
  /**
   * Absolute http:// or https:// URL. Other schemes are refused.
   */
  url: string,
  /**
   * Header names and values. Values may not contain CR or LF; `host`,
   * `connection`, `content-length`, `transfer-encoding` and proxy headers
   * are set by the host and refused from the guest. A `cookie` header is
   * merged with the job's jar (the jar's value wins a name both have) and
   * sent; it is never stored in the jar.
   */
  headers: Array<[string, string]>,
  /**
   * Request body, at most the job's request-body limit.
   */
  body?: Uint8Array,
  /**
   * Whether the host follows redirects (each hop re-checked by the
   * egress policy, at most the job's redirect limit).
   */
  followRedirects: boolean,
}
/**
 * What came back. Cookies are kept by the host in a jar private to the
 * job: `set-cookie` headers are stored there and replayed on later requests.
 * They are also passed back in `headers`, so a guest library's own jar can
 * mirror the job's cookies.
 */
export interface Response {
  status: number,
  /**
   * The final URL, after the redirects the host followed.
   */
  url: string,
  headers: Array<[string, string]>,
  /**
   * The whole body as the server sent it, at most the job's
   * response-size limit. The host never decodes a `content-encoding`
   * (gzip, br...): the guest does, within the same limit (`job`).
   */
  body: Uint8Array,
}
/**
 * # Variants
 * 
 * ## `"denied"`
 * 
 * The egress policy refused the destination (scheme, host, port or address).
 * ## `"invalid-request"`
 * 
 * The request itself is malformed (URL, method, header).
 * ## `"timeout"`
 * 
 * Connecting, waiting for headers or reading the body took too long.
 * ## `"too-large"`
 * 
 * The response or the request body is larger than allowed.
 * ## `"network"`
 * 
 * DNS, connection, TLS or protocol failure, or too many redirects.
 */
export type ErrorKind = 'denied' | 'invalid-request' | 'timeout' | 'too-large' | 'network';
export interface Error {
  kind: ErrorKind,
  /**
   * Human-readable: which rule, which host, which limit.
   */
  message: string,
}
