import { malformed } from './errors.ts';

/**
 * LEB128 and byte-level reading/writing, as the WebAssembly binary format
 * defines them: unsigned/signed LEB128 of at most ceil(N/7) bytes for an N-bit
 * integer, whose unused bits in the last byte must be zero (unsigned) or a
 * copy of the sign bit (signed), exactly what engines accept.
 */

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

export class ByteReader {
  pos = 0;

  /**
   * @param bytes what to read
   * @param baseOffset offset of `bytes[0]` in the file it comes from, so errors
   *   point at the right place when reading a section's payload
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly baseOffset = 0,
  ) {}

  get eof(): boolean {
    return this.pos >= this.bytes.length;
  }

  /** Absolute offset of the next byte, for error messages. */
  get offset(): number {
    return this.baseOffset + this.pos;
  }

  u8(): number {
    if (this.pos >= this.bytes.length) throw malformed('unexpected end of input', this.offset);
    return this.bytes[this.pos++]!;
  }

  /** The next `length` bytes, as a view (not a copy). */
  bytesView(length: number): Uint8Array {
    if (length > this.bytes.length - this.pos) {
      throw malformed(`${length} bytes announced but only ${this.bytes.length - this.pos} remain`, this.offset);
    }
    const view = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return view;
  }

  /** The rest of the input, as a view. */
  rest(): Uint8Array {
    return this.bytesView(this.bytes.length - this.pos);
  }

  /** Unsigned 32-bit LEB128, on plain numbers: the hot path of every parser. */
  u32(): number {
    const start = this.offset;
    let result = 0;
    for (let i = 0; i < 5; i++) {
      const byte = this.u8();
      result += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) {
        if (i === 4) checkLastByte(byte, 32, false, start);
        return result;
      }
    }
    throw malformed('LEB128 integer longer than 5 bytes for a 32-bit value', start);
  }

  s32(): number {
    return Number(this.leb(32, true));
  }

  /** Signed 33-bit: block types and heap types. */
  s33(): number {
    return Number(this.leb(33, true));
  }

  u64(): bigint {
    return this.leb(64, false);
  }

  s64(): bigint {
    return this.leb(64, true);
  }

  /** A length-prefixed UTF-8 name. */
  name(): string {
    const start = this.offset;
    const raw = this.bytesView(this.u32());
    try {
      return utf8.decode(raw);
    } catch {
      throw malformed('name is not valid UTF-8', start);
    }
  }

  /** Fails unless the whole input was consumed. */
  expectEnd(what: string): void {
    if (!this.eof) throw malformed(`${this.bytes.length - this.pos} unexpected trailing bytes after ${what}`, this.offset);
  }

  private leb(bits: number, signed: boolean): bigint {
    const start = this.offset;
    const maxBytes = Math.ceil(bits / 7);
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < maxBytes; i++) {
      const byte = this.u8();
      result |= BigInt(byte & 0x7f) << shift;
      shift += 7n;
      if ((byte & 0x80) === 0) {
        if (i === maxBytes - 1) checkLastByte(byte, bits, signed, start);
        if (signed && byte & 0x40) result -= 1n << shift;
        return signed ? BigInt.asIntN(bits, result) : result;
      }
    }
    throw malformed(`LEB128 integer longer than ${maxBytes} bytes for a ${bits}-bit value`, start);
  }
}

/** In the last allowed byte, the bits past the integer's width must not carry information. */
function checkLastByte(byte: number, bits: number, signed: boolean, offset: number): void {
  const usedBits = bits % 7 || 7;
  const unused = (byte & 0x7f) >> usedBits;
  if (!signed) {
    if (unused !== 0) throw malformed(`unsigned LEB128 integer too large for ${bits} bits`, offset);
    return;
  }
  const signBit = (byte >> (usedBits - 1)) & 1;
  const expected = signBit ? 0x7f >> usedBits : 0;
  if (unused !== expected) throw malformed(`signed LEB128 integer too large for ${bits} bits`, offset);
}

export class ByteWriter {
  private buffer: Uint8Array<ArrayBuffer>;
  private length = 0;

  constructor(initialCapacity = 64) {
    this.buffer = new Uint8Array(initialCapacity);
  }

  get size(): number {
    return this.length;
  }

  u8(byte: number): this {
    this.reserve(1);
    this.buffer[this.length++] = byte;
    return this;
  }

  bytes(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
    return this;
  }

  u32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
      throw new RangeError(`not an unsigned 32-bit integer: ${value}`);
    }
    do {
      let byte = value & 0x7f;
      value = Math.floor(value / 128);
      if (value !== 0) byte |= 0x80;
      this.u8(byte);
    } while (value !== 0);
    return this;
  }

  s32(value: number): this {
    if (!Number.isInteger(value) || value < -0x8000_0000 || value > 0x7fff_ffff) {
      throw new RangeError(`not a signed 32-bit integer: ${value}`);
    }
    return this.s64(BigInt(value));
  }

  u64(value: bigint): this {
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new RangeError(`not an unsigned 64-bit integer: ${value}`);
    do {
      let byte = Number(value & 0x7fn);
      value >>= 7n;
      if (value !== 0n) byte |= 0x80;
      this.u8(byte);
    } while (value !== 0n);
    return this;
  }

  s64(value: bigint): this {
    if (value < -(1n << 63n) || value >= 1n << 63n) throw new RangeError(`not a signed 64-bit integer: ${value}`);
    for (;;) {
      const byte = Number(value & 0x7fn);
      value >>= 7n; // arithmetic shift on bigint
      const done = (value === 0n && (byte & 0x40) === 0) || (value === -1n && (byte & 0x40) !== 0);
      this.u8(done ? byte : byte | 0x80);
      if (done) return this;
    }
  }

  name(text: string): this {
    const encoded = utf8Encoder.encode(text);
    return this.u32(encoded.length).bytes(encoded);
  }

  /** A copy of what was written. */
  finish(): Uint8Array<ArrayBuffer> {
    return this.buffer.slice(0, this.length);
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.length + extra) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }
}

export function encodeU32(value: number): Uint8Array<ArrayBuffer> {
  return new ByteWriter(5).u32(value).finish();
}

export function encodeS32(value: number): Uint8Array<ArrayBuffer> {
  return new ByteWriter(5).s32(value).finish();
}

export function encodeS64(value: bigint): Uint8Array<ArrayBuffer> {
  return new ByteWriter(10).s64(value).finish();
}

export function encodeU64(value: bigint): Uint8Array<ArrayBuffer> {
  return new ByteWriter(10).u64(value).finish();
}

/** Concatenates byte arrays into one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
