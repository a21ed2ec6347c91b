/**
 * Query strings and urlencoded forms the way request (through the `qs`
 * package) writes them: nested objects as `a[b]=c`, arrays as `a[0]=x`,
 * `undefined` skipped, `null` as an empty value, RFC 3986 percent-encoding.
 */

function encode(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function scalar(value) {
  if (value instanceof Date) return value.toISOString();
  return String(value);
}

function walk(prefix, value, pairs) {
  if (value === undefined || typeof value === 'function') return;
  if (value === null) {
    pairs.push(`${encode(prefix)}=`);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => walk(`${prefix}[${index}]`, item, pairs));
  } else if (typeof value === 'object' && !(value instanceof Date)) {
    for (const key of Object.keys(value)) walk(`${prefix}[${key}]`, value[key], pairs);
  } else {
    pairs.push(`${encode(prefix)}=${encode(scalar(value))}`);
  }
}

/** @param {Record<string, unknown>} object @returns {string} without a leading '?' */
export function stringify(object) {
  const pairs = [];
  for (const key of Object.keys(object)) walk(key, object[key], pairs);
  return pairs.join('&');
}
