import { describe, expect, it } from 'vitest';
import { capMemory, findSection, readMemories, readModule, SectionId, WasmError } from '../../runner/wasm/index.ts';
import { call, instantiate, wat } from './wat.ts';

/** A guest that grows its memory on request, as an allocator would. */
const grower = (memory: string) => `(module
  ${memory}
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) memory.size))`;

const memories = (bytes: Uint8Array) => readMemories(findSection(readModule(bytes), SectionId.memory));

describe('capMemory', () => {
  it('makes growth past the cap fail inside the guest (memory.grow returns -1)', async () => {
    const capped = capMemory(await wat(grower('(memory 1)')), 4);
    expect(memories(capped)).toEqual([{ min: 1, max: 4, shared: false, index64: false }]);
    const guest = instantiate(capped);
    expect(call(guest, 'grow', 10)).toBe(-1);
    expect(call(guest, 'size')).toBe(1);
    // The guest can still use all the memory it is allowed.
    expect(call(guest, 'grow', 3)).toBe(1);
    expect(call(guest, 'size')).toBe(4);
    expect(call(guest, 'grow', 1)).toBe(-1);
  });

  it('leaves a benign guest under the cap free to grow', async () => {
    const guest = instantiate(capMemory(await wat(grower('(memory 2)')), 64));
    expect(call(guest, 'grow', 30)).toBe(2);
    expect(call(guest, 'size')).toBe(32);
  });

  it('keeps a maximum that is already below the cap', async () => {
    expect(memories(capMemory(await wat(grower('(memory 1 3)')), 10))[0]!.max).toBe(3);
    expect(memories(capMemory(await wat(grower('(memory 1 30)')), 10))[0]!.max).toBe(10);
  });

  it('refuses a module whose memory starts above the cap', async () => {
    const bytes = await wat(grower('(memory 5)'));
    let caught: unknown;
    try {
      capMemory(bytes, 4);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(WasmError);
    expect((caught as WasmError).kind).toBe('memory-cap');
    expect((caught as WasmError).message).toMatch(/memory 0 starts at 5 pages \(320 KiB\), above the cap of 4 pages/);
  });

  it('leaves imported memories to the importer, and modules without memory alone', async () => {
    const bytes = await wat(`(module (import "env" "mem" (memory 1)) (func (export "f")))`);
    expect(capMemory(bytes, 1)).toBe(bytes);
    const noMemory = await wat('(module (func (export "f")))');
    expect(capMemory(noMemory, 1)).toBe(noMemory);
  });

  it('rejects a cap that is not a page count', async () => {
    const bytes = await wat(grower('(memory 1)'));
    expect(() => capMemory(bytes, 1.5)).toThrow(RangeError);
    expect(() => capMemory(bytes, 65_537)).toThrow(RangeError);
  });
});
