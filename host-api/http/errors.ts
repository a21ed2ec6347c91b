import type { ErrorKind } from '../../wit/types/interfaces/cozy-konnector-http.js';

/** The WIT `http.error-kind`. */
export type HttpErrorKind = ErrorKind;

/** A failed `send`: the runner hands `kind` and `message` to the guest as a WIT `http.error`. */
export class HttpError extends Error {
  constructor(
    readonly kind: HttpErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Bad operator or manifest configuration (allowed hosts, --connect-to, limits): fails before any job runs. */
export class HttpConfigError extends Error {
  constructor(
    readonly kind: 'invalid-allowed-host' | 'invalid-connect-to' | 'invalid-limits',
    message: string,
  ) {
    super(message);
    this.name = 'HttpConfigError';
  }
}
