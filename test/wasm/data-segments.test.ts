import { describe, expect, it } from 'vitest';
import { nonZeroRanges, type MemoryRange } from '../../runner/wasm/index.ts';

/** The obvious byte-by-byte version, to check the word-at-a-time scan against. */
function reference(memory: Uint8Array, maxGap: number): MemoryRange[] {
  const ranges: MemoryRange[] = [];
  for (let i = 0; i < memory.length; i++) {
    if (memory[i] === 0) continue;
    const last = ranges[ranges.length - 1];
    if (last && i - last.end <= maxGap) last.end = i + 1;
    else ranges.push({ start: i, end: i + 1 });
  }
  return ranges;
}

function memoryWith(length: number, ...runs: [number, number][]): Uint8Array {
  const memory = new Uint8Array(length);
  for (const [start, end] of runs) memory.fill(0xab, start, end);
  return memory;
}

describe('nonZeroRanges', () => {
  it('finds nothing in a zeroed memory', () => {
    expect(nonZeroRanges(new Uint8Array(65_536))).toEqual([]);
  });

  it('merges gaps up to maxGap and keeps larger ones', () => {
    const memory = memoryWith(64, [1, 3], [5, 6], [20, 21], [63, 64]);
    expect(nonZeroRanges(memory, { maxGap: 2 })).toEqual([
      { start: 1, end: 6 },
      { start: 20, end: 21 },
      { start: 63, end: 64 },
    ]);
    expect(nonZeroRanges(memory, { maxGap: 0 })).toHaveLength(4);
  });

  it('agrees with a byte-by-byte scan on aligned and unaligned views of random memories', () => {
    let seed = 99;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let round = 0; round < 200; round++) {
      const memory = new Uint8Array(4 * Math.floor(random() * 300));
      const density = (round % 6) / 6;
      for (let i = 0; i < memory.length; i++) if (random() < density) memory[i] = 1 + Math.floor(random() * 255);
      const view = round % 2 ? memory.subarray(round % 4) : memory;
      const maxGap = round % 9;
      expect(nonZeroRanges(view, { maxGap, maxSegments: 1e9 })).toEqual(reference(view, maxGap));
    }
  });

  it('stays under maxSegments by closing the smallest gaps first, lowest offset on ties', () => {
    const memory = memoryWith(100, [0, 1], [11, 12], [14, 15], [30, 31], [33, 34]);
    // Gaps: 10, 2, 15, 2. Two merges close both gaps of 2.
    expect(nonZeroRanges(memory, { maxGap: 0, maxSegments: 3 })).toEqual([
      { start: 0, end: 1 },
      { start: 11, end: 15 },
      { start: 30, end: 34 },
    ]);
    // One merge: the tie between the two gaps of 2 goes to the lower offset.
    expect(nonZeroRanges(memory, { maxGap: 0, maxSegments: 4 })).toEqual([
      { start: 0, end: 1 },
      { start: 11, end: 15 },
      { start: 30, end: 31 },
      { start: 33, end: 34 },
    ]);
    expect(nonZeroRanges(memory, { maxGap: 0, maxSegments: 1 })).toEqual([{ start: 0, end: 34 }]);
  });

  it('rejects a segment limit below one', () => {
    expect(() => nonZeroRanges(new Uint8Array(4), { maxSegments: 0 })).toThrow(RangeError);
  });
});
