/**
 * Turning a memory image into data segments: the non-zero ranges of the
 * memory, with small gaps merged (a new segment costs more bytes than a few
 * zeros) and, past `maxSegments`, the smallest remaining gaps merged too,
 * because engines limit how many segments a module may have.
 */

export interface MemoryRange {
  /** Byte offset in the memory. */
  start: number;
  /** Exclusive end. */
  end: number;
}

/**
 * Overhead of one more active segment on memory 0: flags (1), `i32.const`
 * (1) + offset (up to 5) + `end` (1), length (1-3). A gap of at most this many
 * zeros is cheaper to store than to split on.
 */
export const DEFAULT_MAX_GAP = 8;

/** Wizer's limit; V8 accepts up to 100,000 segments but each one costs at instantiation. */
export const DEFAULT_MAX_SEGMENTS = 10_000;

export interface RangeOptions {
  maxGap?: number;
  maxSegments?: number;
}

/** The ranges of `memory` to store so that everything outside them is zero. Deterministic. */
export function nonZeroRanges(memory: Uint8Array, options: RangeOptions = {}): MemoryRange[] {
  const maxGap = options.maxGap ?? DEFAULT_MAX_GAP;
  const maxSegments = options.maxSegments ?? DEFAULT_MAX_SEGMENTS;
  if (!Number.isInteger(maxSegments) || maxSegments < 1) throw new RangeError(`maxSegments must be a positive integer, got ${maxSegments}`);

  const ranges: MemoryRange[] = [];
  const length = memory.length;
  // Whole 32-bit words are tested at once where the view is aligned (a memory's always is).
  const words = memory.byteOffset % 4 === 0 ? new Uint32Array(memory.buffer, memory.byteOffset, length >>> 2) : undefined;
  const wordEnd = words ? words.length * 4 : 0;
  let i = 0;
  while (i < length) {
    if (words) while ((i & 3) === 0 && i < wordEnd && words[i >>> 2] === 0) i += 4;
    while (i < length && memory[i] === 0) {
      i++;
      if (words) while ((i & 3) === 0 && i < wordEnd && words[i >>> 2] === 0) i += 4;
    }
    if (i === length) break;
    const start = i;
    while (i < length && memory[i] !== 0) {
      i++;
      if (words) while ((i & 3) === 0 && i < wordEnd && !hasZeroByte(words[i >>> 2]!)) i += 4;
    }
    const last = ranges[ranges.length - 1];
    if (last && start - last.end <= maxGap) last.end = i;
    else ranges.push({ start, end: i });
  }
  return ranges.length > maxSegments ? mergeSmallestGaps(ranges, ranges.length - maxSegments) : ranges;
}

/** Whether one of the four bytes of `word` is zero (the classic SWAR test). */
function hasZeroByte(word: number): boolean {
  return ((word - 0x01010101) & ~word & 0x80808080) !== 0;
}

/** Removes `excess` ranges by closing the smallest gaps (ties: lowest offset first). */
function mergeSmallestGaps(ranges: MemoryRange[], excess: number): MemoryRange[] {
  const gaps = ranges.slice(1).map((range, i) => ({ gap: range.start - ranges[i]!.end, index: i }));
  gaps.sort((a, b) => a.gap - b.gap || a.index - b.index);
  const joinWithNext = new Uint8Array(ranges.length);
  for (const { index } of gaps.slice(0, excess)) joinWithNext[index] = 1;
  const merged: MemoryRange[] = [];
  let current = { ...ranges[0]! };
  for (let i = 1; i < ranges.length; i++) {
    if (joinWithNext[i - 1]) current.end = ranges[i]!.end;
    else {
      merged.push(current);
      current = { ...ranges[i]! };
    }
  }
  merged.push(current);
  return merged;
}
