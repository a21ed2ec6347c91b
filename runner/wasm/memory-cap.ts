import { WasmError } from './errors.ts';
import { encodeModule, findSection, readModule, SectionId, setSection } from './module.ts';
import { countImports, encodeMemories, readImports, readMemories } from './sections.ts';

/** The largest number of 64 KiB pages a 32-bit memory can have (4 GiB). */
export const MAX_PAGES_32 = 65_536;

/**
 * Rewrites the maximum of every memory the module defines (imported ones are
 * the importer's business) to `maxPages`, so `memory.grow` past the cap
 * returns -1 inside the guest instead of the engine reserving gigabytes.
 * A memory whose current maximum is already lower keeps it.
 *
 * Throws a `memory-cap` WasmError when a memory's minimum is above the cap:
 * such a module could not even be instantiated within it.
 */
export function capMemory<T extends Uint8Array>(module: T, maxPages: number): T | Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(maxPages) || maxPages < 0 || maxPages > MAX_PAGES_32) {
    throw new RangeError(`maxPages must be an integer from 0 to ${MAX_PAGES_32}, got ${maxPages}`);
  }
  const sections = readModule(module);
  const memories = readMemories(findSection(sections, SectionId.memory));
  if (memories.length === 0) return module;
  const imported = countImports(readImports(findSection(sections, SectionId.import))).memory;
  const capped = memories.map((memory, index) => {
    if (memory.min > maxPages) {
      throw new WasmError(
        'memory-cap',
        `memory ${imported + index} starts at ${memory.min} pages (${memory.min * 64} KiB), above the cap of ${maxPages} pages: raise the memory limit`,
      );
    }
    return { ...memory, max: Math.min(memory.max ?? maxPages, maxPages) };
  });
  return encodeModule(setSection(sections, SectionId.memory, encodeMemories(capped)));
}
