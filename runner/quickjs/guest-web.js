// The web globals the component path's engine (SpiderMonkey) has and QuickJS 2021-03-27 lacks, but URL
// (guest-globals.js, which imports this first: whatwg-url needs TextEncoder as it loads).
// What is still missing fails with an error naming the engine (docs/porting.md lists it).
import { hostCall } from './guest-host.js';

export const define = (name, value) => {
  if (typeof globalThis[name] === 'undefined') Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
};

// ES2022+ built-ins QuickJS 2021-03-27 predates (esbuild lowers syntax, not library functions).
const method = (target, name, fn) => {
  if (!Object.prototype.hasOwnProperty.call(target, name)) Object.defineProperty(target, name, { value: fn, writable: true, configurable: true });
};
method(Object, 'hasOwn', (object, key) => Object.prototype.hasOwnProperty.call(Object(object), key));
function at(index) {
  const length = this.length;
  let i = Math.trunc(index) || 0;
  if (i < 0) i += length;
  return i < 0 || i >= length ? undefined : this[i];
}
function findLast(predicate, thisArg) {
  for (let i = this.length - 1; i >= 0; i--) if (predicate.call(thisArg, this[i], i, this)) return this[i];
  return undefined;
}
function findLastIndex(predicate, thisArg) {
  for (let i = this.length - 1; i >= 0; i--) if (predicate.call(thisArg, this[i], i, this)) return i;
  return -1;
}
const TypedArray = Object.getPrototypeOf(Uint8Array.prototype);
for (const proto of [Array.prototype, TypedArray]) {
  method(proto, 'at', at);
  method(proto, 'findLast', findLast);
  method(proto, 'findLastIndex', findLastIndex);
}
method(String.prototype, 'at', function stringAt(index) {
  return at.call(String(this), index);
});
method(Array.prototype, 'toSorted', function toSorted(compare) {
  return Array.prototype.slice.call(this).sort(compare);
});
method(Array.prototype, 'toReversed', function toReversed() {
  return Array.prototype.slice.call(this).reverse();
});

// The component's console writes to a stdout the konnector world does not give it: what it prints goes nowhere.
// The same here, so that a package logging through console (ovh's API client) runs on both engines.
const ignore = () => {};
const CONSOLE_METHODS = ['log', 'info', 'warn', 'error', 'debug', 'trace', 'dir', 'table', 'group', 'groupCollapsed', 'groupEnd', 'time', 'timeEnd', 'timeLog', 'assert', 'count', 'countReset'];
define('console', Object.fromEntries(CONSOLE_METHODS.map((name) => [name, ignore])));

define('queueMicrotask', (callback) => {
  if (typeof callback !== 'function') throw new TypeError('queueMicrotask takes a function');
  Promise.resolve().then(callback);
});

/** UTF-8 only, as the SDK asks for it; other encodings are the konnector's own packages' (iconv-lite). */
class TextEncoder {
  get encoding() {
    return 'utf-8';
  }

  encode(input = '') {
    const text = String(input);
    const out = new Uint8Array(text.length * 3);
    let at = 0;
    for (let i = 0; i < text.length; i++) {
      let code = text.charCodeAt(i);
      if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
        const next = text.charCodeAt(i + 1);
        if (next >= 0xdc00 && next <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
          i++;
        } else code = 0xfffd;
      } else if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd;
      if (code < 0x80) out[at++] = code;
      else if (code < 0x800) {
        out[at++] = 0xc0 | (code >> 6);
        out[at++] = 0x80 | (code & 63);
      } else if (code < 0x10000) {
        out[at++] = 0xe0 | (code >> 12);
        out[at++] = 0x80 | ((code >> 6) & 63);
        out[at++] = 0x80 | (code & 63);
      } else {
        out[at++] = 0xf0 | (code >> 18);
        out[at++] = 0x80 | ((code >> 12) & 63);
        out[at++] = 0x80 | ((code >> 6) & 63);
        out[at++] = 0x80 | (code & 63);
      }
    }
    return out.slice(0, at);
  }
}

const UTF8_LABELS = new Set(['utf-8', 'utf8', 'unicode-1-1-utf-8']);

class TextDecoder {
  constructor(label = 'utf-8', options = {}) {
    if (!UTF8_LABELS.has(String(label).trim().toLowerCase())) {
      throw new RangeError(`TextDecoder: the QuickJS engine decodes utf-8 only, not "${label}" (docs/porting.md)`);
    }
    this.fatal = Boolean(options.fatal);
    this.ignoreBOM = Boolean(options.ignoreBOM);
  }

  get encoding() {
    return 'utf-8';
  }

  decode(input) {
    if (input === undefined) return '';
    const bytes = input instanceof Uint8Array ? input : ArrayBuffer.isView(input) ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength) : new Uint8Array(input);
    const units = [];
    const chunks = [];
    const bad = () => {
      if (this.fatal) throw new TypeError('TextDecoder: the input is not valid utf-8');
      units.push(0xfffd);
    };
    let i = !this.ignoreBOM && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
    while (i < bytes.length) {
      const byte = bytes[i];
      let need = 0;
      let code = 0;
      let min = 0;
      if (byte < 0x80) {
        units.push(byte);
        i++;
      } else {
        if (byte >= 0xc2 && byte <= 0xdf) [need, code, min] = [1, byte & 31, 0x80];
        else if (byte >= 0xe0 && byte <= 0xef) [need, code, min] = [2, byte & 15, 0x800];
        else if (byte >= 0xf0 && byte <= 0xf4) [need, code, min] = [3, byte & 7, 0x10000];
        else {
          bad();
          i++;
          need = -1;
        }
        if (need > 0) {
          let j = 1;
          for (; j <= need; j++) {
            const next = bytes[i + j];
            if (next === undefined || (next & 0xc0) !== 0x80) break;
            code = (code << 6) | (next & 63);
          }
          if (j <= need || code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
            bad();
            i += Math.max(1, j);
          } else {
            i += need + 1;
            if (code >= 0x10000) {
              code -= 0x10000;
              units.push(0xd800 + (code >> 10), 0xdc00 + (code & 1023));
            } else units.push(code);
          }
        }
      }
      if (units.length >= 8192) chunks.push(String.fromCharCode.apply(null, units.splice(0)));
    }
    chunks.push(String.fromCharCode.apply(null, units));
    return chunks.join('');
  }
}

define('TextEncoder', TextEncoder);
define('TextDecoder', TextDecoder);

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

define('btoa', (input) => {
  const text = String(input);
  let out = '';
  for (let i = 0; i < text.length; i += 3) {
    const [a, b, c] = [text.charCodeAt(i), text.charCodeAt(i + 1), text.charCodeAt(i + 2)];
    if (a > 255 || b > 255 || c > 255) throw new DOMExceptionLike('btoa: the string has characters outside Latin-1', 'InvalidCharacterError');
    const bits = (a << 16) | ((b || 0) << 8) | (c || 0);
    out += BASE64[bits >> 18] + BASE64[(bits >> 12) & 63] + (i + 1 < text.length ? BASE64[(bits >> 6) & 63] : '=') + (i + 2 < text.length ? BASE64[bits & 63] : '=');
  }
  return out;
});

define('atob', (input) => {
  const text = String(input).replace(/[\t\n\f\r ]/g, '').replace(/={1,2}$/, '');
  if (text.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(text)) throw new DOMExceptionLike('atob: the string is not valid base64', 'InvalidCharacterError');
  let out = '';
  let bits = 0;
  let count = 0;
  for (const char of text) {
    bits = (bits << 6) | BASE64.indexOf(char);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += String.fromCharCode((bits >> count) & 255);
    }
  }
  return out;
});

class DOMExceptionLike extends Error {
  constructor(message = '', name = 'Error') {
    super(message);
    this.name = name;
  }
}
define('DOMException', DOMExceptionLike);

/** Plain data, dates, maps, sets, typed arrays: what the SDK clones (documents). */
function clone(value, seen) {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'function' || typeof value === 'symbol') throw new DOMExceptionLike(`structuredClone: a ${typeof value} cannot be cloned`, 'DataCloneError');
    return value;
  }
  if (seen.has(value)) return seen.get(value);
  let copy;
  if (value instanceof Date) copy = new Date(value.getTime());
  else if (value instanceof RegExp) copy = new RegExp(value.source, value.flags);
  else if (ArrayBuffer.isView(value)) copy = value.slice();
  else if (value instanceof ArrayBuffer) copy = value.slice(0);
  else if (value instanceof Map) {
    copy = new Map();
    seen.set(value, copy);
    for (const [k, v] of value) copy.set(clone(k, seen), clone(v, seen));
    return copy;
  } else if (value instanceof Set) {
    copy = new Set();
    seen.set(value, copy);
    for (const v of value) copy.add(clone(v, seen));
    return copy;
  } else {
    copy = Array.isArray(value) ? [] : {};
    seen.set(value, copy);
    for (const key of Object.keys(value)) copy[key] = clone(value[key], seen);
    return copy;
  }
  seen.set(value, copy);
  return copy;
}
define('structuredClone', (value) => clone(value, new Map()));

const MAX_RANDOM_BYTES = 65536;
define('crypto', {
  getRandomValues(array) {
    if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array) throw new TypeError('crypto.getRandomValues takes an integer typed array');
    if (array.byteLength > MAX_RANDOM_BYTES) throw new DOMExceptionLike(`crypto.getRandomValues: at most ${MAX_RANDOM_BYTES} bytes`, 'QuotaExceededError');
    const bytes = hostCall('random.getRandomBytes', [BigInt(array.byteLength)]);
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(bytes);
    return array;
  },
});

// Headers, Request and Response: guest-fetch-classes.js. DecompressionStream (the SDK asks for no compression
// without it), ReadableStream, Blob, FormData, AbortController and Intl stay undefined, so that libraries take
// their fallbacks (docs/porting.md).
