/** The initialization itself: instantiate the instrumented module, run its init function, read the state it left. */
import { PreinitError, type PreinitOptions } from './contract.ts';
import { PREFIX, type Layout } from './layout.ts';
import { GuestExit, guestImports } from './wasi.ts';

/** State of the instance after initialization. */
export interface Snapshot {
  globals: Map<number, number | bigint>;
  memories: Uint8Array[];
  /** Passive segments the initialization dropped (`data.drop`). */
  dropped: Set<number>;
  calledInitialize: boolean;
}

export function run(compiled: WebAssembly.Module, layout: Layout, probes: readonly number[], options: PreinitOptions): Snapshot {
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
