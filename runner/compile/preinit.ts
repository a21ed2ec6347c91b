import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { WASI } from 'node:wasi';
import { z } from 'zod';
import { formatIssues } from '../../host-api/schema-issues.ts';
import {
  appendToVector,
  constExpr,
  countImports,
  encodeData,
  encodeDataCount,
  encodeExports,
  encodeGlobals,
  encodeMemories,
  encodeModule,
  encodeU32,
  ByteWriter,
  findSection,
  nonZeroRanges,
  readData,
  readDataCount,
  readExports,
  readFunctions,
  readGlobals,
  readImports,
  readMemories,
  readModule,
  readStart,
  readTypes,
  SectionId,
  setSection,
  vectorLength,
  WasmError,
  type DataSegment,
  type Export,
  type Global,
  type Import,
  type Limits,
  type NumericType,
  type Section,
} from '../wasm/index.ts';

/**
 * A deterministic pre-initializer: a drop-in for the subset of the `wizer`
 * CLI that componentize-js runs (its `wizerBin` option), built on V8 and
 * `node:wasi`. It instantiates the module, runs its initialization function
 * and writes a module whose globals, memories and data segments hold the
 * state the initialization left, like Wizer. Unlike Wizer, the guest sees a
 * seeded random generator and a scripted clock, so the same input gives the
 * same output bytes on every run and every machine.
 */

/** Names of the exports added to read the guest's state; the input may not use the prefix. */
const PREFIX = '__preinit_';
const RANDOM_SEED = 'cozy-konnector-preinit/1';
/** The clock starts at 2024-01-01T00:00:00Z and advances 1 us per reading: deterministic, never frozen. */
const CLOCK_EPOCH_NS = 1_704_067_200_000_000_000n;
const CLOCK_STEP_NS = 1_000n;
const PAGE_SIZE = 65_536;

const WASI_MODULE = 'wasi_snapshot_preview1';
const ERRNO_SUCCESS = 0;
const ERRNO_FAULT = 21;
const ERRNO_INVAL = 28;

export type PreinitErrorKind =
  /** Bad command line or an init function the module does not export. */
  | 'usage'
  /** The guest trapped (or threw) during initialization. */
  | 'init-trapped'
  /** The guest called `proc_exit` during initialization. */
  | 'init-exited'
  /** The guest called an import that is not available during initialization. */
  | 'forbidden-import'
  /** A valid module that cannot be snapshotted faithfully. */
  | 'unsupported'
  /** The rewritten module does not validate: a bug here. */
  | 'invalid-output';

export class PreinitError extends Error {
  constructor(
    readonly kind: PreinitErrorKind,
    message: string,
    /** For initialization failures: the guest function that was running. */
    readonly func?: string,
    /** For `init-exited`: the status passed to `proc_exit`. */
    readonly exitStatus?: number,
  ) {
    super(message);
    this.name = 'PreinitError';
  }
}

export interface PreinitOptions {
  /** Export to call once the module is instantiated (after `start` and `_initialize`). */
  initFunc: string;
  /** Whether `wasi_snapshot_preview1` imports work; without it every import traps. */
  allowWasi: boolean;
  /** Directories the guest sees: [guest path, host path], in preopen order. */
  preopens: ReadonlyArray<readonly [string, string]>;
  /** The guest's environment. */
  env: Readonly<Record<string, string>>;
}

// ------------------------------------------------------------------ CLI

const InvocationSchema = z
  .object({
    input: z.string().min(1),
    output: z.string().min(1),
    initFunc: z.string().min(1),
    allowWasi: z.boolean(),
    inheritEnv: z.boolean(),
    preopens: z.array(z.tuple([z.string().min(1), z.string().min(1)])),
  })
  .strict();

export type Invocation = z.infer<typeof InvocationSchema>;

const SUPPORTED_OPTIONS =
  '--allow-wasi, --init-func/-f, --dir, --mapdir, --inherit-env, --wasm-bulk-memory=true, -o/--output';

function usage(message: string): PreinitError {
  return new PreinitError('usage', `${message}\nUsage: preinit [${SUPPORTED_OPTIONS}] <input.wasm>`);
}

function parseBool(flag: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw usage(`${flag} takes true or false, got "${value}"`);
}

/** Parses the wizer command line that componentize-js builds (see its `componentize.js`). */
export function parseWizerArgs(argv: readonly string[]): Invocation {
  const options = {
    initFunc: 'wizer.initialize',
    allowWasi: false,
    inheritEnv: false,
    preopens: [] as [string, string][],
    output: undefined as string | undefined,
  };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[++i];
      if (next === undefined) throw usage(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--allow-wasi':
        options.allowWasi = inline === undefined ? true : parseBool(flag, inline);
        break;
      case '--init-func':
      case '-f':
        options.initFunc = value();
        break;
      case '--dir': {
        const dir = value();
        options.preopens.push([dir, dir]);
        break;
      }
      case '--mapdir': {
        const spec = value();
        const parts = spec.split('::');
        if (parts.length !== 2) throw usage(`--mapdir "${spec}" must be GUEST_DIR::HOST_DIR with exactly one "::"`);
        options.preopens.push([parts[0]!, parts[1]!]);
        break;
      }
      case '--inherit-env':
        options.inheritEnv = parseBool(flag, value());
        break;
      case '--wasm-bulk-memory':
        if (!parseBool(flag, value())) throw usage('--wasm-bulk-memory=false is not supported: V8 always validates with bulk memory');
        break;
      case '-o':
      case '--output':
        options.output = value();
        break;
      default:
        throw usage(`unsupported option ${flag}: this pre-initializer implements only ${SUPPORTED_OPTIONS}`);
    }
  }
  if (positional.length !== 1) throw usage(`expected exactly one input module, got ${positional.length}`);
  if (options.output === undefined) throw usage('missing -o=<output.wasm>');
  const guests = options.preopens.map(([guest]) => guest);
  const duplicate = guests.find((guest, i) => guests.indexOf(guest) !== i);
  if (duplicate !== undefined) throw usage(`guest directory "${duplicate}" is preopened twice`);
  const parsed = InvocationSchema.safeParse({ ...options, input: positional[0] });
  if (!parsed.success) {
    throw usage(formatIssues(parsed.error, 'arguments'));
  }
  return parsed.data;
}

/**
 * The wizer command-line contract: exit 0 and write `-o` on success;
 * otherwise exit non-zero with Wizer's stderr format, which componentize-js
 * parses (`parseWizerStderr`) to show only the guest's own error output.
 */
export function main(argv: readonly string[], stderr: NodeJS.WritableStream = process.stderr): number {
  // The guest runs once, for a fraction of a second: optimizing its hot
  // functions in the background only competes for the CPU (measured: the
  // whole run takes about half as long with baseline code only).
  setFlagsFromString('--liftoff-only');
  try {
    const invocation = parseWizerArgs(argv);
    const output = preinitialize(readFileSync(invocation.input), {
      initFunc: invocation.initFunc,
      allowWasi: invocation.allowWasi,
      preopens: invocation.preopens,
      env: invocation.inheritEnv ? definedEntries(process.env) : {},
    });
    writeFileSync(invocation.output, output);
    return 0;
  } catch (error) {
    stderr.write(formatError(error));
    return error instanceof PreinitError && error.kind === 'usage' ? 2 : 1;
  }
}

function definedEntries(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

export function formatError(error: unknown): string {
  if (error instanceof PreinitError && error.func !== undefined) {
    const cause = error.kind === 'init-exited' ? `Exited with i32 exit status ${error.exitStatus}` : error.message;
    const indented = cause
      .split('\n')
      .map((line) => (line ? `    ${line}` : line))
      .join('\n');
    return `Error: the \`${error.func}\` function trapped\n\nCaused by:\n${indented}\n`;
  }
  return `Error: ${error instanceof Error ? error.message : String(error)}\n`;
}

// ------------------------------------------------------------------ the pre-initializer

/** What the module declares, read once from its sections. */
interface Layout {
  sections: Section[];
  imports: Import[];
  exports: Export[];
  globals: Global[];
  memories: Limits[];
  tables: number;
  start: number | undefined;
  segments: DataSegment[];
  dataCount: number | undefined;
  /** Whether any code refers to data segments by index (`memory.init`, `data.drop`). */
  segmentsReferenced: boolean;
  /** The type index of `[] -> []`, the init function's. */
  initType: number;
}

/** State of the instance after initialization. */
interface Snapshot {
  globals: Map<number, number | bigint>;
  memories: Uint8Array[];
  /** Passive segments the initialization dropped (`data.drop`). */
  dropped: Set<number>;
  calledInitialize: boolean;
}

/**
 * Runs the module's initialization and returns the pre-initialized module.
 * Deterministic: same input and options, same bytes.
 */
export function preinitialize(input: Uint8Array, options: PreinitOptions): Uint8Array<ArrayBuffer> {
  const layout = readLayout(input, options.initFunc);
  const probes = probedSegments(layout);
  const instrumented = instrument(layout, probes);
  let compiled: WebAssembly.Module;
  try {
    compiled = new WebAssembly.Module(instrumented);
  } catch (error) {
    throw new WasmError('malformed', `the input module does not validate: ${(error as Error).message}`);
  }
  const snapshot = run(compiled, layout, probes, options);
  const output = rewrite(layout, snapshot, options.initFunc);
  if (!WebAssembly.validate(output)) {
    throw new PreinitError('invalid-output', 'the pre-initialized module does not validate: this is a bug in runner/compile/preinit.ts');
  }
  return output;
}

function readLayout(input: Uint8Array, initFunc: string): Layout {
  const sections = readModule(input);
  const section = (id: number) => findSection(sections, id);
  const imports = readImports(section(SectionId.import));
  for (const { module, name, desc } of imports) {
    if (desc.kind !== 'func') {
      throw new PreinitError('unsupported', `the module imports a ${desc.kind} ("${module}" "${name}"): only function imports can be pre-initialized`);
    }
  }
  const exports = readExports(section(SectionId.export));
  const reserved = exports.find((e) => e.name.startsWith(PREFIX));
  if (reserved) throw new PreinitError('unsupported', `the module exports "${reserved.name}", a name reserved by the pre-initializer`);
  const init = exports.find((e) => e.name === initFunc);
  if (!init) throw new PreinitError('usage', `the Wasm module does not have a \`${initFunc}\` export`);
  if (init.kind !== 'func') throw new PreinitError('usage', `the \`${initFunc}\` export is a ${init.kind}, not a function`);
  const functionTypes = [...imports.map(({ desc }) => (desc as { type: number }).type), ...readFunctions(section(SectionId.function))];
  const initType = functionTypes[init.index]!;
  const signature = readTypes(section(SectionId.type))[initType];
  if (signature?.params.length !== 0 || signature.results.length !== 0) {
    throw new PreinitError('usage', `the \`${initFunc}\` export must be a function of type [] -> []`);
  }

  const globals = readGlobals(section(SectionId.global));
  globals.forEach((global, index) => {
    if (global.mutable && !isScalar(global.type.name)) {
      throw new PreinitError('unsupported', `global ${index} is a mutable ${global.type.name}: only mutable i32, i64, f32 and f64 globals can be snapshotted`);
    }
  });
  const dataCount = readDataCount(section(SectionId.dataCount));
  return {
    sections,
    imports,
    exports,
    globals,
    memories: readMemories(section(SectionId.memory)),
    tables: vectorLength(section(SectionId.table)),
    start: readStart(section(SectionId.start)),
    segments: readData(section(SectionId.data)),
    dataCount,
    segmentsReferenced: dataCount !== undefined && referencesDataSegments(sections),
    initType,
  };
}

function isScalar(type: string): type is Exclude<NumericType, 'v128'> {
  return type === 'i32' || type === 'i64' || type === 'f32' || type === 'f64';
}

/**
 * `memory.init` and `data.drop` are only valid with a data count section, so
 * a module that still validates without its data count (and data) sections
 * has no code that refers to a data segment by index. That lets the output
 * renumber segments freely, as Wizer does, without decoding any code.
 */
function referencesDataSegments(sections: readonly Section[]): boolean {
  const stripped = sections.filter((s) => s.id !== SectionId.data && s.id !== SectionId.dataCount);
  return !WebAssembly.validate(encodeModule(stripped));
}

/**
 * Passive segments whose liveness after initialization matters: non-empty
 * ones that code may `memory.init` from. Whether the initialization dropped
 * them is found by probing (see `instrument`).
 */
function probedSegments(layout: Layout): number[] {
  if (!layout.segmentsReferenced || layout.memories.length === 0) return [];
  return layout.segments.flatMap((segment, index) => (segment.mode === 'passive' && segment.bytes.length > 0 ? [index] : []));
}

/**
 * The module that actually runs: every defined global, memory and table
 * exported so its state can be read; the start function exported instead of
 * run at instantiation (so tables can be recorded first and traps reported
 * like the init function's); and one probe function per probed segment that
 * copies its first byte to address 0, which traps if and only if the segment
 * was dropped.
 */
function instrument(layout: Layout, probes: readonly number[]): Uint8Array<ArrayBuffer> {
  const { sections } = layout;
  const added: Export[] = [];
  layout.globals.forEach((global, index) => {
    if (global.mutable) added.push({ name: `${PREFIX}global_${index}`, kind: 'global', index });
  });
  layout.memories.forEach((_, index) => added.push({ name: `${PREFIX}memory_${index}`, kind: 'memory', index }));
  for (let index = 0; index < layout.tables; index++) added.push({ name: `${PREFIX}table_${index}`, kind: 'table', index });
  let out = sections;
  if (layout.start !== undefined) {
    added.push({ name: `${PREFIX}start`, kind: 'func', index: layout.start });
    out = setSection(out, SectionId.start, null);
  }
  if (probes.length > 0) {
    const functionSection = findSection(sections, SectionId.function);
    const firstProbe = countImports(layout.imports).func + vectorLength(functionSection);
    out = setSection(out, SectionId.function, appendToVector(SectionId.function, functionSection, probes.map(() => encodeU32(layout.initType))));
    out = setSection(out, SectionId.code, appendToVector(SectionId.code, findSection(sections, SectionId.code), probes.map(probeBody)));
    probes.forEach((segment, k) => added.push({ name: `${PREFIX}probe_${segment}`, kind: 'func', index: firstProbe + k }));
  }
  out = setSection(out, SectionId.export, encodeExports([...layout.exports, ...added]));
  return encodeModule(out);
}

/** `(func (memory.init $segment (i32.const 0) (i32.const 0) (i32.const 1)))`, size-prefixed. */
function probeBody(segment: number): Uint8Array {
  const body = new ByteWriter(16).u8(0x00).u8(0x41).u8(0x00).u8(0x41).u8(0x00).u8(0x41).u8(0x01);
  body.u8(0xfc).u32(8).u32(segment).u8(0x00).u8(0x0b);
  const bytes = body.finish();
  return new ByteWriter(bytes.length + 1).u32(bytes.length).bytes(bytes).finish();
}

/** Thrown by our `proc_exit` to unwind the guest. */
class GuestExit {
  constructor(readonly status: number) {}
}

function run(compiled: WebAssembly.Module, layout: Layout, probes: readonly number[], options: PreinitOptions): Snapshot {
  let memory: WebAssembly.Memory | undefined;
  let forbidden: PreinitError | undefined;
  const imports = guestImports(layout.imports, options, () => memory, (error) => {
    forbidden ??= error;
    throw error;
  });
  const guestCall = (func: string, call: () => unknown) => {
    try {
      call();
    } catch (error) {
      throw initFailure(func, error);
    }
    // The guest may have caught the JS exception a forbidden import threw; Wizer's trap is not catchable.
    if (forbidden) throw new PreinitError('forbidden-import', forbidden.message, func);
  };

  let instance!: WebAssembly.Instance;
  guestCall('instantiation', () => (instance = new WebAssembly.Instance(compiled, imports.object)));
  const exports = instance.exports;
  memory = exports.memory instanceof WebAssembly.Memory ? exports.memory : (exports[`${PREFIX}memory_0`] as WebAssembly.Memory | undefined);
  if (memory) imports.wasi?.initialize({ exports: { memory } });

  const tablesBefore = readTables(exports, layout.tables);
  if (layout.start !== undefined) guestCall('start', exports[`${PREFIX}start`] as () => void);
  const initialize = exports._initialize;
  const calledInitialize = typeof initialize === 'function' && options.initFunc !== '_initialize';
  if (calledInitialize) guestCall('_initialize', initialize as () => void);
  guestCall(options.initFunc, exports[options.initFunc] as () => void);
  assertTablesUnchanged(tablesBefore, readTables(exports, layout.tables));

  const globals = new Map<number, number | bigint>();
  layout.globals.forEach((global, index) => {
    if (global.mutable) globals.set(index, (exports[`${PREFIX}global_${index}`] as WebAssembly.Global).value as number | bigint);
  });
  // Copies: probing writes into memory 0.
  const memories = layout.memories.map((_, index) => new Uint8Array((exports[`${PREFIX}memory_${index}`] as WebAssembly.Memory).buffer).slice());
  const dropped = new Set(probes.filter((segment) => isDropped(exports, segment)));
  return { globals, memories, dropped, calledInitialize };
}

function isDropped(exports: WebAssembly.Exports, segment: number): boolean {
  const memory = exports[`${PREFIX}memory_0`] as WebAssembly.Memory;
  if (memory.buffer.byteLength === 0) {
    try {
      memory.grow(1);
    } catch {
      throw new PreinitError('unsupported', `cannot tell whether data segment ${segment} was dropped: memory 0 is empty and cannot grow`);
    }
  }
  try {
    (exports[`${PREFIX}probe_${segment}`] as () => void)();
    return false;
  } catch (error) {
    if (error instanceof WebAssembly.RuntimeError) return true;
    throw error;
  }
}

function initFailure(func: string, error: unknown): PreinitError {
  if (error instanceof PreinitError) return new PreinitError(error.kind, error.message, func);
  if (error instanceof GuestExit) {
    return new PreinitError('init-exited', `the \`${func}\` function exited with status ${error.status}`, func, error.status);
  }
  const detail = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
  return new PreinitError('init-trapped', detail, func);
}

interface GuestImports {
  object: WebAssembly.Imports;
  wasi?: WASI;
}

/**
 * Imports for the instance: `wasi_snapshot_preview1` from `node:wasi` with
 * randomness and clocks made deterministic and `proc_exit` unwinding, every
 * other import a function that fails the initialization, as in Wizer.
 */
function guestImports(
  imports: readonly Import[],
  options: PreinitOptions,
  memory: () => WebAssembly.Memory | undefined,
  forbid: (error: PreinitError) => never,
): GuestImports {
  let wasi: WASI | undefined;
  let wasiFunctions: Record<string, unknown> = {};
  if (options.allowWasi) {
    // Sorted: launchers such as bash reorder the environment, and its layout ends up in the snapshot.
    const env = Object.fromEntries(Object.entries(options.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    wasi = new WASI({ version: 'preview1', args: [], env, preopens: Object.fromEntries(options.preopens) });
    const standard = (wasi.getImportObject() as Record<string, Record<string, unknown>>)[WASI_MODULE];
    wasiFunctions = { ...standard, ...deterministicWasi(memory) };
  }
  const object: Record<string, Record<string, unknown>> = Object.create(null);
  for (const { module, name } of imports) {
    const implementation = module === WASI_MODULE ? wasiFunctions[name] : undefined;
    (object[module] ??= Object.create(null) as Record<string, unknown>)[name] =
      implementation ??
      (() =>
        forbid(
          new PreinitError(
            'forbidden-import',
            `attempted to call an unknown imported function: '${module}' '${name}'\n\n` +
              'You cannot call arbitrary imported functions during Wizer initialization: the top-level code runs at build time, ' +
              'so move this call into code that runs when the export is called.',
          ),
        ));
  }
  return { object: object as WebAssembly.Imports, ...(wasi ? { wasi } : {}) };
}

function deterministicWasi(memory: () => WebAssembly.Memory | undefined): Record<string, (...args: never[]) => number> {
  const random = seededBytes(RANDOM_SEED);
  let ticks = 0n;
  /** A view of guest memory, or undefined when [pointer, pointer + length) is out of bounds. */
  const view = (pointer: number, length: number): DataView | undefined => {
    const buffer = memory()?.buffer;
    const start = pointer >>> 0;
    if (!buffer || start + length > buffer.byteLength) return undefined;
    return new DataView(buffer, start, length);
  };
  const writeU64 = (pointer: number, value: bigint): number => {
    const target = view(pointer, 8);
    if (!target) return ERRNO_FAULT;
    target.setBigUint64(0, value, true);
    return ERRNO_SUCCESS;
  };
  const isClock = (id: number) => id >>> 0 <= 3; // realtime, monotonic, process and thread CPU time
  return {
    random_get: (pointer: number, length: number) => {
      const target = view(pointer, length >>> 0);
      if (!target) return ERRNO_FAULT;
      new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(random(target.byteLength));
      return ERRNO_SUCCESS;
    },
    clock_time_get: (id: number, _precision: bigint, pointer: number) => {
      if (!isClock(id)) return ERRNO_INVAL;
      ticks += 1n;
      return writeU64(pointer, (id === 0 ? CLOCK_EPOCH_NS : 0n) + ticks * CLOCK_STEP_NS);
    },
    clock_res_get: (id: number, pointer: number) => (isClock(id) ? writeU64(pointer, CLOCK_STEP_NS) : ERRNO_INVAL),
    proc_exit: (status: number) => {
      throw new GuestExit(status);
    },
  };
}

/** An endless deterministic byte stream: SHA-256 of the seed and a counter. */
function seededBytes(seed: string): (length: number) => Uint8Array {
  let counter = 0;
  let pool: Uint8Array = new Uint8Array(0);
  return (length) => {
    const out = new Uint8Array(length);
    for (let filled = 0; filled < length; ) {
      if (pool.length === 0) pool = createHash('sha256').update(`${seed}:${counter++}`).digest();
      const take = Math.min(pool.length, length - filled);
      out.set(pool.subarray(0, take), filled);
      pool = pool.subarray(take);
      filled += take;
    }
    return out;
  };
}

/**
 * Tables are not snapshotted (like Wizer): the output re-creates them from
 * the element segments. An initialization that changed one would be lost, so
 * it is an error. Exported functions have a stable identity per instance.
 */
function readTables(exports: WebAssembly.Exports, count: number): unknown[][] {
  return Array.from({ length: count }, (_, index) => {
    const table = exports[`${PREFIX}table_${index}`] as WebAssembly.Table;
    return Array.from({ length: table.length }, (_, i) => table.get(i));
  });
}

function assertTablesUnchanged(before: unknown[][], after: unknown[][]): void {
  before.forEach((entries, index) => {
    const now = after[index]!;
    const changed = entries.findIndex((entry, i) => entry !== now[i]);
    if (now.length !== entries.length || changed !== -1) {
      const what = now.length !== entries.length ? `resized from ${entries.length} to ${now.length} entries` : `changed entry ${changed}`;
      throw new PreinitError('unsupported', `the initialization ${what} of table ${index}: tables are not snapshotted, so the change would be lost`);
    }
  });
}

/**
 * The output: the input's sections with globals and memory minimums set
 * from the snapshot, the memory contents as active data segments, and the
 * start section and initialization exports gone. When code refers to data
 * segments by index, every original index keeps its meaning: a live passive
 * segment stays, a dropped one (and every active one, which instantiation
 * drops) becomes an empty passive segment, which behaves the same.
 */
function rewrite(layout: Layout, snapshot: Snapshot, initFunc: string): Uint8Array<ArrayBuffer> {
  let out = layout.sections;
  if (layout.memories.length > 0) {
    const memories = layout.memories.map((limits, index) => ({ ...limits, min: snapshot.memories[index]!.length / PAGE_SIZE }));
    out = setSection(out, SectionId.memory, encodeMemories(memories));
  }
  if (snapshot.globals.size > 0) {
    const globals = layout.globals.map((global, index) => {
      const value = snapshot.globals.get(index);
      return value === undefined ? global : { ...global, init: constExpr(global.type.name as NumericType, value) };
    });
    out = setSection(out, SectionId.global, encodeGlobals(globals));
  }
  const removed = new Set([initFunc, ...(snapshot.calledInitialize ? ['_initialize'] : [])]);
  out = setSection(out, SectionId.export, encodeExports(layout.exports.filter((e) => !removed.has(e.name))));
  out = setSection(out, SectionId.start, null);

  const empty: DataSegment = { mode: 'passive', bytes: new Uint8Array(0) };
  const kept = layout.segmentsReferenced
    ? layout.segments.map((segment, index) => (segment.mode === 'passive' && !snapshot.dropped.has(index) ? segment : empty))
    : [];
  const image = snapshot.memories.flatMap((bytes, memory) =>
    nonZeroRanges(bytes).map(
      ({ start, end }): DataSegment => ({
        mode: 'active',
        memory,
        offset: constExpr(layout.memories[memory]!.index64 ? 'i64' : 'i32', start),
        bytes: bytes.subarray(start, end),
      }),
    ),
  );
  const segments = [...kept, ...image];
  out = setSection(out, SectionId.data, segments.length > 0 ? encodeData(segments) : null);
  out = setSection(out, SectionId.dataCount, layout.dataCount === undefined ? null : encodeDataCount(segments.length));
  return encodeModule(out);
}
