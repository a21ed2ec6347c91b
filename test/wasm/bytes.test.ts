import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter, concatBytes, encodeS32, encodeS64, encodeU32, encodeU64, WasmError } from '../../runner/wasm/index.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const reader = (...bytes: number[]) => new ByteReader(Uint8Array.from(bytes));

function malformedAt(read: () => unknown): WasmError {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(WasmError);
    expect((error as WasmError).kind).toBe('malformed');
    return error as WasmError;
  }
  throw new Error('expected a malformed-input error');
}

describe('LEB128', () => {
  it('encodes the specification and DWARF reference values', () => {
    expect(hex(encodeU32(0))).toBe('00');
    expect(hex(encodeU32(127))).toBe('7f');
    expect(hex(encodeU32(128))).toBe('8001');
    expect(hex(encodeU32(624485))).toBe('e58e26');
    expect(hex(encodeU32(0xffff_ffff))).toBe('ffffffff0f');
    expect(hex(encodeS32(-1))).toBe('7f');
    expect(hex(encodeS32(63))).toBe('3f');
    expect(hex(encodeS32(64))).toBe('c000');
    expect(hex(encodeS32(-64))).toBe('40');
    expect(hex(encodeS32(-65))).toBe('bf7f');
    expect(hex(encodeS32(-123456))).toBe('c0bb78');
    expect(hex(encodeS32(-0x8000_0000))).toBe('8080808078');
    expect(hex(encodeS64(-(1n << 63n)))).toBe('8080808080808080807f');
    expect(hex(encodeS64((1n << 63n) - 1n))).toBe('ffffffffffffffffff00');
    expect(hex(encodeU64((1n << 64n) - 1n))).toBe('ffffffffffffffffff01');
  });

  it('reads back what it writes, for edge and pseudo-random values', () => {
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const u32s = [0, 1, 127, 128, 16383, 16384, 2 ** 31, 0xffff_ffff, ...Array.from({ length: 200 }, () => (next() * 2) >>> 0)];
    const s32s = [0, -1, 63, 64, -64, -65, 2 ** 31 - 1, -(2 ** 31), ...Array.from({ length: 200 }, () => next() - 2 ** 30)];
    const s64s = [0n, -1n, (1n << 63n) - 1n, -(1n << 63n), ...s32s.map((v) => BigInt(v) * 4_294_967_311n)].map((v) => BigInt.asIntN(64, v));
    const writer = new ByteWriter(1);
    for (const v of u32s) writer.u32(v);
    for (const v of s32s) writer.s32(v);
    for (const v of s64s) writer.s64(v);
    for (const v of s64s) writer.u64(BigInt.asUintN(64, v));
    const r = new ByteReader(writer.finish());
    expect(u32s.map(() => r.u32())).toEqual(u32s);
    expect(s32s.map(() => r.s32())).toEqual(s32s);
    expect(s64s.map(() => r.s64())).toEqual(s64s);
    expect(s64s.map(() => r.u64())).toEqual(s64s.map((v) => BigInt.asUintN(64, v)));
    expect(r.eof).toBe(true);
  });

  it('accepts non-minimal encodings within the size limit, as engines do', () => {
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x00).u32()).toBe(0);
    expect(reader(0xff, 0x7f).s32()).toBe(-1);
  });

  it('rejects integers longer than their maximum width', () => {
    const error = malformedAt(() => reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x00).u32());
    expect(error.message).toMatch(/longer than 5 bytes/);
    expect(error.offset).toBe(0);
  });

  it('rejects unused bits in the last byte', () => {
    expect(malformedAt(() => reader(0xff, 0xff, 0xff, 0xff, 0x1f).u32()).message).toMatch(/too large for 32 bits/);
    // s32: the last byte's unused bits must copy the sign bit.
    expect(malformedAt(() => reader(0x80, 0x80, 0x80, 0x80, 0x70).s32()).message).toMatch(/signed LEB128 integer too large/);
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x78).s32()).toBe(-(2 ** 31));
  });

  it('reports truncated input with its offset in the file', () => {
    const r = new ByteReader(Uint8Array.of(0x01, 0x80), 100);
    r.u8();
    const error = malformedAt(() => r.u32());
    expect(error.offset).toBe(102);
    expect(error.message).toMatch(/unexpected end of input \(at byte offset 102\)/);
  });

  it('refuses to write values outside the type', () => {
    expect(() => new ByteWriter().u32(-1)).toThrow(RangeError);
    expect(() => new ByteWriter().u32(2 ** 32)).toThrow(RangeError);
    expect(() => new ByteWriter().s32(2 ** 31)).toThrow(RangeError);
    expect(() => new ByteWriter().s64(1n << 63n)).toThrow(RangeError);
  });
});

describe('names and byte runs', () => {
  it('round-trips UTF-8 names', () => {
    const bytes = new ByteWriter().name('wasi:random/random@0.2.10').name('é→😀').finish();
    const r = new ByteReader(bytes);
    expect([r.name(), r.name()]).toEqual(['wasi:random/random@0.2.10', 'é→😀']);
  });

  it('rejects a name that is not UTF-8', () => {
    expect(malformedAt(() => reader(0x02, 0xc3, 0x28).name()).message).toMatch(/not valid UTF-8/);
  });

  it('rejects a length that runs past the end', () => {
    expect(malformedAt(() => reader(0x05, 0x61).name()).message).toMatch(/5 bytes announced but only 1 remain/);
  });

  it('concatenates', () => {
    expect(hex(concatBytes([Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3)]))).toBe('010203');
  });
});
