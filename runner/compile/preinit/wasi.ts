/**
 * What the guest may call during initialization: `wasi_snapshot_preview1` from `node:wasi`, made deterministic
 * (seeded randomness, a scripted clock) with `proc_exit` unwinding; every other import fails, as in Wizer.
 */
import { createHash } from 'node:crypto';
import { WASI } from 'node:wasi';
import type { Import } from '../../wasm/index.ts';
import { PreinitError, type PreinitOptions } from './contract.ts';

const RANDOM_SEED = 'cozy-konnector-preinit/1';
/** The clock starts at 2024-01-01T00:00:00Z and advances 1 us per reading: deterministic, never frozen. */
const CLOCK_EPOCH_NS = 1_704_067_200_000_000_000n;
const CLOCK_STEP_NS = 1_000n;

const WASI_MODULE = 'wasi_snapshot_preview1';
const ERRNO_SUCCESS = 0;
const ERRNO_FAULT = 21;
const ERRNO_INVAL = 28;

/** Thrown by our `proc_exit` to unwind the guest. */
export class GuestExit {
  constructor(readonly status: number) {}
}

export interface GuestImports {
  object: WebAssembly.Imports;
  wasi?: WASI;
}

/**
 * Imports for the instance: `wasi_snapshot_preview1` from `node:wasi` with
 * randomness and clocks made deterministic and `proc_exit` unwinding, every
 * other import a function that fails the initialization, as in Wizer.
 */
export function guestImports(
  imports: readonly Import[],
  options: PreinitOptions,
  memory: () => WebAssembly.Memory | undefined,
  forbid: (error: PreinitError) => never,
): GuestImports {
  let wasi: WASI | undefined;
  let wasiFunctions: Record<string, unknown> = {};
  if (options.allowWasi) {
    // Sorted: launchers such as bash reorder the environment, and its layout ends up in the snapshot.
    const env = Object.fromEntries(Object.entries(options.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    wasi = new WASI({ version: 'preview1', args: [], env, preopens: Object.fromEntries(options.preopens) });
    const standard = (wasi.getImportObject() as Record<string, Record<string, unknown>>)[WASI_MODULE];
    wasiFunctions = { ...standard, ...deterministicWasi(memory), ...(options.stdin ? stdinFrom(options.stdin, memory, standard.fd_read as FdRead) : {}) };
  }
  const object: Record<string, Record<string, unknown>> = Object.create(null);
  for (const { module, name } of imports) {
    const implementation = module === WASI_MODULE ? wasiFunctions[name] : undefined;
    (object[module] ??= Object.create(null) as Record<string, unknown>)[name] =
      implementation ??
      (() =>
        forbid(
          new PreinitError(
            'forbidden-import',
            `attempted to call an unknown imported function: '${module}' '${name}'\n\n` +
              'You cannot call arbitrary imported functions during Wizer initialization: the top-level code runs at build time, ' +
              'so move this call into code that runs when the export is called.',
          ),
        ));
  }
  return { object: object as WebAssembly.Imports, ...(wasi ? { wasi } : {}) };
}

function deterministicWasi(memory: () => WebAssembly.Memory | undefined): Record<string, (...args: never[]) => number> {
  const random = seededBytes(RANDOM_SEED);
  let ticks = 0n;
  /** A view of guest memory, or undefined when [pointer, pointer + length) is out of bounds. */
  const view = (pointer: number, length: number): DataView | undefined => {
    const buffer = memory()?.buffer;
    const start = pointer >>> 0;
    if (!buffer || start + length > buffer.byteLength) return undefined;
    return new DataView(buffer, start, length);
  };
  const writeU64 = (pointer: number, value: bigint): number => {
    const target = view(pointer, 8);
    if (!target) return ERRNO_FAULT;
    target.setBigUint64(0, value, true);
    return ERRNO_SUCCESS;
  };
  const isClock = (id: number) => id >>> 0 <= 3; // realtime, monotonic, process and thread CPU time
  return {
    random_get: (pointer: number, length: number) => {
      const target = view(pointer, length >>> 0);
      if (!target) return ERRNO_FAULT;
      new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(random(target.byteLength));
      return ERRNO_SUCCESS;
    },
    clock_time_get: (id: number, _precision: bigint, pointer: number) => {
      if (!isClock(id)) return ERRNO_INVAL;
      ticks += 1n;
      return writeU64(pointer, (id === 0 ? CLOCK_EPOCH_NS : 0n) + ticks * CLOCK_STEP_NS);
    },
    clock_res_get: (id: number, pointer: number) => (isClock(id) ? writeU64(pointer, CLOCK_STEP_NS) : ERRNO_INVAL),
    proc_exit: (status: number) => {
      throw new GuestExit(status);
    },
  };
}

type FdRead = (fd: number, iovs: number, iovsLen: number, nread: number) => number;

/** `fd_read` answering fd 0 from `input`, to its end; other descriptors go to `fallback`. */
function stdinFrom(input: Uint8Array, memory: () => WebAssembly.Memory | undefined, fallback: FdRead): { fd_read: FdRead } {
  let at = 0;
  return {
    fd_read(fd, iovs, iovsLen, nread) {
      if (fd !== 0) return fallback(fd, iovs, iovsLen, nread);
      const buffer = memory()?.buffer;
      if (!buffer) return ERRNO_FAULT;
      const bytes = new Uint8Array(buffer);
      const data = new DataView(buffer);
      const [list, count, out] = [iovs >>> 0, iovsLen >>> 0, nread >>> 0];
      if (list + count * 8 > bytes.length || out + 4 > bytes.length) return ERRNO_FAULT;
      let total = 0;
      for (let i = 0; i < count && at < input.length; i++) {
        const base = data.getUint32(list + i * 8, true);
        const length = data.getUint32(list + i * 8 + 4, true);
        if (base + length > bytes.length) return ERRNO_FAULT;
        const chunk = input.subarray(at, at + length);
        bytes.set(chunk, base);
        at += chunk.length;
        total += chunk.length;
      }
      data.setUint32(out, total, true);
      return ERRNO_SUCCESS;
    },
  };
}

/** An endless deterministic byte stream: SHA-256 of the seed and a counter. */
function seededBytes(seed: string): (length: number) => Uint8Array {
  let counter = 0;
  let pool: Uint8Array = new Uint8Array(0);
  return (length) => {
    const out = new Uint8Array(length);
    for (let filled = 0; filled < length; ) {
      if (pool.length === 0) pool = createHash('sha256').update(`${seed}:${counter++}`).digest();
      const take = Math.min(pool.length, length - filled);
      out.set(pool.subarray(0, take), filled);
      pool = pool.subarray(take);
      filled += take;
    }
    return out;
  };
}
