import { ByteReader, ByteWriter } from './bytes.ts';
import { malformed, unsupported } from './errors.ts';
import { SectionId, type Section } from './module.ts';

/**
 * Decoders and encoders for the contents of the core-module sections the
 * build needs to read or rewrite. Encoders write the canonical (shortest)
 * encoding, so decode + encode of a canonically encoded section gives back the
 * same bytes.
 */

// ---------------------------------------------------------------- value types

export type NumericType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';

export interface ValType {
  /** `ref` covers every reference type; `raw` keeps its exact encoding. */
  name: NumericType | 'ref';
  raw: Uint8Array;
}

const NUMERIC: Record<number, NumericType> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128' };
const NUMERIC_CODE: Record<NumericType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

export function valType(name: NumericType): ValType {
  return { name, raw: Uint8Array.of(NUMERIC_CODE[name]) };
}

export function readValType(reader: ByteReader): ValType {
  const start = reader.pos;
  const code = reader.u8();
  const numeric = NUMERIC[code];
  if (numeric) return { name: numeric, raw: reader.bytes.subarray(start, reader.pos) };
  if (code === 0x63 || code === 0x64) {
    reader.s33(); // (ref null? heaptype)
  } else if (code < 0x69 || code > 0x74) {
    throw malformed(`invalid value type 0x${code.toString(16)}`, reader.baseOffset + start);
  }
  return { name: 'ref', raw: reader.bytes.subarray(start, reader.pos) };
}

// --------------------------------------------------------------------- limits

export interface Limits {
  min: number;
  max?: number;
  shared: boolean;
  /** memory64 / table64: the limits are 64-bit. */
  index64: boolean;
}

function readLimits(reader: ByteReader): Limits {
  const start = reader.offset;
  const flags = reader.u8();
  if (flags & 0x08) throw unsupported('custom page sizes are not supported', start);
  if (flags & ~0x07) throw malformed(`invalid limits flags 0x${flags.toString(16)}`, start);
  const index64 = (flags & 0x04) !== 0;
  const read = (): number => {
    if (!index64) return reader.u32();
    const value = reader.u64();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw unsupported(`64-bit limit ${value} is too large`, start);
    return Number(value);
  };
  const min = read();
  const max = flags & 0x01 ? read() : undefined;
  return { min, ...(max === undefined ? {} : { max }), shared: (flags & 0x02) !== 0, index64 };
}

function writeLimits(writer: ByteWriter, limits: Limits): void {
  writer.u8((limits.max === undefined ? 0 : 0x01) | (limits.shared ? 0x02 : 0) | (limits.index64 ? 0x04 : 0));
  const write = (value: number) => (limits.index64 ? writer.u64(BigInt(value)) : writer.u32(value));
  write(limits.min);
  if (limits.max !== undefined) write(limits.max);
}

// ----------------------------------------------------------- constant exprs

/**
 * Reads a constant expression up to and including its `end` and returns its
 * bytes. Accepts the instructions engines allow there: `*.const`,
 * `global.get`, `ref.null`, `ref.func` and the extended-const arithmetic.
 */
export function readConstExpr(reader: ByteReader): Uint8Array {
  const start = reader.pos;
  for (;;) {
    const at = reader.offset;
    const opcode = reader.u8();
    switch (opcode) {
      case 0x0b:
        return reader.bytes.subarray(start, reader.pos);
      case 0x41:
        reader.s32();
        break;
      case 0x42:
        reader.s64();
        break;
      case 0x43:
        reader.bytesView(4);
        break;
      case 0x44:
        reader.bytesView(8);
        break;
      case 0x23: // global.get
      case 0xd2: // ref.func
        reader.u32();
        break;
      case 0xd0: // ref.null
        reader.s33();
        break;
      case 0x6a: case 0x6b: case 0x6c: case 0x7c: case 0x7d: case 0x7e: // extended-const add/sub/mul
        break;
      case 0xfd: {
        const sub = reader.u32();
        if (sub !== 12) throw malformed(`SIMD instruction ${sub} is not constant`, at);
        reader.bytesView(16);
        break;
      }
      case 0xfb:
        throw unsupported('GC instructions in constant expressions are not supported', at);
      default:
        throw malformed(`instruction 0x${opcode.toString(16)} is not allowed in a constant expression`, at);
    }
  }
}

/** `i32.const value; end` and friends: the constant expression of one number. */
export function constExpr(type: NumericType, value: number | bigint): Uint8Array {
  const writer = new ByteWriter(12);
  switch (type) {
    case 'i32':
      writer.u8(0x41).s32(Number(value) | 0);
      break;
    case 'i64':
      writer.u8(0x42).s64(BigInt.asIntN(64, BigInt(value)));
      break;
    case 'f32': {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setFloat32(0, Number(value), true);
      writer.u8(0x43).bytes(bytes);
      break;
    }
    case 'f64': {
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setFloat64(0, Number(value), true);
      writer.u8(0x44).bytes(bytes);
      break;
    }
    case 'v128':
      throw unsupported('v128 constants are not produced by this encoder');
  }
  return writer.u8(0x0b).finish();
}

// ---------------------------------------------------------------- vectors

/** Decodes a section payload that is a vector of items, checking nothing is left over. */
export function readVector<T>(section: Section, what: string, readItem: (reader: ByteReader, index: number) => T): T[] {
  const reader = new ByteReader(section.payload, section.offset ?? 0);
  const count = reader.u32();
  const items: T[] = [];
  for (let i = 0; i < count; i++) items.push(readItem(reader, i));
  reader.expectEnd(`the ${what} section`);
  return items;
}

export function encodeVector<T>(id: number, items: readonly T[], writeItem: (writer: ByteWriter, item: T) => void): Section {
  const writer = new ByteWriter(64);
  writer.u32(items.length);
  for (const item of items) writeItem(writer, item);
  return { id, payload: writer.finish() };
}

/** Number of items of a vector section, without decoding them. */
export function vectorLength(section: Section | undefined): number {
  return section ? new ByteReader(section.payload, section.offset ?? 0).u32() : 0;
}

/**
 * Appends already-encoded items to a vector section (or creates it), leaving
 * the existing items' bytes untouched: the cheap way to add a type, a
 * function or a code body to a large module.
 */
export function appendToVector(id: number, section: Section | undefined, items: readonly Uint8Array[]): Section {
  const writer = new ByteWriter();
  if (section) {
    const reader = new ByteReader(section.payload, section.offset ?? 0);
    writer.u32(reader.u32() + items.length).bytes(reader.rest());
  } else {
    writer.u32(items.length);
  }
  for (const item of items) writer.bytes(item);
  return { id, payload: writer.finish() };
}

// ---------------------------------------------------------------- types

export interface FuncType {
  params: ValType[];
  results: ValType[];
}

/** Decodes a type section made only of function types (no GC rec groups). */
export function readTypes(section: Section | undefined): FuncType[] {
  if (!section) return [];
  return readVector(section, 'type', (reader) => {
    const at = reader.offset;
    const form = reader.u8();
    if (form !== 0x60) throw unsupported(`type form 0x${form.toString(16)} (GC types) is not supported`, at);
    const list = () => Array.from({ length: reader.u32() }, () => readValType(reader));
    return { params: list(), results: list() };
  });
}

/** The function section: the type index of each defined function. */
export function readFunctions(section: Section | undefined): number[] {
  return section ? readVector(section, 'function', (reader) => reader.u32()) : [];
}

// ---------------------------------------------------------------- imports

export type ExternKind = 'func' | 'table' | 'memory' | 'global' | 'tag';
const EXTERN_KINDS: readonly ExternKind[] = ['func', 'table', 'memory', 'global', 'tag'];

export type ImportDesc =
  | { kind: 'func'; type: number }
  | { kind: 'table'; element: ValType; limits: Limits }
  | { kind: 'memory'; limits: Limits }
  | { kind: 'global'; type: ValType; mutable: boolean }
  | { kind: 'tag'; type: number };

export interface Import {
  module: string;
  name: string;
  desc: ImportDesc;
}

function readExternKind(reader: ByteReader): ExternKind {
  const at = reader.offset;
  const code = reader.u8();
  const kind = EXTERN_KINDS[code];
  if (!kind) throw malformed(`invalid external kind 0x${code.toString(16)}`, at);
  return kind;
}

function readMutability(reader: ByteReader): boolean {
  const at = reader.offset;
  const flag = reader.u8();
  if (flag > 1) throw malformed(`invalid global mutability ${flag}`, at);
  return flag === 1;
}

function readTagType(reader: ByteReader): number {
  const at = reader.offset;
  if (reader.u8() !== 0) throw malformed('invalid tag attribute', at);
  return reader.u32();
}

export function readImports(section: Section | undefined): Import[] {
  if (!section) return [];
  return readVector(section, 'import', (reader) => {
    const module = reader.name();
    const name = reader.name();
    const kind = readExternKind(reader);
    let desc: ImportDesc;
    switch (kind) {
      case 'func':
        desc = { kind, type: reader.u32() };
        break;
      case 'table':
        desc = { kind, element: readValType(reader), limits: readLimits(reader) };
        break;
      case 'memory':
        desc = { kind, limits: readLimits(reader) };
        break;
      case 'global':
        desc = { kind, type: readValType(reader), mutable: readMutability(reader) };
        break;
      case 'tag':
        desc = { kind, type: readTagType(reader) };
        break;
    }
    return { module, name, desc };
  });
}

/** How many functions, tables, memories, globals and tags are imported (defined ones are numbered after them). */
export function countImports(imports: readonly Import[]): Record<ExternKind, number> {
  const counts: Record<ExternKind, number> = { func: 0, table: 0, memory: 0, global: 0, tag: 0 };
  for (const { desc } of imports) counts[desc.kind]++;
  return counts;
}

// ---------------------------------------------------------------- memories

export function readMemories(section: Section | undefined): Limits[] {
  return section ? readVector(section, 'memory', readLimits) : [];
}

export function encodeMemories(memories: readonly Limits[]): Section {
  return encodeVector(SectionId.memory, memories, writeLimits);
}

// ---------------------------------------------------------------- globals

export interface Global {
  type: ValType;
  mutable: boolean;
  /** The initializer, a constant expression including its `end`. */
  init: Uint8Array;
}

export function readGlobals(section: Section | undefined): Global[] {
  if (!section) return [];
  return readVector(section, 'global', (reader) => ({
    type: readValType(reader),
    mutable: readMutability(reader),
    init: readConstExpr(reader),
  }));
}

export function encodeGlobals(globals: readonly Global[]): Section {
  return encodeVector(SectionId.global, globals, (writer, global) => {
    writer.bytes(global.type.raw).u8(global.mutable ? 1 : 0).bytes(global.init);
  });
}

// ---------------------------------------------------------------- exports

export interface Export {
  name: string;
  kind: ExternKind;
  index: number;
}

export function readExports(section: Section | undefined): Export[] {
  if (!section) return [];
  return readVector(section, 'export', (reader) => ({ name: reader.name(), kind: readExternKind(reader), index: reader.u32() }));
}

export function encodeExports(exports: readonly Export[]): Section {
  return encodeVector(SectionId.export, exports, (writer, item) => {
    writer.name(item.name).u8(EXTERN_KINDS.indexOf(item.kind)).u32(item.index);
  });
}

// ---------------------------------------------------------------- start, data count

function readSingleU32(section: Section, what: string): number {
  const reader = new ByteReader(section.payload, section.offset ?? 0);
  const value = reader.u32();
  reader.expectEnd(`the ${what} section`);
  return value;
}

export function readStart(section: Section | undefined): number | undefined {
  return section ? readSingleU32(section, 'start') : undefined;
}

export function encodeStart(funcIndex: number): Section {
  return { id: SectionId.start, payload: new ByteWriter(5).u32(funcIndex).finish() };
}

export function readDataCount(section: Section | undefined): number | undefined {
  return section ? readSingleU32(section, 'data count') : undefined;
}

export function encodeDataCount(count: number): Section {
  return { id: SectionId.dataCount, payload: new ByteWriter(5).u32(count).finish() };
}

// ---------------------------------------------------------------- data

export type DataSegment =
  | { mode: 'active'; memory: number; offset: Uint8Array; bytes: Uint8Array }
  | { mode: 'passive'; bytes: Uint8Array };

export function readData(section: Section | undefined): DataSegment[] {
  if (!section) return [];
  return readVector(section, 'data', (reader): DataSegment => {
    const at = reader.offset;
    const flags = reader.u32();
    switch (flags) {
      case 0:
        return { mode: 'active', memory: 0, offset: readConstExpr(reader), bytes: reader.bytesView(reader.u32()) };
      case 1:
        return { mode: 'passive', bytes: reader.bytesView(reader.u32()) };
      case 2: {
        const memory = reader.u32();
        return { mode: 'active', memory, offset: readConstExpr(reader), bytes: reader.bytesView(reader.u32()) };
      }
      default:
        throw malformed(`invalid data segment flags ${flags}`, at);
    }
  });
}

export function encodeData(segments: readonly DataSegment[]): Section {
  return encodeVector(SectionId.data, segments, (writer, segment) => {
    if (segment.mode === 'passive') writer.u8(1);
    else if (segment.memory === 0) writer.u8(0).bytes(segment.offset);
    else writer.u8(2).u32(segment.memory).bytes(segment.offset);
    writer.u32(segment.bytes.length).bytes(segment.bytes);
  });
}

