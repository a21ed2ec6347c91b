/**
 * Errors of the worker host. Each has a `kind` the HTTP API maps to a status
 * code and the CLI to an exit code, and a message that says what is wrong and
 * how to fix it.
 */
export type ServeErrorKind =
  /** Bad input from an API client or the operator: HTTP 400. */
  | 'invalid'
  /** No bearer token, or the wrong one: HTTP 401. */
  | 'unauthorized'
  /** No such account, trigger or job: HTTP 404. */
  | 'not-found'
  /** The request is valid but contradicts the stored state: HTTP 409. */
  | 'conflict'
  /** The host is draining, or CouchDB/Redis does not answer: HTTP 503. */
  | 'unavailable';

export class ServeError extends Error {
  constructor(
    readonly kind: ServeErrorKind,
    message: string,
    /** For 'invalid': one entry per bad field, `path: problem`. */
    readonly issues: string[] = [],
  ) {
    super(message);
    this.name = 'ServeError';
  }
}
