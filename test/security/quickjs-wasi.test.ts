/**
 * The WASI the QuickJS engine gets (issue 16 item 3): reading a file, the
 * environment, sockets and a clock finer than a millisecond are refused. Each
 * attack through the sandbox's imports fails, and its benign twin (the same
 * call on a node:wasi given a directory and an environment, or a permitted
 * call) succeeds, so the refusal comes from the sandbox's configuration and
 * not from a malformed call.
 *
 * Single-engine: a component imports no WASI but wasi:random (`konnector inspect`, hostile-konnectors.test.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WASI } from 'node:wasi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileEngine } from '../../runner/quickjs/engine.ts';
import { runInEngine } from '../../runner/quickjs/instance.ts';
import { sandboxWasi } from '../../runner/quickjs/sandbox-wasi.ts';

type WasiCall = (...args: (number | bigint)[]) => number;

const ERRNO_SUCCESS = 0;
const ERRNO_BADF = 8;
const ERRNO_INVAL = 28;
const ERRNO_NOTSUP = 58;
const RIGHT_FD_READ = 1n << 1n;
const NS_PER_MS = 1_000_000n;

let engine: WebAssembly.Module;
let dir: string;

beforeAll(async () => {
  engine = await compileEngine();
  dir = await mkdtemp(path.join(os.tmpdir(), 'quickjs-wasi-'));
  await writeFile(path.join(dir, 'secret.txt'), 'twin secret');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** An engine instance whose WASI is `imports`, with helpers to call it directly. */
function bind(imports: Record<string, unknown>, initialize: (instance: WebAssembly.Instance) => void) {
  const konnector = { log() {}, clock_now: () => 0, random_fill() {}, call: () => 0 };
  const instance = new WebAssembly.Instance(engine, { konnector, wasi_snapshot_preview1: imports as WebAssembly.ModuleImports });
  initialize(instance);
  const exports = instance.exports as { memory: WebAssembly.Memory; engine_alloc(len: number): number };
  const view = () => new DataView(exports.memory.buffer);
  const scratch = exports.engine_alloc(256);
  return {
    call: (name: string, ...args: (number | bigint)[]) => (imports[name] as WasiCall)(...args),
    scratch,
    u32: (at: number) => view().getUint32(at, true),
    u64: (at: number) => view().getBigUint64(at, true),
    setU32: (at: number, value: number) => view().setUint32(at, value, true),
    /** Writes `bytes` at scratch + 128 and returns [pointer, length]. */
    put(text: string): [number, number] {
      const bytes = new TextEncoder().encode(text);
      new Uint8Array(exports.memory.buffer, scratch + 128, bytes.length).set(bytes);
      return [scratch + 128, bytes.length];
    },
    read: (at: number, len: number) => new TextDecoder().decode(new Uint8Array(exports.memory.buffer, at, len)),
  };
}

function sandboxed() {
  const lines: string[] = [];
  const wasi = sandboxWasi((stream, line) => lines.push(`${stream}: ${line}`));
  return { ...bind(wasi.imports, (instance) => wasi.initialize(instance)), lines, flush: () => wasi.flush() };
}

function twin() {
  const wasi = new WASI({ version: 'preview1', preopens: { '/data': dir }, env: { KONNECTOR_SECRET: 'x' }, args: ['konnector'] });
  return bind(wasi.wasiImport as Record<string, unknown>, (instance) => wasi.initialize(instance));
}

/** path_open(dirfd, "secret.txt") for reading, then fd_read: the text, or the errno. */
function readSecret(io: ReturnType<typeof bind>, dirfd: number): string | number {
  const [name, nameLen] = io.put('secret.txt');
  const opened = io.call('path_open', dirfd, 0, name, nameLen, 0, RIGHT_FD_READ, 0n, 0, io.scratch);
  if (opened !== ERRNO_SUCCESS) return opened;
  const [iov, buffer, count] = [io.scratch + 8, io.scratch + 64, io.scratch + 16];
  io.setU32(iov, buffer);
  io.setU32(iov + 4, 32);
  const read = io.call('fd_read', io.u32(io.scratch), iov, 1, count);
  return read === ERRNO_SUCCESS ? io.read(buffer, io.u32(count)) : read;
}

/** fd_write of `text` to `fd`: the errno. */
function write(io: ReturnType<typeof bind>, fd: number, text: string): number {
  const [data, len] = io.put(text);
  io.setU32(io.scratch, data);
  io.setU32(io.scratch + 4, len);
  return io.call('fd_write', fd, io.scratch, 1, io.scratch + 8);
}

describe('the QuickJS sandbox WASI', () => {
  it('opens no file: no preopened directory (twin: node:wasi with one reads it)', () => {
    const io = sandboxed();
    for (let fd = 0; fd < 8; fd++) {
      expect(io.call('fd_prestat_get', fd, io.scratch)).not.toBe(ERRNO_SUCCESS);
      expect(readSecret(io, fd)).toBeTypeOf('number');
    }
    const other = twin();
    expect(other.call('fd_prestat_get', 3, other.scratch)).toBe(ERRNO_SUCCESS);
    expect(readSecret(other, 3)).toBe('twin secret');
  });

  it('shows no environment and no arguments (twin: node:wasi given some)', () => {
    expect(Object.keys(process.env).length).toBeGreaterThan(0);
    const sizes = (io: ReturnType<typeof bind>, call: string) => {
      expect(io.call(call, io.scratch, io.scratch + 4)).toBe(ERRNO_SUCCESS);
      return [io.u32(io.scratch), io.u32(io.scratch + 4)];
    };
    const io = sandboxed();
    expect(sizes(io, 'environ_sizes_get')).toEqual([0, 0]);
    expect(sizes(io, 'args_sizes_get')).toEqual([0, 0]);
    const other = twin();
    expect(sizes(other, 'environ_sizes_get')).toEqual([1, 'KONNECTOR_SECRET=x'.length + 1]);
    expect(sizes(other, 'args_sizes_get')).toEqual([1, 'konnector'.length + 1]);
  });

  it('has no socket and no descriptor but stdout/stderr (twin: stdout becomes a log line)', () => {
    const io = sandboxed();
    for (let fd = 0; fd < 8; fd++) {
      expect(io.call('sock_accept', fd, 0, io.scratch)).toBe(ERRNO_NOTSUP);
      expect(io.call('sock_send', fd, io.scratch, 1, 0, io.scratch + 8)).toBe(ERRNO_NOTSUP);
      expect(io.call('sock_recv', fd, io.scratch, 1, 0, io.scratch + 8, io.scratch + 12)).toBe(ERRNO_NOTSUP);
    }
    for (const fd of [0, 3, 4, 100]) expect(write(io, fd, 'leak\n')).toBe(ERRNO_BADF);
    expect(write(io, 1, 'hello from the engine\npartial')).toBe(ERRNO_SUCCESS);
    expect(write(io, 2, 'warned\n')).toBe(ERRNO_SUCCESS);
    io.flush();
    expect(io.lines).toEqual(['stdout: hello from the engine', 'stderr: warned', 'stdout: partial']);
  });

  it('tells whole milliseconds only (twin: node:wasi\'s own clock is finer)', () => {
    const io = sandboxed();
    const sample = (target: ReturnType<typeof bind>, clock: number) =>
      Array.from({ length: 20 }, () => {
        expect(target.call('clock_time_get', clock, 1n, target.scratch)).toBe(ERRNO_SUCCESS);
        return target.u64(target.scratch);
      });
    for (const clock of [0, 1]) {
      for (const ns of sample(io, clock)) expect(ns % NS_PER_MS).toBe(0n);
      expect(io.call('clock_res_get', clock, io.scratch)).toBe(ERRNO_SUCCESS);
      expect(io.u64(io.scratch)).toBe(NS_PER_MS);
    }
    // Process and thread CPU time clocks are refused outright.
    for (const clock of [2, 3]) expect(io.call('clock_time_get', clock, 1n, io.scratch)).toBe(ERRNO_INVAL);
    expect(sample(twin(), 1).some((ns) => ns % NS_PER_MS !== 0n)).toBe(true);
  });

  it('gives a konnector no file or module API in JavaScript (twin: its host functions work)', () => {
    const logs: string[] = [];
    const probe = `var konnector = { async run() {
      const tried = [typeof std, typeof os, typeof require, typeof process];
      try { await import('/etc/hostname'); tried.push('imported'); } catch (e) { tried.push(e.name); }
      __host.log('info', tried.join(' ') + ' ' + Number.isInteger(Date.now()));
    } };`;
    const result = runInEngine(engine, { code: probe, job: {} }, { onLog: (line) => logs.push(line.message) });
    expect(result.outcome).toBe('returned');
    expect(logs).toEqual(['undefined undefined undefined undefined ReferenceError true']);
  });
});
