/**
 * Error classes thrown by the SDK. Each has a `kind` so callers can tell them
 * apart without parsing messages. `RequestError` and `StatusCodeError` keep the
 * names and fields of request-promise's errors, which konnectors test for.
 */

/** A WIT import returned `err`: `kind` is the WIT error-kind (e.g. 'denied', 'forbidden'). */
export class HostError extends Error {
  /** @param {'http'|'documents'|'files'} interfaceName @param {string} kind @param {string} message */
  constructor(interfaceName, kind, message) {
    super(`${interfaceName}: ${kind}: ${message}`);
    this.name = 'HostError';
    this.interface = interfaceName;
    this.kind = kind;
  }
}

/** A feature or option of cozy-konnector-libs this runner does not provide (yet). */
export class UnsupportedError extends Error {
  /** @param {string} what @param {string} [hint] */
  constructor(what, hint) {
    super(`${what} is not supported by the WebAssembly konnector runner${hint ? `: ${hint}` : ''}`);
    this.name = 'UnsupportedError';
    this.kind = 'unsupported';
  }
}

/** Bad arguments given to an SDK function (what is wrong and how to fix it). */
export class InvalidArgumentError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'InvalidArgumentError';
    this.kind = 'invalid-argument';
  }
}

/** The request could not be sent or got no answer (request-promise's RequestError). */
export class RequestError extends Error {
  /** @param {Error} cause @param {object} options */
  constructor(cause, options) {
    super(String(cause && cause.message ? cause.message : cause));
    this.name = 'RequestError';
    this.kind = 'request';
    this.cause = cause;
    this.error = cause;
    this.options = options;
  }
}

/** The vendor answered with a non-2xx status while `simple` is on (request-promise's StatusCodeError). */
export class StatusCodeError extends Error {
  /** @param {number} statusCode @param {unknown} body @param {object} options @param {object} response */
  constructor(statusCode, body, options, response) {
    super(`${statusCode} - ${preview(body)}`);
    this.name = 'StatusCodeError';
    this.kind = 'status-code';
    this.statusCode = statusCode;
    this.error = body;
    this.options = options;
    this.response = response;
  }
}

// Like request-promise, the message shows the body; cut so an HTML page does not flood the job's log.
const PREVIEW_CHARS = 300;

function preview(body) {
  if (body instanceof Uint8Array) return `<${body.length} bytes>`;
  let text;
  try {
    text = JSON.stringify(body) ?? String(body);
  } catch {
    text = String(body);
  }
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
}
