/**
 * The WASI a QuickJS engine instance sees: node:wasi with no preopened
 * directory, an empty environment and no arguments, and the calls the engine
 * makes answered here: stdout/stderr become log lines, the clocks only tell
 * whole milliseconds, and no file descriptor other than stdout/stderr exists.
 */
import { WASI } from 'node:wasi';

const ERRNO = { success: 0, badf: 8, inval: 28, notsup: 58, spipe: 70 } as const;
const CLOCK_REALTIME = 0;
const CLOCK_MONOTONIC = 1;
const NS_PER_MS = 1_000_000n;
const FILETYPE_CHARACTER_DEVICE = 2;
const RIGHT_FD_WRITE = 1n << 6n;
/** A partial line longer than this is logged as it stands. */
const MAX_LINE_CHARS = 64 * 1024;

export type StreamName = 'stdout' | 'stderr';

type WasiFunction = (...args: never[]) => number;

export interface SandboxWasi {
  /** The `wasi_snapshot_preview1` import namespace. */
  readonly imports: Record<string, WasiFunction>;
  /** Binds the imports to the instance's memory and runs its `_initialize`. */
  initialize(instance: WebAssembly.Instance): void;
  /** Logs what is left of unterminated lines. */
  flush(): void;
}

/** Whole milliseconds, in nanoseconds: what any web page can see. */
function coarseClockNs(clockId: number): bigint | undefined {
  if (clockId === CLOCK_REALTIME) return BigInt(Date.now()) * NS_PER_MS;
  if (clockId === CLOCK_MONOTONIC) return BigInt(Math.floor(performance.now())) * NS_PER_MS;
  return undefined;
}

export function sandboxWasi(onLine: (stream: StreamName, line: string) => void): SandboxWasi {
  const wasi = new WASI({ version: 'preview1', args: [], env: {}, preopens: {}, returnOnExit: true });
  let memory: WebAssembly.Memory | undefined;
  const view = () => {
    if (!memory) throw new Error('the sandbox WASI is used before initialize()');
    return new DataView(memory.buffer);
  };
  const pending: Record<StreamName, { decoder: TextDecoder; text: string }> = {
    stdout: { decoder: new TextDecoder(), text: '' },
    stderr: { decoder: new TextDecoder(), text: '' },
  };
  const emit = (stream: StreamName, final: boolean) => {
    const lines = pending[stream].text.split('\n');
    let rest = lines.pop()!;
    if (final || rest.length > MAX_LINE_CHARS) {
      if (rest) lines.push(rest);
      rest = '';
    }
    pending[stream].text = rest;
    for (const line of lines) onLine(stream, line);
  };
  // Pointers arrive as signed i32: `>>> 0` reads them as addresses.
  const streamOf = (fd: number): StreamName | undefined => (fd === 1 ? 'stdout' : fd === 2 ? 'stderr' : undefined);

  const answered: Record<string, WasiFunction> = {
    clock_time_get: (clockId: number, _precision: bigint, out: number) => {
      const ns = coarseClockNs(clockId);
      if (ns === undefined) return ERRNO.inval;
      view().setBigUint64(out >>> 0, ns, true);
      return ERRNO.success;
    },
    clock_res_get: (clockId: number, out: number) => {
      if (coarseClockNs(clockId) === undefined) return ERRNO.inval;
      view().setBigUint64(out >>> 0, NS_PER_MS, true);
      return ERRNO.success;
    },
    fd_write: (fd: number, iovs: number, iovsLen: number, written: number) => {
      const stream = streamOf(fd);
      if (!stream) return ERRNO.badf;
      const data = view();
      let total = 0;
      for (let i = 0; i < iovsLen; i++) {
        const base = data.getUint32((iovs >>> 0) + i * 8, true);
        const len = data.getUint32((iovs >>> 0) + i * 8 + 4, true);
        pending[stream].text += pending[stream].decoder.decode(new Uint8Array(data.buffer, base, len), { stream: true });
        total += len;
      }
      data.setUint32(written >>> 0, total, true);
      emit(stream, false);
      return ERRNO.success;
    },
    fd_fdstat_get: (fd: number, out: number) => {
      if (!streamOf(fd)) return ERRNO.badf;
      const [data, at] = [view(), out >>> 0];
      data.setUint8(at, FILETYPE_CHARACTER_DEVICE);
      data.setUint16(at + 2, 0, true);
      data.setBigUint64(at + 8, RIGHT_FD_WRITE, true);
      data.setBigUint64(at + 16, 0n, true);
      return ERRNO.success;
    },
    fd_seek: (fd: number) => (streamOf(fd) ? ERRNO.spipe : ERRNO.badf),
    // The host's own stdout/stderr are not the guest's to close.
    fd_close: () => ERRNO.badf,
    fd_read: () => ERRNO.badf,
    sock_accept: () => ERRNO.notsup,
    sock_recv: () => ERRNO.notsup,
    sock_send: () => ERRNO.notsup,
    sock_shutdown: () => ERRNO.notsup,
  };

  return {
    // Everything else is node:wasi's, configured with nothing to reach.
    imports: { ...(wasi.wasiImport as Record<string, WasiFunction>), ...answered },
    initialize(instance) {
      memory = instance.exports.memory as WebAssembly.Memory;
      wasi.initialize(instance);
    },
    flush() {
      emit('stdout', true);
      emit('stderr', true);
    },
  };
}
