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

/**
 * Codes the host itself ends a job with, beside the konnector's own codes and
 * the sandbox's (runner/error-codes.ts).
 */
export type HostErrorCode =
  /** The job's io.cozy.accounts document was deleted before the job ran. */
  | 'HOST.ACCOUNT_NOT_FOUND'
  /** No artifact in --konnectors has the account's konnector slug. */
  | 'HOST.KONNECTOR_NOT_FOUND'
  /** The job's host died (or was drained) too many times while running it. */
  | 'HOST.INTERRUPTED'
  /** The host failed around the job (CouchDB unreachable...): retried like a konnector error. */
  | 'HOST.FAILURE';
