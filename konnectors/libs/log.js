/**
 * cozy-logger's `log(type, message, label, namespace)`, written to the job's
 * log through the host. Its levels map onto the WIT levels: `warn` is
 * `warning`, `ok` is `info`; `secret` lines (only shown in development by
 * cozy-logger) are dropped.
 */
import { writeLog } from './host.js';
import { InvalidArgumentError } from './exceptions.js';

/** @type {Record<string, 'debug'|'info'|'warning'|'error'|'critical'|null>} */
const LEVELS = {
  debug: 'debug',
  info: 'info',
  ok: 'info',
  warn: 'warning',
  warning: 'warning',
  error: 'error',
  critical: 'critical',
  secret: null,
};

function formatMessage(message) {
  if (typeof message === 'string') return message;
  if (message instanceof Error) return `${message.name}: ${message.message}`;
  if (message === undefined) return 'undefined';
  try {
    return JSON.stringify(message) ?? String(message);
  } catch {
    return String(message);
  }
}

/**
 * @param {string} type debug, info, ok, warn (or warning), error, critical or secret
 * @param {unknown} message a string, an Error or any JSON-serializable value
 * @param {string} [label]
 * @param {string} [namespace]
 */
export function log(type, message, label, namespace) {
  if (!Object.hasOwn(LEVELS, type)) {
    throw new InvalidArgumentError(`log: unknown level ${JSON.stringify(type)}: use one of ${Object.keys(LEVELS).join(', ')}`);
  }
  const level = LEVELS[type];
  if (level === null) return;
  const prefix = namespace ? `${namespace}: ` : '';
  const suffix = label === undefined || label === null ? '' : ` (${formatMessage(label)})`;
  writeLog(level, `${prefix}${formatMessage(message)}${suffix}`);
}

/** cozy-logger's `log.namespace('name')`: a logger that prefixes every line. */
log.namespace = (namespace) => (type, message, label) => log(type, message, label, namespace);
