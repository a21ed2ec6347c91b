import { ByteReader } from './bytes.ts';
import { encodeModule, findSection, mapCoreModules, readModule, type Section, SectionId, setSection } from './module.ts';
import { readDelta, type UndoDelta } from './snapshot-delta.ts';
import {
  countImports,
  encodeExports,
  encodeGlobals,
  encodeMemories,
  readData,
  readExports,
  readGlobals,
  readImports,
  readMemories,
  readStart,
  type Global,
  type NumericType,
} from './sections.ts';

/**
 * A pre-initialized module is the engine's code plus the konnector's
 * snapshot: the memory image, the globals' values and the memory's size.
 * Every konnector built by one toolchain has the same engine, so a host
 * compiles it once and gives each instance its konnector's snapshot instead
 * of compiling the same 12 MB of code for every konnector.
 */
export interface Snapshot {
  /** The memory's export name, its size in 64 KiB pages, and its image: `data` holds the segments in order, each at segmentPosition. */
  memory: { exportName: string; pages: number };
  /** In a SharedArrayBuffer: posted to a worker, it is shared, not copied, so a host and all its workers hold one copy. */
  data: Uint8Array;
  /** [offset in memory, length] of each segment, in `data`'s order. */
  segments: number[];
  /** Values of the module's globals, set through the exports the engine adds for them. */
  globals: { exportName: string; value: number | bigint }[];
}

export interface SplitModule {
  /** The module without its snapshot: no data, a memory of 0 pages, every global zero and exported. */
  engine: Uint8Array<ArrayBuffer>;
  snapshot: Snapshot;
}

/** Sections pre-initialization fills with a konnector's own state; every other section is the engine's. */
export const SNAPSHOT_SECTIONS: readonly number[] = [SectionId.memory, SectionId.global, SectionId.data, SectionId.dataCount];

/** What splitSnapshot takes from a module or changes in it: the snapshot sections and the exports, which the engine extends. */
const OWN_SECTIONS: readonly number[] = [...SNAPSHOT_SECTIONS, SectionId.export];

/**
 * Segments closer than this are put back as one, the zeros between them
 * written too: a fresh memory is zero there already, and a gap shorter than a
 * 4 KiB page touches no page the segments do not. The pre-initializer stores up
 * to 10,000 segments (most a few dozen bytes); writing them one by one cost
 * 0.7 ms per instance, written as about 60 they cost 0.07 ms.
 */
const MERGE_GAP_BYTES = 1024;

/** Prefix of the exports the engine gets for its globals; a module already using it is not split. */
export const SNAPSHOT_GLOBAL_PREFIX = 'konnector_snapshot_global_';

const ZERO_INIT: Partial<Record<NumericType, Uint8Array>> = {
  i32: Uint8Array.of(0x41, 0x00, 0x0b),
  i64: Uint8Array.of(0x42, 0x00, 0x0b),
  f32: Uint8Array.of(0x43, 0, 0, 0, 0, 0x0b),
  f64: Uint8Array.of(0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b),
};

/**
 * Splits a module into engine and snapshot, or returns null for a module that
 * is not a plain snapshot (it is then compiled whole, as it is): one memory
 * of its own, exported; only active data segments at constant offsets;
 * mutable numeric globals with constant values; no start function (nothing
 * may run before the snapshot is put in).
 */
export function splitSnapshot(module: Uint8Array): SplitModule | null {
  const sections = readModule(module);
  const imports = readImports(findSection(sections, SectionId.import));
  if (readStart(findSection(sections, SectionId.start)) !== undefined) return null;
  const imported = countImports(imports);
  if (imported.memory !== 0) return null;
  const read = readOwnSections(sections, imported.global);
  if (!read) return null;
  const { snapshot, memory, globals, exports } = read;

  let engine = setSection(sections, SectionId.data, null);
  engine = setSection(engine, SectionId.dataCount, null);
  engine = setSection(engine, SectionId.memory, encodeMemories([{ ...memory, min: 0 }]));
  if (globals.length > 0) engine = setSection(engine, SectionId.global, encodeGlobals(globals.map((g) => ({ ...g, init: ZERO_INIT[g.type.name as NumericType]! }))));
  const globalExports = snapshot.globals.map((g, i) => ({ name: g.exportName, kind: 'global' as const, index: imported.global + i }));
  engine = setSection(engine, SectionId.export, encodeExports([...exports, ...globalExports]));
  return { engine: encodeModule(engine), snapshot };
}

/**
 * The snapshot a module's own sections (SNAPSHOT_SECTIONS and its exports)
 * hold, as stored in an artifact: `importedGlobals` is the number of globals
 * its engine imports, which the exports for the others are numbered after.
 * Given `reference`, `own` is a delta against it (./snapshot-delta.ts), undone
 * on the snapshot's image as it is put together: `own` is left as it is.
 * Null if they are not a plain snapshot (see splitSnapshot).
 */
export function snapshotOfOwnSections(own: Uint8Array, importedGlobals: number, reference?: Uint8Array): Snapshot | null {
  if (!reference) return readOwnSections(readModule(own), importedGlobals)?.snapshot ?? null;
  const { sections, undo } = readDelta(own, reference);
  return readOwnSections(sections, importedGlobals, undo)?.snapshot ?? null;
}

function readOwnSections(sections: readonly Section[], importedGlobals: number, undo?: UndoDelta) {
  const memories = readMemories(findSection(sections, SectionId.memory));
  if (memories.length !== 1) return null;
  const exports = readExports(findSection(sections, SectionId.export));
  if (exports.some((e) => e.name.startsWith(SNAPSHOT_GLOBAL_PREFIX))) return null;
  const memoryExport = exports.find((e) => e.kind === 'memory' && e.index === 0);
  if (!memoryExport) return null;

  const placed: { offset: number; bytes: Uint8Array }[] = [];
  for (const segment of readData(findSection(sections, SectionId.data))) {
    if (segment.mode !== 'active' || segment.memory !== 0 || segment.offset[0] !== 0x41) return null;
    const reader = new ByteReader(segment.offset);
    reader.u8();
    const offset = reader.s32() >>> 0;
    if (reader.u8() !== 0x0b) return null;
    placed.push({ offset, bytes: segment.bytes });
  }
  const { segments, data } = mergeSegments(placed, undo);

  const globals = readGlobals(findSection(sections, SectionId.global));
  const values: Snapshot['globals'] = [];
  for (const [i, global] of globals.entries()) {
    const value = constValue(global);
    if (!global.mutable || !ZERO_INIT[global.type.name as NumericType] || value === undefined) return null;
    values.push({ exportName: `${SNAPSHOT_GLOBAL_PREFIX}${importedGlobals + i}`, value });
  }
  const snapshot: Snapshot = { memory: { exportName: memoryExport.name, pages: memories[0]!.min }, data, segments, globals: values };
  return { snapshot, memory: memories[0]!, globals, exports };
}

/**
 * The memory image as [offset, length] pairs and their bytes, segments
 * less than MERGE_GAP_BYTES apart merged with the zeros between them. Segments
 * in the module's order; a later one overlapping an earlier one is written after it, as at instantiation.
 * With `undo`, the segments are a delta, undone run by run.
 */
function mergeSegments(placed: { offset: number; bytes: Uint8Array }[], undo?: UndoDelta): { segments: number[]; data: Uint8Array } {
  const runs: { start: number; end: number; parts: { offset: number; bytes: Uint8Array }[] }[] = [];
  for (const part of placed) {
    const last = runs.at(-1);
    const end = part.offset + part.bytes.length;
    // Only forward: an overlap or a step back starts a run of its own, keeping the module's order of writes.
    if (last && part.offset >= last.end && part.offset - last.end <= MERGE_GAP_BYTES) {
      last.parts.push(part);
      last.end = end;
    } else {
      runs.push({ start: part.offset, end, parts: [part] });
    }
  }
  const data = new Uint8Array(new SharedArrayBuffer(runs.reduce((at, run) => segmentPosition(at, run.start) + run.end - run.start, 0)));
  const segments: number[] = [];
  let at = 0;
  for (const run of runs) {
    at = segmentPosition(at, run.start);
    for (const part of run.parts) data.set(part.bytes, at + part.offset - run.start);
    if (undo) {
      undo(data.subarray(at, at + run.end - run.start), run.start);
      // The zeros between segments are not part of the delta: undoing it changed them.
      let gap = run.start;
      for (const part of run.parts) {
        if (part.offset > gap) data.fill(0, at + gap - run.start, at + part.offset - run.start);
        gap = part.offset + part.bytes.length;
      }
    }
    segments.push(run.start, run.end - run.start);
    at += run.end - run.start;
  }
  return { segments, data };
}

/**
 * Where a segment starts in a snapshot's `data`, the previous one ending at
 * `at`: lined up with its address on 4 bytes, so a delta is undone a word at a time.
 */
export const segmentPosition = (at: number, address: number): number => at + ((address - at) & 3);

/** The value of a global initialized by a single numeric constant, if it is one. */
function constValue(global: Global): number | bigint | undefined {
  const reader = new ByteReader(global.init);
  const opcode = reader.u8();
  let value: number | bigint;
  if (opcode === 0x41) value = reader.s32();
  else if (opcode === 0x42) value = reader.s64();
  else if (opcode === 0x43) value = new DataView(reader.bytesView(4).slice().buffer).getFloat32(0, true);
  else if (opcode === 0x44) value = new DataView(reader.bytesView(8).slice().buffer).getFloat64(0, true);
  else return undefined;
  return reader.u8() === 0x0b && reader.rest().length === 0 ? value : undefined;
}

/**
 * Puts a konnector's snapshot into a fresh instance of its engine, before
 * anything runs in it: the memory grown to its size (within the cap the
 * engine was compiled with), the image written, the globals set.
 */
export function applySnapshot(instance: WebAssembly.Instance, snapshot: Snapshot): void {
  const memory = instance.exports[snapshot.memory.exportName];
  if (!(memory instanceof WebAssembly.Memory)) throw new Error(`the engine does not export its memory as "${snapshot.memory.exportName}"`);
  const pages = memory.buffer.byteLength / 65_536;
  if (snapshot.memory.pages > pages) memory.grow(snapshot.memory.pages - pages);
  const bytes = new Uint8Array(memory.buffer);
  let at = 0;
  for (let i = 0; i < snapshot.segments.length; i += 2) {
    const [address, length] = [snapshot.segments[i]!, snapshot.segments[i + 1]!];
    at = segmentPosition(at, address);
    bytes.set(snapshot.data.subarray(at, at + length), address);
    at += length;
  }
  for (const { exportName, value } of snapshot.globals) {
    const global = instance.exports[exportName];
    if (!(global instanceof WebAssembly.Global)) throw new Error(`the engine does not export the global "${exportName}"`);
    global.value = value;
  }
}

/**
 * A component as stored: its engine (each module splitSnapshot can split,
 * replaced by its engine) and, by module index, each such module's own
 * sections as they were, framed as a module of those sections alone.
 */
export function separateComponent(component: Uint8Array): { engine: Uint8Array; own: Map<number, Uint8Array> } {
  const own = new Map<number, Uint8Array>();
  const engine = mapCoreModules(component, (module, index) => {
    const split = splitSnapshot(module);
    if (!split) return module;
    own.set(index, encodeModule(readModule(module).filter((section) => OWN_SECTIONS.includes(section.id))));
    return split.engine;
  });
  return { engine, own };
}

/** separateComponent's inverse: each module's own sections put back, byte for byte, into its engine. */
export function joinComponent(engine: Uint8Array, own: ReadonlyMap<number, Uint8Array>): Uint8Array {
  return mapCoreModules(engine, (module, index) => {
    const part = own.get(index);
    if (!part) return module;
    const sections = readModule(part);
    return encodeModule(OWN_SECTIONS.reduce((out, id) => setSection(out, id, findSection(sections, id) ?? null), readModule(module)));
  });
}
