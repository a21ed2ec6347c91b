/**
 * Content-Encoding decoding for `requestFactory`. The host hands bodies over
 * as the server sent them: decompressing there would be host work no budget
 * counts. Here it is the guest's own work (fuel, capped memory), and it stops
 * as soon as the decoded bytes pass the job's response-size limit, so a
 * decompression bomb costs at most about that much and ends its request with
 * the host's `too-large` error.
 *
 * gzip and deflate go through the engine's DecompressionStream (zlib compiled
 * into the engine: about 25 fuel a decoded byte, where pako, the JS inflate
 * behind the guest's `zlib`, spends about 3,000). br goes through brotli.js,
 * the engine having no brotli: about 2,600 fuel a byte, which is why
 * requestFactory does not ask for it (ACCEPT_ENCODING) and only decodes it
 * when a server sends it anyway.
 */
import { BrotliDecompress } from 'brotli/dec/decode.js';
import { BrotliInput } from 'brotli/dec/streams.js';
import { HostError } from './exceptions.js';

/**
 * Whether the engine has a zlib (DecompressionStream): SpiderMonkey (componentize-js) does, QuickJS does not
 * (docs/engines.md). Without one, gzip and deflate are not asked for, and a server's unasked one fails by name.
 */
const hasZlib = typeof DecompressionStream === 'function';

/** What `requestFactory` asks for (upstream request's `gzip: true` asks the same), when the engine decodes it. */
export const ACCEPT_ENCODING = hasZlib ? 'gzip, deflate' : 'identity';

/**
 * Compressed bytes handed to zlib at a time. It inflates a whole input chunk
 * before the next read can stop it, and deflate expands at most ~1032 times:
 * 1 KiB in is at most about 1 MiB decoded past the limit.
 */
const INFLATE_INPUT_BYTES = 1024;

/** Decoded bytes, counted against `limit` as they come; past it, the host's `too-large` error. */
class CappedOutput {
  constructor(limit, where, coding) {
    this.limit = limit;
    this.where = where;
    this.coding = coding;
    this.size = 0;
    this.chunks = [];
  }

  /** Takes the first `count` bytes of `bytes`, copied (brotli.js reuses its buffer). */
  take(bytes, count = bytes.length) {
    this.size += count;
    if (this.size > this.limit) {
      throw new HostError('http', 'too-large', `${this.where}: the response body decoded from ${this.coding} exceeds ${this.limit} bytes`);
    }
    this.chunks.push(bytes.slice(0, count));
  }

  bytes() {
    const whole = new Uint8Array(this.size);
    let offset = 0;
    for (const chunk of this.chunks) {
      whole.set(chunk, offset);
      offset += chunk.length;
    }
    return whole;
  }
}

/** A zlib header (RFC 1950): the deflate method, and a check making the first two bytes a multiple of 31. */
const hasZlibHeader = (bytes) => bytes.length >= 2 && (bytes[0] & 0x0f) === 8 && ((bytes[0] << 8) | bytes[1]) % 31 === 0;

/** @param {'gzip'|'deflate'|'deflate-raw'} format */
async function inflate(bytes, output, format) {
  if (!hasZlib) {
    throw new HostError('http', 'network', `${output.where}: the body is ${output.coding}-encoded, which this engine cannot decode (no DecompressionStream on QuickJS; docs/porting.md)`);
  }
  let offset = 0;
  // Pulled one slice at a time (no queue ahead), so zlib never runs far past what was read.
  const compressed = new ReadableStream({
    pull(controller) {
      controller.enqueue(bytes.subarray(offset, (offset += INFLATE_INPUT_BYTES)));
      if (offset >= bytes.length) controller.close();
    },
  }, { highWaterMark: 0 });
  const reader = compressed.pipeThrough(new DecompressionStream(format)).getReader();
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) output.take(read.value);
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  }
}

function unbrotli(bytes, output) {
  BrotliDecompress(new BrotliInput(bytes), {
    // BrotliDecompress grows `buffer` to hold each meta-block unless it is long enough already: the chunks are kept in `output` instead.
    buffer: { length: Infinity },
    write(ring, count) {
      output.take(ring, count);
      return count;
    },
  });
}

const DECODERS = new Map([
  ['gzip', (bytes, output) => inflate(bytes, output, 'gzip')],
  ['x-gzip', (bytes, output) => inflate(bytes, output, 'gzip')],
  // `deflate` is zlib-wrapped by the RFC, but some servers send it raw: browsers and curl take both.
  ['deflate', (bytes, output) => inflate(bytes, output, hasZlibHeader(bytes) ? 'deflate' : 'deflate-raw')],
  ['br', unbrotli],
]);

/**
 * The body with its Content-Encoding undone: codings are listed in the order
 * they were applied ("gzip, br"), so undone from the last. A body with a coding
 * not decoded here stays as sent, as request leaves it.
 *
 * @param {Uint8Array} bytes the body as received
 * @param {string | undefined} contentEncoding the response's Content-Encoding header
 * @param {{ limit: number, where: string }} context the decoded size limit, and the request for messages
 * @returns {Promise<Uint8Array>}
 * @throws {HostError} `too-large` when a decoded body passes `limit`; an Error when it cannot be decoded
 */
export async function decodeContent(bytes, contentEncoding, { limit, where }) {
  const codings = (contentEncoding ?? '').split(',').map((coding) => coding.trim().toLowerCase()).filter((coding) => coding !== '' && coding !== 'identity');
  if (bytes.length === 0 || codings.length === 0 || !codings.every((coding) => DECODERS.has(coding))) return bytes;
  let decoded = bytes;
  for (const coding of codings.reverse()) {
    const output = new CappedOutput(limit, where, coding);
    try {
      await DECODERS.get(coding)(decoded, output);
    } catch (error) {
      if (error instanceof HostError) throw error;
      throw new Error(`${where}: the ${coding} response body cannot be decoded: ${error.message}`);
    }
    decoded = output.bytes();
  }
  return decoded;
}
