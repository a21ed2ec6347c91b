/**
 * `retry(fn, options)`: cozy-konnector-libs' `retry`, which is bluebird-retry:
 * calls `fn` until its promise resolves, waiting between attempts on the
 * host clock (setTimeout).
 *
 * Options (bluebird-retry's names): `max_tries` (default 5 when there is no
 * `timeout`), `timeout` (ms after which to give up), `interval` (ms between
 * attempts, default 1000), `backoff` (factor applied to the interval after each
 * failed attempt), `max_interval`, `predicate` (only errors it matches are
 * retried: an Error class, a function or an object of properties),
 * `throw_original` (give up with the last error itself), `context` and `args`
 * (`this` and the arguments of `fn`). `retry.StopError` thrown by `fn` stops
 * at once.
 *
 * Giving up rejects with an Error `operation timed out after <ms> ms, <n> tries
 * with error: <message>` whose `failure` is the last error and `code` ETIMEDOUT.
 */
import { InvalidArgumentError } from './exceptions.js';

/** Thrown by the retried function to stop retrying: the retry rejects with `err`, or with the StopError itself. */
class StopError extends Error {
  /** @param {Error|string} [err] */
  constructor(err) {
    super(err instanceof Error ? err.message : err || 'cancelled');
    this.name = 'StopError';
    if (err instanceof Error) this.err = err;
  }
}

const KNOWN_OPTIONS = new Set(['max_tries', 'timeout', 'interval', 'backoff', 'max_interval', 'predicate', 'throw_original', 'context', 'args']);

/** bluebird's filtered catch: an Error class matches its instances, a function its truthy answers, an object its properties. */
function matcher(predicate) {
  if (predicate === undefined) return () => true;
  if (typeof predicate === 'function') {
    const isErrorClass = predicate === Error || predicate.prototype instanceof Error;
    return isErrorClass ? (error) => error instanceof predicate : (error) => Boolean(predicate(error));
  }
  if (predicate && typeof predicate === 'object') {
    return (error) => error != null && Object.entries(predicate).every(([key, value]) => error[key] === value);
  }
  throw new InvalidArgumentError('retry: `predicate` must be an Error class, a function or an object of properties');
}

function checkOptions(fn, options) {
  if (typeof fn !== 'function') throw new InvalidArgumentError(`retry: the first argument must be the function to retry, got ${typeof fn}`);
  for (const name of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(name)) throw new InvalidArgumentError(`retry: unknown option \`${name}\`: use ${[...KNOWN_OPTIONS].join(', ')}`);
  }
  for (const name of ['max_tries', 'timeout', 'interval', 'backoff', 'max_interval']) {
    if (options[name] !== undefined && !(typeof options[name] === 'number' && options[name] >= 0)) {
      throw new InvalidArgumentError(`retry: \`${name}\` must be a number of at least 0, got ${JSON.stringify(options[name])}`);
    }
  }
  if (options.args !== undefined && !Array.isArray(options.args)) throw new InvalidArgumentError('retry: `args` must be an array');
}

/** A thrown value as an Error, as bluebird-retry reports what was not one. */
function asError(thrown) {
  if (thrown instanceof Error) return thrown;
  const failure = thrown && typeof thrown !== 'string' ? JSON.stringify(thrown) : thrown;
  const error = new Error(`rejected with non-error: ${failure}`);
  error.failure = failure;
  return error;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @param {Function} fn called with `options.args` and `this` set to `options.context`
 * @param {object} [options]
 * @returns {Promise<unknown>} what `fn` resolved with
 */
export async function retry(fn, options = {}) {
  checkOptions(fn, options);
  const isRetried = matcher(options.predicate);
  const giveUpAt = options.timeout ? Date.now() + options.timeout : undefined;
  const maxTries = options.max_tries ?? (giveUpAt === undefined ? 5 : undefined);
  const start = Date.now();
  let interval = options.interval ?? 1000;
  for (let tries = 1; ; tries++) {
    const tryStart = Date.now();
    try {
      return await fn.apply(options.context, options.args ?? []);
    } catch (thrown) {
      if (thrown instanceof StopError) throw thrown.err ?? thrown;
      if (!isRetried(thrown)) throw thrown;
      if (tries > 1) {
        if (options.backoff) interval *= options.backoff;
        if (options.max_interval) interval = Math.min(interval, options.max_interval);
      }
      const now = Date.now();
      if (tries === maxTries || (giveUpAt !== undefined && now + interval >= giveUpAt)) {
        if (thrown instanceof Error && options.throw_original) throw thrown;
        const last = asError(thrown);
        const timedOut = new Error(`operation timed out after ${now - start} ms, ${tries} tries with error: ${last.message}`);
        timedOut.failure = last;
        timedOut.code = 'ETIMEDOUT';
        throw timedOut;
      }
      const delay = interval - (now - tryStart);
      if (delay > 0) await sleep(delay);
    }
  }
}

retry.StopError = StopError;
