/**
 * The input module as read (its layout) and as it runs: instrumented so that the state the initialization leaves
 * can be read afterwards.
 */
import {
  appendToVector,
  countImports,
  encodeExports,
  encodeModule,
  encodeU32,
  ByteWriter,
  findSection,
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
  type DataSegment,
  type Export,
  type Global,
  type Import,
  type Limits,
  type NumericType,
  type Section,
} from '../../wasm/index.ts';
import { PreinitError } from './contract.ts';

/** Names of the exports added to read the guest's state; the input may not use the prefix. */
export const PREFIX = '__preinit_';

/** What the module declares, read once from its sections. */
export interface Layout {
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

export function readLayout(input: Uint8Array, initFunc: string): Layout {
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
export function probedSegments(layout: Layout): number[] {
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
export function instrument(layout: Layout, probes: readonly number[]): Uint8Array<ArrayBuffer> {
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
