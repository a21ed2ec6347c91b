/**
 * Deterministic fuel metering: V8 has no wasmtime-style fuel, so the
 * bytecode counts its own work.
 *
 * `instrumentFuel` adds to a core module one exported mutable i64 global,
 * `konnector_fuel` (FUEL_GLOBAL_EXPORT): the fuel REMAINING. It counts down.
 *
 * What is charged (defaults in DEFAULT_FUEL_COSTS):
 * - every executed instruction its static cost: `instruction` (1), calls
 *   `call` (1), and 0 for what does no work (block, loop, end, else, nop,
 *   drop, return, unreachable, and the exception-handling structure), as
 *   wasmtime's fuel counts;
 * - memory.copy/fill/init one more unit per `bulkBytesPerUnit` (64) bytes,
 *   table.copy/fill/init/grow one per `tableElementsPerUnit` (8) elements,
 *   memory.grow `memoryGrowPerPage` (1024) per page asked for, all read from
 *   the size operand at run time (a refused grow is charged too).
 *
 * How: the code is cut into regions that are only ever entered at their
 * start (function entry, loop header, if/else arm, catch handler, the join
 * after an if or try, the end of a block some branch targets, the
 * fallthrough of a conditional branch). Each function keeps in a local the
 * fuel it has used and not yet taken off the global; entering a region adds
 * the region's static cost to it, and it is taken off the global (flushed)
 * before every call, return, throw and trap. So a run that returns normally
 * is charged EXACTLY the sum above, as wasmtime would count it. A run cut
 * short by a trap, or a function left by an exception, may also be charged
 * for code it skipped up to the next region start. Counts depend only on the
 * code and its inputs (the host's clock and randomness included): the same
 * job on the same input consumes the same fuel, on any machine.
 *
 * Exhaustion: at function entries, loop headers and bulk operations the
 * code checks `global - used < 0`; if so it flushes (the global goes below
 * zero) and executes `unreachable`. Every unbounded execution goes through
 * these checks, so a guest overshoots by at most one loop-free stretch of
 * code per function on its call stack.
 *
 * THE RULE FOR THE HOST: set the global (a BigInt) to the budget before
 * calling into the instance; afterwards, whether the call returned or
 * trapped, a value below zero means the fuel ran out (a trap with the global
 * at zero or above is some other trap). The global starts at `initialFuel`
 * (default 0: calling in before setting a budget traps as exhausted; a module
 * with a start function needs an initial value to be instantiated). Each
 * metered core module has its own counter: with several, set each one.
 *
 * Host imports charge the guest for host work by subtracting from the
 * global: the guest has flushed before calling out, and its next check
 * (every loop iteration, every function entry) sees the charge.
 *
 * Instrumentation keeps every existing index (the global, the export and the
 * locals are appended), refuses any instruction it cannot decode, and
 * validates its output.
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import { WasmError } from './errors.ts';
import { binaryKind, encodeModule, findSection, mapCoreModules, readComponent, readModule, SectionId, setSection, ComponentSectionId, type Section } from './module.ts';
import { appendToVector, constExpr, countImports, readExports, readImports, readMemories, readTypes, vectorLength } from './sections.ts';
import { instrumentBody, type BodyContext } from './fuel-body.ts';
import { CodeCursor, FuelInstrumentError, readInstruction } from './fuel-decode.ts';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { formatIssues } from '../../host-api/schema-issues.ts';

export { FuelInstrumentError, type FuelErrorKind } from './fuel-decode.ts';

export const FUEL_GLOBAL_EXPORT = 'konnector_fuel';
/** Bump when what an instruction is charged changes: counts are comparable only within one version. */
export const FUEL_INSTRUMENTER_VERSION = '1';
/** Custom section recording the instrumenter version and costs, as JSON. */
export const FUEL_METADATA_SECTION = 'konnector_fuel';

export interface FuelCosts {
  /** Every instruction that does work and is not a call. At least 1, so every loop iteration costs fuel. */
  instruction: number;
  /** call, call_indirect, call_ref and their return_call forms (the callee's body is charged on its own). At least 1: a tail-call loop must cost fuel. */
  call: number;
  /** memory.copy/fill/init: one unit per this many bytes (a power of two), on top of the instruction. */
  bulkBytesPerUnit: number;
  /** table.copy/fill/init/grow: one unit per this many elements (a power of two). */
  tableElementsPerUnit: number;
  /** memory.grow: units per 64 KiB page asked for. */
  memoryGrowPerPage: number;
}

/** One unit per instruction; bulk work priced at one unit per 64 bytes touched (a page is 1024). */
export const DEFAULT_FUEL_COSTS: Readonly<FuelCosts> = Object.freeze({
  instruction: 1,
  call: 1,
  bulkBytesPerUnit: 64,
  tableElementsPerUnit: 8,
  memoryGrowPerPage: 1024,
});

const powerOfTwo = z
  .number()
  .int()
  .min(1)
  .max(2 ** 30)
  .refine((n) => (n & (n - 1)) === 0, 'must be a power of two');

const FuelCostsSchema = z
  .object({
    instruction: z.number().int().min(1).max(1_000_000),
    call: z.number().int().min(1).max(1_000_000),
    bulkBytesPerUnit: powerOfTwo,
    tableElementsPerUnit: powerOfTwo,
    memoryGrowPerPage: z.number().int().min(0).max(2 ** 31 - 1),
  })
  .strict();

const OptionsSchema = z
  .object({
    costs: FuelCostsSchema.partial().optional(),
    initialFuel: z.bigint().min(-(2n ** 63n)).max(2n ** 63n - 1n).optional(),
  })
  .strict();

export interface FuelOptions {
  costs?: Partial<FuelCosts>;
  /** Value of the counter when the instance is created (default 0). */
  initialFuel?: bigint;
  /** Keeps instrumented code sections: every konnector built by one toolchain has the same engine code. */
  cache?: CodeCache;
}

export interface CodeCache {
  getOrMake(key: string, make: () => Uint8Array): Uint8Array;
}

const FuelMetadataSchema = z.object({ version: z.string(), costs: FuelCostsSchema }).strict();

export type FuelMetadata = z.infer<typeof FuelMetadataSchema>;

// ------------------------------------------------------------------ public API

/** Adds fuel metering to a core module. Throws FuelInstrumentError. */
export function instrumentFuel(module: Uint8Array, opts: FuelOptions = {}): Uint8Array<ArrayBuffer> {
  const { costs, initialFuel } = parseOptions(opts);
  return wrapWasmErrors(() => instrumentModule(module, costs, initialFuel, 0, opts.cache));
}

/**
 * Adds fuel metering to every core module of a component that can run for
 * long: modules without code, and the forwarding stubs wit-component
 * generates (straight-line bodies ending in their single call), are left as
 * they are, because they cannot loop and every call they forward lands in
 * metered code or in the host. Each metered module gets its own counter (a
 * componentize-js component has exactly one).
 */
export function instrumentComponentFuel(component: Uint8Array, opts: FuelOptions = {}): Uint8Array {
  const { costs, initialFuel } = parseOptions(opts);
  return wrapWasmErrors(() => {
    const offsets = coreModuleOffsets(component);
    return mapCoreModules(component, (module, index) =>
      needsMetering(module) ? instrumentModule(module, costs, initialFuel, offsets[index]!, opts.cache) : module,
    );
  });
}

/**
 * Whether a core module carries the fuel counter; for a component, whether
 * every core module that needs metering does (and there is at least one).
 */
export function isFuelInstrumented(bytes: Uint8Array): boolean {
  return wrapWasmErrors(() => {
    if (binaryKind(bytes) === 'module') return exportsFuel(readModule(bytes));
    let metered = 0;
    let unmetered = 0;
    mapCoreModules(bytes, (module) => {
      if (exportsFuel(readModule(module))) metered++;
      else if (needsMetering(module)) unmetered++;
      return module;
    });
    return metered > 0 && unmetered === 0;
  });
}

/** The version and costs an instrumented core module was metered with. */
export function readFuelMetadata(module: Uint8Array): FuelMetadata | undefined {
  return wrapWasmErrors(() => {
    for (const section of readModule(module)) {
      if (section.id !== SectionId.custom) continue;
      const reader = new ByteReader(section.payload, section.offset ?? 0);
      if (reader.name() !== FUEL_METADATA_SECTION) continue;
      const text = new TextDecoder().decode(reader.rest());
      let parsed: ReturnType<typeof FuelMetadataSchema.safeParse> | undefined;
      try {
        parsed = FuelMetadataSchema.safeParse(JSON.parse(text));
      } catch {
        // not JSON: reported below
      }
      if (!parsed?.success) {
        throw new FuelInstrumentError('malformed', `the "${FUEL_METADATA_SECTION}" custom section does not hold the instrumenter's metadata: ${text.slice(0, 200)}`, section.offset);
      }
      return parsed.data;
    }
    return undefined;
  });
}

function parseOptions({ cache: _, ...opts }: FuelOptions): { costs: FuelCosts; initialFuel: bigint } {
  const parsed = OptionsSchema.safeParse(opts);
  if (!parsed.success) {
    throw new FuelInstrumentError('invalid-options', `invalid fuel options: ${formatIssues(parsed.error, 'options')}`);
  }
  return { costs: { ...DEFAULT_FUEL_COSTS, ...parsed.data.costs }, initialFuel: parsed.data.initialFuel ?? 0n };
}

/** The shared binary utilities throw WasmError; callers of this module get one error type. */
function wrapWasmErrors<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof WasmError) {
      const kind = error.kind === 'malformed' ? 'malformed' : 'unsupported';
      const fuelError = new FuelInstrumentError(kind, error.message.replace(/ \(at byte offset \d+\)$/, ''), error.offset);
      fuelError.cause = error;
      throw fuelError;
    }
    throw error;
  }
}

function exportsFuel(sections: readonly Section[]): boolean {
  return readExports(findSection(sections, SectionId.export)).some((e) => e.name === FUEL_GLOBAL_EXPORT && e.kind === 'global');
}

/** Offset of each core module's bytes in the component (depth-first, as mapCoreModules numbers them). */
function coreModuleOffsets(component: Uint8Array, base = 0, out: number[] = []): number[] {
  for (const section of readComponent(component)) {
    const at = base + section.offset!;
    if (section.id === ComponentSectionId.coreModule) out.push(at);
    else if (section.id === ComponentSectionId.component) coreModuleOffsets(section.payload, at, out);
  }
  return out;
}

// ------------------------------------------------------------------ module level

const I64 = 0x7e;

function instrumentModule(module: Uint8Array, costs: FuelCosts, initialFuel: bigint, base: number, cache?: CodeCache): Uint8Array<ArrayBuffer> {
  let sections = readModule(module);
  if (exportsFuel(sections)) {
    throw new FuelInstrumentError('already-instrumented', `the module already exports "${FUEL_GLOBAL_EXPORT}": it is metered already`, base);
  }
  const imports = readImports(findSection(sections, SectionId.import));
  const memories = [...imports.flatMap((i) => (i.desc.kind === 'memory' ? [i.desc.limits] : [])), ...readMemories(findSection(sections, SectionId.memory))];
  if (memories.some((m) => m.index64)) throw new FuelInstrumentError('unsupported', '64-bit memories (memory64) are not supported', base);
  refuseTable64(sections, imports, base);

  const types = readTypes(findSection(sections, SectionId.type));
  const functionSection = findSection(sections, SectionId.function);
  const funcTypes = functionSection ? readU32Vector(functionSection, base) : [];
  const paramCounts = funcTypes.map((type, i) => {
    const t = types[type];
    if (!t) throw new FuelInstrumentError('malformed', `function ${i} has type ${type}, but the module has ${types.length} types`, base);
    return t.params.length;
  });

  const counts = countImports(imports);
  const fuelGlobal = counts.global + vectorLength(findSection(sections, SectionId.global));
  const ctx: BodyContext = {
    instruction: costs.instruction,
    call: costs.call,
    memoryGrowPerPage: costs.memoryGrowPerPage,
    bytesShift: Math.log2(costs.bulkBytesPerUnit),
    elementsShift: Math.log2(costs.tableElementsPerUnit),
    fuelGlobal,
  };

  const code = findSection(sections, SectionId.code);
  if (code) {
    const instrument = () => instrumentCode(code, paramCounts, counts.func, base, ctx).payload;
    const key = () => {
      const inputs = JSON.stringify({ version: FUEL_INSTRUMENTER_VERSION, ctx, importedFuncs: counts.func, paramCounts });
      return `fuel-code-${createHash('sha256').update(inputs).update(code.payload).digest('hex')}`;
    };
    sections = setSection(sections, SectionId.code, { id: SectionId.code, payload: cache ? cache.getOrMake(key(), instrument) : instrument() });
  } else if (paramCounts.length > 0) {
    throw new FuelInstrumentError('malformed', 'the module declares functions but has no code section', base);
  }

  const global = new ByteWriter(16).u8(I64).u8(1).bytes(constExpr('i64', initialFuel)).finish();
  sections = setSection(sections, SectionId.global, appendToVector(SectionId.global, findSection(sections, SectionId.global), [global]));
  const exported = new ByteWriter(24).name(FUEL_GLOBAL_EXPORT).u8(3).u32(fuelGlobal).finish();
  sections = setSection(sections, SectionId.export, appendToVector(SectionId.export, findSection(sections, SectionId.export), [exported]));
  const metadata: FuelMetadata = { version: FUEL_INSTRUMENTER_VERSION, costs };
  sections.push({ id: SectionId.custom, payload: new ByteWriter(128).name(FUEL_METADATA_SECTION).bytes(new TextEncoder().encode(JSON.stringify(metadata))).finish() });

  const out = encodeModule(sections);
  if (!WebAssembly.validate(out)) {
    // Only our fault if the input was valid to this engine in the first place.
    if (!WebAssembly.validate(module as Uint8Array<ArrayBuffer>)) {
      throw new FuelInstrumentError('invalid-input', `the module does not validate in this engine (V8 ${process.versions.v8}): it is invalid or needs a WebAssembly feature the engine lacks`, base);
    }
    throw new FuelInstrumentError('invalid-output', 'the instrumented module does not validate: this is a bug in the fuel instrumenter', base);
  }
  return out;
}

function readU32Vector(section: Section, base: number): number[] {
  const reader = new ByteReader(section.payload, base + (section.offset ?? 0));
  const values = Array.from({ length: reader.u32() }, () => reader.u32());
  reader.expectEnd('the function section');
  return values;
}

/** Table limits flag 0x04 (table64) in the table section or a table import. */
function refuseTable64(sections: readonly Section[], imports: ReturnType<typeof readImports>, base: number): void {
  if (imports.some((i) => i.desc.kind === 'table' && i.desc.limits.index64)) {
    throw new FuelInstrumentError('unsupported', '64-bit tables (table64) are not supported', base);
  }
  const section = findSection(sections, SectionId.table);
  if (!section) return;
  const reader = new ByteReader(section.payload, base + (section.offset ?? 0));
  for (let count = reader.u32(); count > 0; count--) {
    const withInit = reader.bytes[reader.pos] === 0x40;
    if (withInit) reader.bytesView(2); // 0x40 0x00
    const elem = reader.u8();
    if (elem === 0x63 || elem === 0x64) reader.s33();
    const flags = reader.u8();
    if (flags & 0x04) throw new FuelInstrumentError('unsupported', '64-bit tables (table64) are not supported', reader.offset - 1);
    reader.u32();
    if (flags & 0x01) reader.u32();
    if (withInit) skipConstExpr(reader);
  }
}

function skipConstExpr(reader: ByteReader): void {
  const cursor = new CodeCursor(reader.bytes, reader.pos, reader.bytes.length, reader.baseOffset, 'in a table initializer');
  while (readInstruction(cursor) !== 0x0b);
  reader.pos = cursor.pos;
}

/**
 * Whether a module has code that could run for long: false when it has no
 * function bodies, or when every body is a forwarding stub (only local.get,
 * constants and global.get, then one call or call_indirect, then end).
 */
function needsMetering(module: Uint8Array): boolean {
  const code = findSection(readModule(module), SectionId.code);
  if (!code) return false;
  const reader = new ByteReader(code.payload, code.offset ?? 0);
  for (let count = reader.u32(), i = 0; i < count; i++) {
    const size = reader.u32();
    const start = reader.pos;
    const cursor = new CodeCursor(reader.bytes, start, start + size, reader.baseOffset, `in function body ${i}`);
    for (let groups = cursor.u32(); groups > 0; groups--) {
      cursor.u32();
      cursor.skipValType();
    }
    if (!isForwardingStub(cursor)) return true;
    reader.pos = start + size;
  }
  return false;
}

const STUB_OPERANDS = new Set([0x20, 0x23, 0x41, 0x42, 0x43, 0x44]); // local.get, global.get, constants

function isForwardingStub(cursor: CodeCursor): boolean {
  let opcode = readInstruction(cursor);
  while (STUB_OPERANDS.has(opcode)) opcode = readInstruction(cursor);
  if (opcode !== 0x10 && opcode !== 0x11) return false; // call, call_indirect
  return readInstruction(cursor) === 0x0b && cursor.pos === cursor.end;
}

function instrumentCode(code: Section, paramCounts: readonly number[], importedFuncs: number, base: number, ctx: BodyContext): Section {
  const payloadBase = base + code.offset!;
  const reader = new ByteReader(code.payload, payloadBase);
  const count = reader.u32();
  if (count !== paramCounts.length) {
    throw new FuelInstrumentError('malformed', `the code section has ${count} bodies but the function section declares ${paramCounts.length} functions`, payloadBase);
  }
  const bodies: Uint8Array[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const size = reader.u32();
    const start = reader.pos;
    reader.bytesView(size);
    const body = instrumentBody(code.payload, start, start + size, paramCounts[i]!, importedFuncs + i, payloadBase, ctx);
    bodies.push(body);
    total += body.length + 5;
  }
  reader.expectEnd('the code section');
  const out = new ByteWriter(total + 5).u32(count);
  for (const body of bodies) out.u32(body.length).bytes(body);
  return { id: SectionId.code, payload: out.finish() };
}
