/**
 * cozy-konnector-libs' `wrapIfSentrySetUp(obj, method)` wraps `obj[method]` to
 * report its errors to Sentry when SENTRY_DSN is set. A konnector here has no
 * Sentry (nor any network but its vendor's): the method is left as it is, and
 * its errors end the job with its log, as without SENTRY_DSN upstream.
 */
import { InvalidArgumentError } from './exceptions.js';

/** @param {object} obj @param {string} method the name of a method of `obj` */
export function wrapIfSentrySetUp(obj, method) {
  if (obj === null || !['object', 'function'].includes(typeof obj) || typeof obj[method] !== 'function') {
    throw new InvalidArgumentError(`wrapIfSentrySetUp(obj, method): obj[${JSON.stringify(method)}] must be a function`);
  }
}
