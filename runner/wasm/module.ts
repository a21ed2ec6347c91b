import { ByteReader, ByteWriter, concatBytes } from './bytes.ts';
import { malformed } from './errors.ts';

/**
 * Framing of WebAssembly binaries: the preamble and the sequence of
 * `id, size, payload` sections, for core modules (version 1) and components
 * (version 0x0d, layer 1). Section contents are decoded by `sections.ts`.
 */

export const SectionId = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13,
} as const;

export interface Section {
  id: number;
  payload: Uint8Array;
  /**
   * The section exactly as it was in the input (id, size, payload). Encoding
   * writes it verbatim, so untouched sections keep their bytes even when the
   * producer padded the size LEB. New or replaced sections leave it unset.
   */
  raw?: Uint8Array;
  /** Offset of the payload in the input, for error messages. */
  offset?: number;
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
export const MODULE_PREAMBLE = Uint8Array.of(...MAGIC, 0x01, 0x00, 0x00, 0x00);
export const COMPONENT_PREAMBLE = Uint8Array.of(...MAGIC, 0x0d, 0x00, 0x01, 0x00);

export type BinaryKind = 'module' | 'component';

/** Tells a core module from a component by its preamble. */
export function binaryKind(bytes: Uint8Array): BinaryKind {
  if (bytes.length < 8 || MAGIC.some((byte, i) => bytes[i] !== byte)) {
    throw malformed('not a WebAssembly binary: missing the "\\0asm" magic number', 0);
  }
  if (samePrefix(bytes, MODULE_PREAMBLE)) return 'module';
  if (samePrefix(bytes, COMPONENT_PREAMBLE)) return 'component';
  const version = bytes[4]! | (bytes[5]! << 8);
  const layer = bytes[6]! | (bytes[7]! << 8);
  throw malformed(`unknown WebAssembly binary version ${version} (layer ${layer}): expected a core module (1, 0) or a component (0x0d, 1)`, 4);
}

function samePrefix(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return prefix.every((byte, i) => bytes[i] === byte);
}

function readSections(bytes: Uint8Array): Section[] {
  const reader = new ByteReader(bytes);
  reader.bytesView(8);
  const sections: Section[] = [];
  while (!reader.eof) {
    const start = reader.pos;
    const id = reader.u8();
    const size = reader.u32();
    const offset = reader.pos;
    const payload = reader.bytesView(size);
    sections.push({ id, payload, raw: bytes.subarray(start, reader.pos), offset });
  }
  return sections;
}

function encodeSections(preamble: Uint8Array, sections: readonly Section[]): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [preamble];
  for (const section of sections) {
    if (section.raw) {
      parts.push(section.raw);
    } else {
      parts.push(new ByteWriter(6).u8(section.id).u32(section.payload.length).finish(), section.payload);
    }
  }
  return concatBytes(parts);
}

/** Canonical position of each known section in a core module (tags sit between memories and globals). */
const ORDER: Record<number, number> = {
  [SectionId.type]: 1,
  [SectionId.import]: 2,
  [SectionId.function]: 3,
  [SectionId.table]: 4,
  [SectionId.memory]: 5,
  [SectionId.tag]: 6,
  [SectionId.global]: 7,
  [SectionId.export]: 8,
  [SectionId.start]: 9,
  [SectionId.element]: 10,
  [SectionId.dataCount]: 11,
  [SectionId.code]: 12,
  [SectionId.data]: 13,
};

/**
 * Splits a core module into its sections, checking the preamble, the framing,
 * and that each known section appears at most once and in the order the
 * specification requires. Payloads are views into `bytes`.
 */
export function readModule(bytes: Uint8Array): Section[] {
  if (binaryKind(bytes) !== 'module') throw malformed('expected a core WebAssembly module but got a component', 0);
  const sections = readSections(bytes);
  let lastRank = 0;
  for (const section of sections) {
    if (section.id === SectionId.custom) continue;
    const rank = ORDER[section.id];
    if (rank === undefined) throw malformed(`unknown section id ${section.id}`, section.offset);
    if (rank <= lastRank) throw malformed(`section id ${section.id} is duplicated or out of order`, section.offset);
    lastRank = rank;
  }
  return sections;
}

export function encodeModule(sections: readonly Section[]): Uint8Array<ArrayBuffer> {
  return encodeSections(MODULE_PREAMBLE, sections);
}

/** The (single) section with this id, if the module has one. Not for custom sections. */
export function findSection(sections: readonly Section[], id: number): Section | undefined {
  return sections.find((section) => section.id === id);
}

/**
 * A copy of `sections` with the section of `section.id` replaced by `section`,
 * or inserted at its canonical place when absent (before any custom section
 * that follows it, such as the trailing `name` section). `null` removes it.
 */
export function setSection(sections: readonly Section[], id: number, section: Section | null): Section[] {
  if (id === SectionId.custom) throw new TypeError('setSection does not handle custom sections: there may be many of them');
  const index = sections.findIndex((s) => s.id === id);
  if (index >= 0) {
    return section ? sections.map((s, i) => (i === index ? section : s)) : sections.filter((_, i) => i !== index);
  }
  if (!section) return [...sections];
  const rank = ORDER[id];
  if (rank === undefined) throw new TypeError(`unknown section id ${id}`);
  let insertAt = 0;
  sections.forEach((s, i) => {
    if (s.id !== SectionId.custom && ORDER[s.id]! < rank) insertAt = i + 1;
  });
  return [...sections.slice(0, insertAt), section, ...sections.slice(insertAt)];
}

/** Component section ids (component model binary format). */
export const ComponentSectionId = {
  custom: 0,
  coreModule: 1,
  coreInstance: 2,
  coreType: 3,
  component: 4,
  instance: 5,
  alias: 6,
  type: 7,
  canon: 8,
  start: 9,
  import: 10,
  export: 11,
  value: 12,
} as const;

/** Splits a component into its sections (which may repeat and come in any order). */
export function readComponent(bytes: Uint8Array): Section[] {
  if (binaryKind(bytes) !== 'component') throw malformed('expected a WebAssembly component but got a core module', 0);
  const sections = readSections(bytes);
  for (const section of sections) {
    if (section.id > ComponentSectionId.value) throw malformed(`unknown component section id ${section.id}`, section.offset);
  }
  return sections;
}

export function encodeComponent(sections: readonly Section[]): Uint8Array<ArrayBuffer> {
  return encodeSections(COMPONENT_PREAMBLE, sections);
}

/**
 * Rewrites every core module embedded in a component, including those of
 * nested components. `transform` gets each module's bytes and its index in
 * depth-first order of appearance; returning the same array keeps the module
 * byte for byte.
 */
export function mapCoreModules(
  component: Uint8Array,
  transform: (module: Uint8Array, index: number) => Uint8Array,
): Uint8Array {
  let next = 0;
  const visit = (bytes: Uint8Array): Uint8Array => {
    let changed = false;
    const sections = readComponent(bytes).map((section): Section => {
      let payload: Uint8Array;
      if (section.id === ComponentSectionId.coreModule) payload = transform(section.payload, next++);
      else if (section.id === ComponentSectionId.component) payload = visit(section.payload);
      else return section;
      if (payload === section.payload) return section;
      changed = true;
      return { id: section.id, payload };
    });
    return changed ? encodeComponent(sections) : bytes;
  };
  return visit(component);
}
