/**
 * Instruction-level decoding for the fuel instrumenter: a cursor over a
 * function body and the immediates of every instruction it accepts. The
 * accepted set is explicit: the core instruction set with sign extension,
 * saturating truncation, bulk memory, reference types, multi-value, tail
 * calls, typed function references, fixed-width and relaxed SIMD, and
 * legacy exception handling (`try`/`catch`/`delegate`/`throw`/`rethrow`).
 * Refused: GC (0xfb), threads (0xfe) and exnref exception handling
 * (`try_table`, `throw_ref`): the engine componentize-js builds uses none of
 * them, and Node 20's V8 can neither validate nor run exnref, so its metering
 * could not be checked. Metering code we cannot decode would be unsound.
 */

export type FuelErrorKind =
  /** An instruction this instrumenter does not know: it cannot meter what it cannot decode. */
  | 'unknown-opcode'
  /** A valid module using a feature the instrumenter refuses (memory64, GC types...). */
  | 'unsupported'
  /** The bytes are not a well-formed module or component. */
  | 'malformed'
  /** The input does not validate in this engine (invalid, or it needs a feature the engine lacks). */
  | 'invalid-input'
  /** The module already carries a fuel counter. */
  | 'already-instrumented'
  /** Bad costs or options. */
  | 'invalid-options'
  /** The instrumented module does not validate: a bug in the instrumenter. */
  | 'invalid-output';

export class FuelInstrumentError extends Error {
  constructor(
    readonly kind: FuelErrorKind,
    message: string,
    /** Byte offset in the module (or component) where the problem was found, when known. */
    readonly offset?: number,
  ) {
    super(offset === undefined ? message : `${message} (at byte offset ${offset})`);
    this.name = 'FuelInstrumentError';
  }
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(2, '0')}`;
}

/** Reads a function body; `base` maps positions to offsets in the file for errors. */
export class CodeCursor {
  /** Immediates of the last instruction read (see readInstruction). */
  index = 0;
  sub = 0;
  readonly labels: number[] = [];

  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly end: number,
    readonly base: number,
    /** Where the code is, for error messages ("in function 12"). */
    readonly where: string,
  ) {}

  get offset(): number {
    return this.base + this.pos;
  }

  u8(): number {
    if (this.pos >= this.end) throw this.truncated();
    return this.bytes[this.pos++]!;
  }

  /** Unsigned 32-bit LEB128. */
  u32(): number {
    const start = this.pos;
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.u8();
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) {
        if (result > 0xffff_ffff) break;
        return result;
      }
    }
    throw new FuelInstrumentError('malformed', `invalid unsigned 32-bit LEB128 integer ${this.where}`, this.base + start);
  }

  /** Skips a LEB128 integer of at most `maxBytes` bytes (signed or not: only its length matters). */
  skipLeb(maxBytes: number): void {
    const start = this.pos;
    for (let i = 0; i < maxBytes; i++) if ((this.u8() & 0x80) === 0) return;
    throw new FuelInstrumentError('malformed', `LEB128 integer longer than ${maxBytes} bytes ${this.where}`, this.base + start);
  }

  skip(count: number): void {
    if (this.end - this.pos < count) throw this.truncated();
    this.pos += count;
  }

  /** A block type: empty (0x40), a value type, or a type index (s33). */
  skipBlockType(): void {
    const byte = this.bytes[this.pos];
    if (byte === 0x63 || byte === 0x64) {
      this.pos++;
      this.skipLeb(5); // (ref null? heaptype)
    } else {
      this.skipLeb(5);
    }
  }

  skipValType(): void {
    const byte = this.u8();
    if (byte === 0x63 || byte === 0x64) this.skipLeb(5);
  }

  /** align (bit 6: a memory index follows), [memory], offset. */
  skipMemArg(): void {
    const align = this.u32();
    if (align & 0x40) this.u32();
    this.skipLeb(10);
  }

  truncated(): FuelInstrumentError {
    return new FuelInstrumentError('malformed', `code ends in the middle of an instruction ${this.where}`, this.offset);
  }
}

/** How a plain (non-control) instruction's immediates are laid out. */
const enum Imm {
  Unknown = 0,
  None,
  U32,
  MemArg,
  I32,
  I64,
  F32,
  F64,
  HeapType,
  SelectTypes,
}

const PLAIN = new Uint8Array(256);
PLAIN[0x1a] = Imm.None; // drop
PLAIN[0x1b] = Imm.None; // select
PLAIN[0x1c] = Imm.SelectTypes;
for (let op = 0x20; op <= 0x26; op++) PLAIN[op] = Imm.U32; // local.*, global.*, table.get/set
for (let op = 0x28; op <= 0x3e; op++) PLAIN[op] = Imm.MemArg; // loads and stores
PLAIN[0x3f] = Imm.U32; // memory.size
PLAIN[0x40] = Imm.U32; // memory.grow
PLAIN[0x41] = Imm.I32;
PLAIN[0x42] = Imm.I64;
PLAIN[0x43] = Imm.F32;
PLAIN[0x44] = Imm.F64;
for (let op = 0x45; op <= 0xc4; op++) PLAIN[op] = Imm.None; // numeric, sign extension
PLAIN[0xd0] = Imm.HeapType; // ref.null
PLAIN[0xd1] = Imm.None; // ref.is_null
PLAIN[0xd2] = Imm.U32; // ref.func
PLAIN[0xd4] = Imm.None; // ref.as_non_null

function skipPlainImmediates(cursor: CodeCursor, opcode: number): boolean {
  switch (PLAIN[opcode] as Imm) {
    case Imm.None:
      return true;
    case Imm.U32:
      cursor.u32();
      return true;
    case Imm.MemArg:
      cursor.skipMemArg();
      return true;
    case Imm.I32:
    case Imm.HeapType:
      cursor.skipLeb(5);
      return true;
    case Imm.I64:
      cursor.skipLeb(10);
      return true;
    case Imm.F32:
      cursor.skip(4);
      return true;
    case Imm.F64:
      cursor.skip(8);
      return true;
    case Imm.SelectTypes: {
      const count = cursor.u32();
      for (let i = 0; i < count; i++) cursor.skipValType();
      return true;
    }
    default:
      return false;
  }
}

/** 0xfc sub-opcodes. */
export const Misc = {
  memoryInit: 8,
  dataDrop: 9,
  memoryCopy: 10,
  memoryFill: 11,
  tableInit: 12,
  elemDrop: 13,
  tableCopy: 14,
  tableGrow: 15,
  tableSize: 16,
  tableFill: 17,
} as const;

function skipMiscImmediates(cursor: CodeCursor, sub: number): boolean {
  if (sub <= 7) return true; // saturating truncations
  switch (sub) {
    case Misc.memoryInit:
    case Misc.memoryCopy:
    case Misc.tableInit:
    case Misc.tableCopy:
      cursor.u32();
      cursor.u32();
      return true;
    case Misc.dataDrop:
    case Misc.memoryFill:
    case Misc.elemDrop:
    case Misc.tableGrow:
    case Misc.tableSize:
    case Misc.tableFill:
      cursor.u32();
      return true;
    default:
      return false;
  }
}

const enum Simd {
  Unknown = 0,
  None,
  MemArg,
  MemArgLane,
  Lane,
  Bytes16,
}

/** Immediates of the 0xfd sub-opcodes 0x00-0x113 (fixed-width SIMD, then relaxed SIMD). */
const SIMD = new Uint8Array(0x114);
for (let sub = 0x00; sub <= 0x0b; sub++) SIMD[sub] = Simd.MemArg; // v128.load*, v128.store
SIMD[0x0c] = Simd.Bytes16; // v128.const
SIMD[0x0d] = Simd.Bytes16; // i8x16.shuffle
for (let sub = 0x0e; sub <= 0x14; sub++) SIMD[sub] = Simd.None; // swizzle, splats
for (let sub = 0x15; sub <= 0x22; sub++) SIMD[sub] = Simd.Lane; // extract/replace_lane
for (let sub = 0x23; sub <= 0x53; sub++) SIMD[sub] = Simd.None; // comparisons, bitwise
for (let sub = 0x54; sub <= 0x5b; sub++) SIMD[sub] = Simd.MemArgLane; // load/store lane
SIMD[0x5c] = Simd.MemArg; // v128.load32_zero
SIMD[0x5d] = Simd.MemArg; // v128.load64_zero
for (let sub = 0x5e; sub <= 0xff; sub++) SIMD[sub] = Simd.None; // arithmetic, conversions
// Numbers the SIMD proposal leaves unassigned.
for (const hole of [0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee]) {
  SIMD[hole] = Simd.Unknown;
}
for (let sub = 0x100; sub <= 0x113; sub++) SIMD[sub] = Simd.None; // relaxed SIMD

function skipSimdImmediates(cursor: CodeCursor, sub: number): boolean {
  switch ((sub < SIMD.length ? SIMD[sub] : Simd.Unknown) as Simd) {
    case Simd.None:
      return true;
    case Simd.MemArg:
      cursor.skipMemArg();
      return true;
    case Simd.MemArgLane:
      cursor.skipMemArg();
      cursor.skip(1);
      return true;
    case Simd.Lane:
      cursor.skip(1);
      return true;
    case Simd.Bytes16:
      cursor.skip(16);
      return true;
    default:
      return false;
  }
}

/** What a refused prefix is, for the error message. */
function prefixName(prefix: number): string {
  switch (prefix) {
    case 0xfb:
      return 'GC';
    case 0xfc:
      return 'bulk memory / saturating truncation';
    case 0xfd:
      return 'SIMD';
    case 0xfe:
      return 'threads (atomics)';
    default:
      return 'prefixed';
  }
}

/**
 * Reads one instruction and its immediates; returns its opcode (for 0xfc
 * and 0xfd, the prefix: the sub-opcode is in `cursor.sub`). The immediates
 * the instrumenter needs are left in the cursor: `index` (the label of a
 * branch, the function of a `call`), `labels` (br_table targets, default
 * last). Throws 'unknown-opcode' for anything else.
 */
export function readInstruction(cursor: CodeCursor): number {
  const at = cursor.pos;
  const opcode = cursor.u8();
  switch (opcode) {
    case 0x00: // unreachable
    case 0x01: // nop
    case 0x05: // else
    case 0x0b: // end
    case 0x0f: // return
    case 0x19: // catch_all
      return opcode;
    case 0x02: // block
    case 0x03: // loop
    case 0x04: // if
    case 0x06: // try
      cursor.skipBlockType();
      return opcode;
    case 0x07: // catch tag
    case 0x08: // throw tag
    case 0x09: // rethrow label
    case 0x0c: // br
    case 0x0d: // br_if
    case 0x10: // call
    case 0x12: // return_call
    case 0x14: // call_ref type
    case 0x15: // return_call_ref type
    case 0x18: // delegate label
    case 0xd5: // br_on_null
    case 0xd6: // br_on_non_null
      cursor.index = cursor.u32();
      return opcode;
    case 0x11: // call_indirect type table
    case 0x13: // return_call_indirect
      cursor.index = cursor.u32();
      cursor.u32();
      return opcode;
    case 0x0e: {
      // br_table
      const count = cursor.u32();
      cursor.labels.length = 0;
      for (let i = 0; i <= count; i++) cursor.labels.push(cursor.u32());
      return opcode;
    }
    case 0x0a:
    case 0x1f:
      throw unknownOpcode(cursor, `${opcode === 0x0a ? 'throw_ref' : 'try_table'} (exnref exception handling)`, at);
    case 0xfc:
    case 0xfd: {
      const sub = (cursor.sub = cursor.u32());
      if (opcode === 0xfc ? skipMiscImmediates(cursor, sub) : skipSimdImmediates(cursor, sub)) return opcode;
      throw unknownOpcode(cursor, `${hex(opcode)} ${sub} (${prefixName(opcode)})`, at);
    }
    case 0xfb:
    case 0xfe:
      throw unknownOpcode(cursor, `${hex(opcode)} ${cursor.u32()} (${prefixName(opcode)})`, at);
    default:
      if (skipPlainImmediates(cursor, opcode)) return opcode;
      throw unknownOpcode(cursor, hex(opcode), at);
  }
}

function unknownOpcode(cursor: CodeCursor, name: string, at: number): FuelInstrumentError {
  return new FuelInstrumentError(
    'unknown-opcode',
    `unknown or unsupported instruction ${name} ${cursor.where}: the fuel instrumenter cannot meter it`,
    cursor.base + at,
  );
}
