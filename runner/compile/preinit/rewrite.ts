/** The snapshot written back as a module: what the initialization left becomes the module's initial state. */
import {
  constExpr,
  encodeData,
  encodeDataCount,
  encodeExports,
  encodeGlobals,
  encodeMemories,
  encodeModule,
  nonZeroRanges,
  SectionId,
  setSection,
  type DataSegment,
  type NumericType,
} from '../../wasm/index.ts';
import type { Layout } from './layout.ts';
import type { Snapshot } from './run.ts';

const PAGE_SIZE = 65_536;

/**
 * The output: the input's sections with globals and memory minimums set
 * from the snapshot, the memory contents as active data segments, and the
 * start section and initialization exports gone. When code refers to data
 * segments by index, every original index keeps its meaning: a live passive
 * segment stays, a dropped one (and every active one, which instantiation
 * drops) becomes an empty passive segment, which behaves the same.
 */
export function rewrite(layout: Layout, snapshot: Snapshot, initFunc: string): Uint8Array<ArrayBuffer> {
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
