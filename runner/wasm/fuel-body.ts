import { ByteWriter } from './bytes.ts';
import { CodeCursor, FuelInstrumentError, Misc, readInstruction } from './fuel-decode.ts';

/**
 * The per-function pass of the fuel instrumenter (the scheme is described in
 * fuel.ts). A first pass decodes the body, follows its control structure and
 * records edits (insertions at byte positions); a second copies the body with
 * the edits written in. Two passes because a region's cost is known only at
 * its end while its charge goes at its start.
 *
 * Each function gets a local D: the fuel it consumed and has not yet taken
 * off the global G. Regions add their cost to D; a flush does `G -= D; D = 0`
 * before calls, returns, throws and traps; a check traps when `G < D`. As D
 * starts from zero, nothing is read back after a call, and an exception
 * handler finds D as the throwing call left it (flushed).
 *
 * Where a region is charged: a region is a stretch of code only ever entered
 * at its start. Its cost is normally added where it starts, but two exact
 * rewrites save charges (each executed charge is an add, and in the huge
 * functions of an interpreter, a load and a store of a spilled local):
 * - folding: when no code inside a block or if can leave it early, the code
 *   after its end runs exactly once per entry into the region that was
 *   running before it, so it is charged there;
 * - pushing: the code after a label that is only reached by falling through
 *   or by unconditional `br`s is charged by those predecessors (a loop header
 *   keeps its check).
 */

export interface BodyContext {
  instruction: number;
  call: number;
  memoryGrowPerPage: number;
  /** log2 of bulkBytesPerUnit and tableElementsPerUnit. */
  bytesShift: number;
  elementsShift: number;
  fuelGlobal: number;
}

const enum FrameKind {
  Func,
  Block,
  Loop,
  If,
  Else,
  Try,
  Catch,
}

interface Frame {
  kind: FrameKind;
  /** The region running when the frame was entered (null if unreachable). */
  outer: Edit | null;
  /** Loop: the region of its header. */
  header: Edit | null;
  /** A reachable branch goes to the frame's label. */
  targeted: boolean;
  /** A conditional branch or a br_table goes to the label. */
  condTargeted: boolean;
  /** Regions that reach the label with an unconditional `br` or by falling through. */
  preds: Set<Edit>;
  /** if/else, try/catch: an earlier arm falls through to the end. */
  armsLive: boolean;
  /**
   * Control can leave the frame other than through its end or its label: a
   * branch to an outer label, a return, an exception.
   */
  escaped: boolean;
}

const enum EditKind {
  /** D += a region's static cost, then optionally check. */
  Charge,
  /** G -= D (and D = 0 when the function goes on with D). */
  Flush,
  /** D += a bulk operation's dynamic cost from its size operand (top of the stack), then check. */
  BulkBytes,
  BulkElements,
  Grow,
}

interface Edit {
  pos: number;
  kind: EditKind;
  cost: number;
  check: boolean;
  /** Flush: the function goes on running with D afterwards. */
  reset: boolean;
  /** Charge: the regions that charge this one's cost instead (each of them always flows into it). */
  pushedTo: Set<Edit> | null;
}

function newEdit(pos: number, kind: EditKind, check = false, reset = false): Edit {
  return { pos, kind, cost: 0, check, reset, pushedTo: null };
}

// Opcodes of the code the instrumenter writes.
const UNREACHABLE = 0x00;
const IF = 0x04;
const END = 0x0b;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const GLOBAL_GET = 0x23;
const GLOBAL_SET = 0x24;
const I64_CONST = 0x42;
const I64_LT_S = 0x53;
const I64_ADD = 0x7c;
const I64_SUB = 0x7d;
const I64_MUL = 0x7e;
const I64_SHR_U = 0x88;
const I64_EXTEND_I32_U = 0xad;
const EMPTY_BLOCK = 0x40;
const I64 = 0x7e;
const I32 = 0x7f;

/** Instructions that do no work: free, as in wasmtime's fuel. */
const FREE = new Uint8Array(256);
for (const op of [0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x07, 0x0b, 0x0f, 0x18, 0x19, 0x1a]) FREE[op] = 1;

const CALLS = new Uint8Array(256);
for (const op of [0x10, 0x11, 0x12, 0x13, 0x14, 0x15]) CALLS[op] = 1;

/** Engines refuse functions with more locals (V8, SpiderMonkey, wasmtime all use this limit). */
const MAX_LOCALS = 50_000;

/**
 * Instruments one function body `bytes[start, end)` (locals and expression)
 * and returns the new body. `base` is the file offset of `bytes[0]`.
 */
export function instrumentBody(
  bytes: Uint8Array,
  start: number,
  end: number,
  paramCount: number,
  funcIndex: number,
  base: number,
  ctx: BodyContext,
): Uint8Array<ArrayBuffer> {
  const cursor = new CodeCursor(bytes, start, end, base, `in function ${funcIndex}`);
  let locals = paramCount;
  const groups = cursor.u32();
  const groupsStart = cursor.pos;
  for (let i = 0; i < groups; i++) {
    locals += cursor.u32();
    cursor.skipValType();
  }
  if (locals + 2 > MAX_LOCALS) {
    throw new FuelInstrumentError('unsupported', `function ${funcIndex} has ${locals} locals: no room for the fuel locals under the limit of ${MAX_LOCALS}`, base + start);
  }
  const exprStart = cursor.pos;
  const { edits, needsScratch } = scan(cursor, ctx);

  const out = new ByteWriter(Math.ceil((end - start) * 1.4) + 32);
  out.u32(groups + (needsScratch ? 2 : 1));
  out.bytes(bytes.subarray(groupsStart, exprStart));
  out.u32(1).u8(I64);
  if (needsScratch) out.u32(1).u8(I32);
  new Emitter(out, locals, locals + 1, ctx).emit(bytes, exprStart, end, edits);
  return out.finish();
}

/** First pass: decode, follow the control structure, record edits. */
function scan(cursor: CodeCursor, ctx: BodyContext): { edits: Edit[]; needsScratch: boolean } {
  const edits: Edit[] = [];
  const frames: Frame[] = [];
  /** Open try frames: a call or throw inside one may continue at a handler of this function. */
  let tries = 0;
  let needsScratch = false;
  // The region running, null in unreachable code.
  let region: Edit | null = null;

  const fail = (message: string, at: number): never => {
    throw new FuelInstrumentError('malformed', `${message} ${cursor.where}`, cursor.base + at);
  };
  const push = (kind: FrameKind): Frame => {
    const frame: Frame = { kind, outer: region, header: null, targeted: false, condTargeted: false, preds: new Set(), armsLive: false, escaped: false };
    frames.push(frame);
    if (kind === FrameKind.Try) tries++;
    return frame;
  };
  const charge = (pos: number, check: boolean): Edit => {
    const edit = newEdit(pos, EditKind.Charge, check);
    edits.push(edit);
    return edit;
  };
  const flush = (pos: number, reset: boolean) => edits.push(newEdit(pos, EditKind.Flush, false, reset));
  /** The frames above `frames[index]` can be left early. */
  const escapeAbove = (index: number) => {
    for (let i = frames.length - 1; i > index; i--) frames[i]!.escaped = true;
  };
  const frameIndex = (depth: number, at: number): number => {
    if (depth >= frames.length) fail(`branch depth ${depth} is outside the ${frames.length} enclosing blocks`, at);
    return frames.length - 1 - depth;
  };
  /**
   * A reachable branch. To the function's label it is a return (`goesOn`:
   * other paths stay in the function, so D is reset after the flush).
   */
  const branch = (depth: number, at: number, goesOn: boolean, unconditional: boolean) => {
    const index = frameIndex(depth, at);
    if (!region) return;
    const frame = frames[index]!;
    frame.targeted = true;
    if (unconditional) frame.preds.add(region);
    else frame.condTargeted = true;
    escapeAbove(index);
    if (index === 0) flush(at, goesOn);
  };
  /** Control may go on at a handler of this function. */
  const mayThrow = () => {
    if (tries > 0) escapeAbove(0);
  };

  push(FrameKind.Func);
  region = charge(cursor.pos, true);

  while (frames.length > 0) {
    const at = cursor.pos;
    const opcode = readInstruction(cursor);
    if (region && !FREE[opcode]) region.cost += CALLS[opcode] ? ctx.call : ctx.instruction;
    switch (opcode) {
      case 0x00: // unreachable: a trap ends the run
        if (region) flush(at, false);
        region = null;
        break;
      case 0x02: // block
        push(FrameKind.Block);
        break;
      case 0x03: {
        // loop: the header is a region start, checked
        const frame = push(FrameKind.Loop);
        if (region) region = frame.header = charge(cursor.pos, true);
        break;
      }
      case 0x04: // if: the then arm is a region
        push(FrameKind.If);
        if (region) region = charge(cursor.pos, false);
        break;
      case 0x05: {
        // else: so is the else arm
        const frame = frames[frames.length - 1]!;
        if (frame.kind !== FrameKind.If) fail('else without if', at);
        frame.armsLive = region !== null;
        if (region) frame.preds.add(region);
        frame.kind = FrameKind.Else;
        region = frame.outer ? charge(cursor.pos, false) : null;
        break;
      }
      case 0x06: // try (legacy exception handling)
        push(FrameKind.Try);
        break;
      case 0x07: // catch, catch_all: a handler is a region
      case 0x19: {
        const frame = frames[frames.length - 1]!;
        if (frame.kind !== FrameKind.Try && frame.kind !== FrameKind.Catch) fail('catch without try', at);
        if (frame.kind === FrameKind.Try) tries--; // a throw in a handler is not caught by it
        frame.armsLive ||= region !== null;
        frame.kind = FrameKind.Catch;
        region = frame.outer ? charge(cursor.pos, false) : null;
        break;
      }
      case 0x08: // throw, rethrow
      case 0x09:
        if (opcode === 0x09) frameIndex(cursor.index, at);
        if (region) {
          escapeAbove(0);
          flush(at, tries > 0);
        }
        region = null;
        break;
      case 0x0b: // end, delegate
      case 0x18: {
        const frame = frames.pop()!;
        if (frame.kind === FrameKind.Try) tries--;
        if (opcode === 0x18) {
          if (frame.kind !== FrameKind.Try) fail('delegate outside a try without handlers', at);
          frameIndex(cursor.index, at);
        }
        if (frame.kind === FrameKind.Func) {
          if (region) flush(at, false);
          break;
        }
        if (frame.kind === FrameKind.Loop) {
          pushLoopHeader(frame);
          break; // the code after a loop is reached only by falling out of its body
        }
        if (region) frame.preds.add(region);
        region = afterEnd(frame, region, () => charge(cursor.pos, false));
        break;
      }
      case 0x0c: // br
        branch(cursor.index, at, false, true);
        region = null;
        break;
      case 0x0d: // br_if, br_on_null, br_on_non_null
      case 0xd5:
      case 0xd6:
        branch(cursor.index, at, true, false);
        // The fallthrough is a region of its own, so a taken branch does not pay for it.
        if (region) region = charge(cursor.pos, false);
        break;
      case 0x0e: {
        // br_table
        const returnDepth = frames.length - 1;
        const goesOn = cursor.labels.some((depth) => depth !== returnDepth);
        for (const depth of new Set(cursor.labels)) branch(depth, at, goesOn, false);
        region = null;
        break;
      }
      case 0x0f: // return, return_call*
      case 0x12:
      case 0x13:
      case 0x15:
        if (region) {
          escapeAbove(0);
          flush(at, false);
        }
        region = null;
        break;
      case 0x10: // call, call_indirect, call_ref
      case 0x11:
      case 0x14:
        if (region) {
          mayThrow();
          flush(at, true);
        }
        break;
      case 0x40: // memory.grow
        if (region && ctx.memoryGrowPerPage > 0) {
          edits.push(newEdit(at, EditKind.Grow, true));
          needsScratch = true;
        }
        break;
      case 0xfc: {
        const sub = cursor.sub;
        const kind =
          sub === Misc.memoryCopy || sub === Misc.memoryFill || sub === Misc.memoryInit
            ? EditKind.BulkBytes
            : sub === Misc.tableCopy || sub === Misc.tableFill || sub === Misc.tableInit || sub === Misc.tableGrow
              ? EditKind.BulkElements
              : undefined;
        if (region && kind !== undefined) {
          edits.push(newEdit(at, kind, true));
          needsScratch = true;
        }
        break;
      }
    }
  }
  if (cursor.pos !== cursor.end) fail(`${cursor.end - cursor.pos} bytes follow the end of the body`, cursor.pos);

  // Pushed costs flow to earlier regions (predecessors precede the label, and
  // a loop header is pushed only to the region before the loop and back
  // edges that are not pushed themselves), so one backward sweep settles all.
  for (let i = edits.length - 1; i >= 0; i--) {
    const edit = edits[i]!;
    if (!edit.pushedTo) continue;
    for (const pred of edit.pushedTo) pred.cost += edit.cost;
    edit.cost = 0;
  }
  return { edits, needsScratch };
}

/**
 * A loop whose header is entered only by falling into the loop and by `br`
 * back edges: they charge the header's cost, the header keeps its check.
 */
function pushLoopHeader(frame: Frame): void {
  const header = frame.header;
  if (!header || !frame.outer || frame.condTargeted) return;
  for (const pred of frame.preds) if (pred === header || pred.pushedTo) return;
  header.pushedTo = new Set([frame.outer, ...frame.preds]);
}

/**
 * The region after a frame's `end` (not a loop's). Nothing runs there if
 * nothing reaches it. When the frame cannot be left early, the code after it
 * runs exactly once per entry into the region that was running before the
 * frame, so it is charged there (folding). Otherwise a join (after an if or
 * a try, after a block some branch targets) is a region of its own, charged
 * by its predecessors when they all reach it unconditionally (pushing), and a
 * point reached only by falling through continues the region running.
 */
function afterEnd(frame: Frame, region: Edit | null, newRegion: () => Edit): Edit | null {
  let reachable: boolean;
  let join: boolean;
  switch (frame.kind) {
    case FrameKind.If: // without else: the false arm goes straight to the end
      reachable = region !== null || frame.outer !== null || frame.targeted;
      join = true;
      break;
    case FrameKind.Else:
    case FrameKind.Catch:
      reachable = region !== null || frame.armsLive || frame.targeted;
      join = true;
      break;
    default: // block, try without handlers
      reachable = region !== null || frame.targeted;
      join = frame.targeted;
  }
  if (!reachable) return null;
  if (!join) return region;
  const foldable = frame.kind === FrameKind.Block || frame.kind === FrameKind.If || frame.kind === FrameKind.Else;
  if (foldable && !frame.escaped && frame.outer) return frame.outer;
  const joined = newRegion();
  const pushable = frame.kind === FrameKind.Block || frame.kind === FrameKind.Else;
  if (pushable && !frame.condTargeted) joined.pushedTo = frame.preds;
  return joined;
}

/** Second pass: copies the expression with the edits written in. */
class Emitter {
  /** G -= D */
  private readonly flush: Uint8Array;
  /** `i64.lt_s; if; G -= D; unreachable; end`, after pushing G and D. */
  private readonly exhausted: Uint8Array;

  constructor(
    private readonly out: ByteWriter,
    private readonly fuelLocal: number,
    private readonly scratchLocal: number,
    private readonly ctx: BodyContext,
  ) {
    this.flush = new ByteWriter(16).u8(GLOBAL_GET).u32(ctx.fuelGlobal).u8(LOCAL_GET).u32(fuelLocal).u8(I64_SUB).u8(GLOBAL_SET).u32(ctx.fuelGlobal).finish();
    this.exhausted = new ByteWriter(24).u8(I64_LT_S).u8(IF).u8(EMPTY_BLOCK).bytes(this.flush).u8(UNREACHABLE).u8(END).finish();
  }

  emit(bytes: Uint8Array, start: number, end: number, edits: readonly Edit[]): void {
    const out = this.out;
    let copied = start;
    for (let i = 0; i < edits.length; i++) {
      const edit = edits[i]!;
      if (edit.pos > copied) {
        out.bytes(bytes.subarray(copied, edit.pos));
        copied = edit.pos;
      }
      switch (edit.kind) {
        case EditKind.Charge:
          this.charge(edit.cost, edit.check);
          break;
        case EditKind.Flush: {
          // br_table may ask for several at one place: one does.
          let reset = edit.reset;
          while (edits[i + 1]?.kind === EditKind.Flush && edits[i + 1]!.pos === edit.pos) reset ||= edits[++i]!.reset;
          out.bytes(this.flush);
          if (reset) out.u8(I64_CONST).u8(0).u8(LOCAL_SET).u32(this.fuelLocal);
          break;
        }
        default:
          this.bulk(edit.kind);
      }
    }
    out.bytes(bytes.subarray(copied, end));
  }

  /** D += cost; then, if checking, trap when G < D. */
  private charge(cost: number, check: boolean): void {
    const out = this.out;
    if (check) out.u8(GLOBAL_GET).u32(this.ctx.fuelGlobal);
    if (cost > 0) {
      out.u8(LOCAL_GET).u32(this.fuelLocal).u8(I64_CONST);
      writeNonNegativeSleb(out, cost);
      out.u8(I64_ADD).u8(check ? LOCAL_TEE : LOCAL_SET).u32(this.fuelLocal);
    } else if (check) {
      out.u8(LOCAL_GET).u32(this.fuelLocal);
    }
    if (check) out.bytes(this.exhausted);
  }

  /** D += f(size operand), leaving the operand on the stack; then check. */
  private bulk(kind: EditKind): void {
    const out = this.out;
    out.u8(LOCAL_TEE).u32(this.scratchLocal);
    out.u8(GLOBAL_GET).u32(this.ctx.fuelGlobal);
    out.u8(LOCAL_GET).u32(this.fuelLocal);
    out.u8(LOCAL_GET).u32(this.scratchLocal).u8(I64_EXTEND_I32_U);
    if (kind === EditKind.Grow) {
      if (this.ctx.memoryGrowPerPage !== 1) {
        out.u8(I64_CONST);
        writeNonNegativeSleb(out, this.ctx.memoryGrowPerPage);
        out.u8(I64_MUL);
      }
    } else {
      const shift = kind === EditKind.BulkBytes ? this.ctx.bytesShift : this.ctx.elementsShift;
      if (shift > 0) out.u8(I64_CONST).u8(shift).u8(I64_SHR_U);
    }
    out.u8(I64_ADD).u8(LOCAL_TEE).u32(this.fuelLocal).bytes(this.exhausted);
  }
}

/** Signed LEB128 of a non-negative safe integer, without BigInt (this runs for every region). */
function writeNonNegativeSleb(out: ByteWriter, value: number): void {
  for (;;) {
    const byte = value % 128;
    value = Math.floor(value / 128);
    if (value === 0 && (byte & 0x40) === 0) {
      out.u8(byte);
      return;
    }
    out.u8(byte | 0x80);
  }
}
