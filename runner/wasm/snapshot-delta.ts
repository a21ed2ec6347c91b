import { ByteReader, ByteWriter } from './bytes.ts';
import { malformed } from './errors.ts';
import { encodeModule, findSection, readModule, SectionId, type Section } from './module.ts';
import { readData } from './sections.ts';

/**
 * A konnector's snapshot stored as its difference from a reference snapshot
 * of the same engine (a konnector holding only the SDK, runner/compile/reference.ts).
 * Konnectors written against one SDK share most of their memory image at the
 * same addresses: the engine's runtime and the SDK's loaded code. Each 4 KiB
 * page of the image that mostly matches the reference has its bytes XORed
 * with the reference's there, leaving zeros brotli stores in a few bytes;
 * other pages are kept as they are, so a konnector unlike the reference never
 * grows. The data section keeps its segments and lengths: only bytes change,
 * and the pages chosen are listed in a custom section, so the delta is undone
 * byte for byte.
 */
const DELTA_SECTION_NAME = 'konnector-snapshot-delta';

/** The unit the delta decides on: the host's page, what a write touches. */
const DELTA_PAGE_BYTES = 4096;

/** `own` (a module of a pre-initialized module's own sections) with its memory image XORed against `reference`'s where they mostly match. */
export function deltaOwnSections(own: Uint8Array, reference: Uint8Array): Uint8Array {
  const copy = new Uint8Array(own);
  const sections = readModule(copy);
  if (sections.some(isDeltaSection)) throw malformed(`the module already has a ${DELTA_SECTION_NAME} section`, 0);
  const image = memoryImage(sections);
  const referenceImage = referenceImageOf(reference);
  const { bytes: referenceBytes } = referenceImage;
  const pages = new Uint8Array(Math.ceil(Math.min(image.length, referenceBytes.length) / DELTA_PAGE_BYTES));
  for (let page = 0; page < pages.length; page++) {
    const start = page * DELTA_PAGE_BYTES;
    const end = Math.min(start + DELTA_PAGE_BYTES, image.length, referenceBytes.length);
    if (Buffer.compare(image.subarray(start, end), referenceBytes.subarray(start, end)) === 0) {
      pages[page] = 1;
      continue;
    }
    let equal = 0;
    for (let at = start; at < end; at++) if (image[at] === referenceBytes[at]) equal++;
    // Zeros are cheap either way: a page is XORed when the reference predicts most of its bytes.
    if (equal * 2 > end - start) pages[page] = 1;
  }
  for (const { offset, bytes } of activeSegments(sections)) xorPages(bytes, offset, referenceImage, pages);
  const name = new TextEncoder().encode(DELTA_SECTION_NAME);
  const payload = new ByteWriter().u32(name.length).bytes(name).bytes(pages).finish();
  return encodeModule([...sections, { id: SectionId.custom, payload, offset: 0 }]);
}

/**
 * deltaOwnSections' inverse, given the same reference: the own sections as
 * the build made them. Works in place: `delta`'s bytes are changed and the
 * result is a view of them (the marker section is last, so the rest is a prefix).
 */
export function undoDeltaOwnSections(delta: Uint8Array, reference: Uint8Array): Uint8Array {
  const { sections, undo, markerBytes } = readDelta(delta, reference);
  for (const { offset, bytes } of activeSegments(sections)) undo(bytes, offset);
  return delta.subarray(0, delta.length - markerBytes);
}

export type UndoDelta = (bytes: Uint8Array, address: number) => void;

/**
 * A delta's sections without its marker (`markerBytes` long, at the end),
 * and `undo`, which XORs back in place bytes of memory starting at `address`:
 * a segment's, or several segments' put end to end with the zeros between
 * them, which come out changed and are to be zeroed again.
 */
export function readDelta(delta: Uint8Array, reference: Uint8Array): { sections: Section[]; markerBytes: number; undo: UndoDelta } {
  const sections = readModule(delta);
  const marker = sections.at(-1);
  if (!marker?.raw || !isDeltaSection(marker) || sections.slice(0, -1).some(isDeltaSection)) {
    throw malformed(`a delta ends with its one ${DELTA_SECTION_NAME} section`, 0);
  }
  const image = referenceImageOf(reference);
  const pages = namedPayload(marker).rest();
  return { sections: sections.slice(0, -1), markerBytes: marker.raw.length, undo: (bytes, address) => xorPages(bytes, address, image, pages) };
}

function namedPayload(section: Section): ByteReader {
  const reader = new ByteReader(section.payload);
  reader.bytesView(reader.u32());
  return reader;
}

function isDeltaSection(section: Section): boolean {
  if (section.id !== SectionId.custom) return false;
  const reader = new ByteReader(section.payload);
  return new TextDecoder().decode(reader.bytesView(reader.u32())) === DELTA_SECTION_NAME;
}

/** The memory image the module's active data segments write, up to their last byte. */
function memoryImage(sections: readonly Section[]): Uint8Array {
  const placed = activeSegments(sections);
  const image = new Uint8Array(placed.reduce((end, { offset, bytes }) => Math.max(end, offset + bytes.length), 0));
  for (const { offset, bytes } of placed) image.set(bytes, offset);
  return image;
}

/** A reference's memory image, and the same as 32-bit words to XOR 4 bytes at a time. */
interface ReferenceImage {
  bytes: Uint8Array;
  words: Uint32Array;
}

/** Reference images by their module: a host undoes many konnectors' deltas against one reference. */
const referenceImages = new WeakMap<Uint8Array, ReferenceImage>();

function referenceImageOf(reference: Uint8Array): ReferenceImage {
  let image = referenceImages.get(reference);
  if (!image) {
    const bytes = memoryImage(readModule(reference));
    referenceImages.set(reference, (image = { bytes, words: new Uint32Array(bytes.buffer, 0, bytes.length >>> 2) }));
  }
  return image;
}

/**
 * XORs, in place, `bytes` (memory from `address` on) with the reference's
 * bytes at the same addresses, on the chosen pages only and none past the
 * reference's image. A word at a time where `bytes` lines up with the reference on 4 bytes.
 */
function xorPages(bytes: Uint8Array, address: number, reference: ReferenceImage, pages: Uint8Array): void {
  const end = Math.min(address + bytes.length, reference.bytes.length);
  const words = (bytes.byteOffset & 3) === (address & 3) ? new Uint32Array(bytes.buffer, 0, bytes.buffer.byteLength >>> 2) : null;
  // The word of `words` that holds address `at` is (at >> 2) + wordShift.
  const wordShift = (bytes.byteOffset - address) >> 2;
  for (let at = address; at < end; ) {
    const page = (at / DELTA_PAGE_BYTES) | 0;
    const pageEnd = Math.min((page + 1) * DELTA_PAGE_BYTES, end);
    if (pages[page] === 1) {
      if (words) {
        for (; at < pageEnd && (at & 3) !== 0; at++) bytes[at - address] ^= reference.bytes[at]!;
        for (; at + 4 <= pageEnd; at += 4) words[(at >> 2) + wordShift] ^= reference.words[at >> 2]!;
      }
      for (; at < pageEnd; at++) bytes[at - address] ^= reference.bytes[at]!;
    }
    at = pageEnd;
  }
}

function activeSegments(sections: readonly Section[]): { offset: number; bytes: Uint8Array }[] {
  return readData(findSection(sections, SectionId.data)).map((segment) => {
    if (segment.mode !== 'active' || segment.offset[0] !== 0x41) throw malformed('a snapshot holds only active data segments at constant offsets', 0);
    const reader = new ByteReader(segment.offset);
    reader.u8();
    return { offset: reader.s32() >>> 0, bytes: segment.bytes };
  });
}
