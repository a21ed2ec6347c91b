import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { formatError, parseWizerArgs } from '../../runner/compile/preinit/cli.ts';
import { preinitialize, PreinitError, type PreinitOptions } from '../../runner/compile/preinit/index.ts';
import {
  encodeDataCount,
  encodeModule,
  findSection,
  readData,
  readDataCount,
  readExports,
  readMemories,
  readModule,
  readStart,
  SectionId,
  setSection,
  WasmError,
} from '../../runner/wasm/index.ts';
import { call, instantiate, wat } from '../wasm/wat.ts';

const options: PreinitOptions = { initFunc: 'init', allowWasi: true, preopens: [], env: {} };
const preinitBin = fileURLToPath(new URL('../../runner/compile/preinit/bin.mjs', import.meta.url));

function failure(run: () => unknown): PreinitError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(PreinitError);
    return error as PreinitError;
  }
  throw new Error('expected the pre-initialization to fail');
}

const WASI = `"wasi_snapshot_preview1"`;
const stateful = `(module
  (import ${WASI} "random_get" (func $random_get (param i32 i32) (result i32)))
  (import ${WASI} "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1 10)
  (global $counter (mut i32) (i32.const 0))
  (global $big (mut i64) (i64.const 0))
  (global $float (mut f64) (f64.const 0))
  (global $fixed i32 (i32.const 5))
  (func $start (global.set $counter (i32.add (global.get $counter) (i32.const 1))))
  (start $start)
  (func (export "_initialize") (global.set $counter (i32.add (global.get $counter) (i32.const 10))))
  (func (export "init")
    (global.set $counter (i32.add (global.get $counter) (i32.const 100)))
    (global.set $big (i64.const 0x1122334455667788))
    (global.set $float (f64.const 2.5))
    (drop (memory.grow (i32.const 3)))
    (i32.store (i32.const 70000) (i32.const 0xdeadbeef))
    (i32.store8 (i32.const 200000) (i32.const 7))
    (drop (call $random_get (i32.const 100) (i32.const 32)))
    (drop (call $clock (i32.const 0) (i64.const 0) (i32.const 200)))
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 208))))
  (func (export "counter") (result i32) global.get $counter)
  (func (export "big") (result i64) global.get $big)
  (func (export "float") (result f64) global.get $float)
  (func (export "fixed") (result i32) global.get $fixed)
  (data (i32.const 8) "hello"))`;

/** Imports for instantiating a snapshot whose WASI imports are no longer called. */
const unusedWasi = { wasi_snapshot_preview1: { random_get: () => 0, clock_time_get: () => 0 } };

describe('preinitialize', () => {
  it('keeps the globals and memory the initialization wrote, and does not run it again', async () => {
    const output = preinitialize(await wat(stateful), options);
    const guest = instantiate(output, unusedWasi);
    // start (1), _initialize (10) and init (100) each ran exactly once, before the snapshot.
    expect(call(guest, 'counter')).toBe(111);
    expect(call(guest, 'big')).toBe(0x1122334455667788n);
    expect(call(guest, 'float')).toBe(2.5);
    expect(call(guest, 'fixed')).toBe(5);
    const memory = new DataView((guest.memory as WebAssembly.Memory).buffer);
    expect(memory.byteLength).toBe(4 * 65_536);
    expect(memory.getUint32(70_000, true)).toBe(0xdeadbeef);
    expect(memory.getUint8(200_000)).toBe(7);
    expect(Buffer.from(memory.buffer, 8, 5).toString()).toBe('hello');
    // The scripted clock: realtime starts at 2024-01-01T00:00:00Z, each reading advances 1 us.
    expect(memory.getBigUint64(200, true)).toBe(1_704_067_200_000_000_000n + 1_000n);
    expect(memory.getBigUint64(208, true)).toBe(2_000n);
    expect(Buffer.from(memory.buffer, 100, 32).some((byte) => byte !== 0)).toBe(true);
  });

  it('removes the start section, the init and _initialize exports, and its own exports', async () => {
    const sections = readModule(preinitialize(await wat(stateful), options));
    expect(readStart(findSection(sections, SectionId.start))).toBeUndefined();
    expect(readExports(findSection(sections, SectionId.export)).map((e) => e.name)).toEqual(['memory', 'counter', 'big', 'float', 'fixed']);
    expect(readMemories(findSection(sections, SectionId.memory))).toEqual([{ min: 4, max: 10, shared: false, index64: false }]);
    for (const segment of readData(findSection(sections, SectionId.data))) expect(segment.mode).toBe('active');
  });

  it('gives the same bytes on every run, randomness and clock included', async () => {
    const input = await wat(stateful);
    const first = preinitialize(input, options);
    expect(Buffer.from(preinitialize(input, options)).equals(first)).toBe(true);
  });

  it('gives the guest an in-memory stdin when asked, read to its end in chunks', async () => {
    // Reads fd 0 into memory at 1024, 3 bytes per fd_read, until a read returns 0 bytes; stores the total at 0.
    const reader = `(module
      (import ${WASI} "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "init") (local $at i32)
        (local.set $at (i32.const 1024))
        (block $done (loop $more
          (i32.store (i32.const 16) (local.get $at))
          (i32.store (i32.const 20) (i32.const 3))
          (br_if $done (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
          (br_if $done (i32.eqz (i32.load (i32.const 24))))
          (local.set $at (i32.add (local.get $at) (i32.load (i32.const 24))))
          (br $more)))
        (i32.store (i32.const 0) (i32.sub (local.get $at) (i32.const 1024)))))`;
    const input = new TextEncoder().encode('bytecode on stdin');
    const output = preinitialize(await wat(reader), { ...options, stdin: input });
    const memory = new DataView((instantiate(output, { wasi_snapshot_preview1: { fd_read: () => 8 } }).memory as WebAssembly.Memory).buffer);
    expect(memory.getUint32(0, true)).toBe(input.length);
    expect(Buffer.from(memory.buffer, 1024, input.length).toString()).toBe('bytecode on stdin');
  });

  it('lays out the environment the same whatever order the launcher passed it in', async () => {
    const bytes = await wat(`(module
      (import ${WASI} "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
      (import ${WASI} "environ_get" (func $get (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "init") (drop (call $sizes (i32.const 0) (i32.const 4))) (drop (call $get (i32.const 16) (i32.const 1024)))))`);
    const first = preinitialize(bytes, { ...options, env: { SOURCE_NAME: 'source.js', EXPORT_CNT: '1' } });
    const second = preinitialize(bytes, { ...options, env: { EXPORT_CNT: '1', SOURCE_NAME: 'source.js' } });
    expect(Buffer.from(second).equals(first)).toBe(true);
    const memory = (instantiate(first, { wasi_snapshot_preview1: { environ_sizes_get: () => 0, environ_get: () => 0 } }).memory as WebAssembly.Memory).buffer;
    expect(Buffer.from(memory, 1024, 35).toString('latin1')).toBe('EXPORT_CNT=1\0SOURCE_NAME=source.js\0');
  });

  it('fails when the initialization calls a host import, naming the import and the function', async () => {
    const module = (init: string) =>
      wat(`(module (import "host" "notify" (func $notify)) (memory 1)
        (func (export "init") ${init}) (func (export "later") call $notify))`);
    const forbidden = await module('call $notify');
    const error = failure(() => preinitialize(forbidden, options));
    expect(error.kind).toBe('forbidden-import');
    expect(error.func).toBe('init');
    expect(error.message).toMatch(/unknown imported function: 'host' 'notify'/);

    // Benign twin: the import is kept for run time and works there.
    let notified = 0;
    const guest = instantiate(preinitialize(await module('nop'), options), { host: { notify: () => notified++ } });
    call(guest, 'later');
    expect(notified).toBe(1);
  });

  it('fails even if the guest catches the exception a forbidden import throws', async () => {
    const bytes = await wat(`(module (import "host" "f" (func $f)) (func (export "init") try call $f catch_all end))`);
    expect(failure(() => preinitialize(bytes, options)).kind).toBe('forbidden-import');
  });

  it('treats WASI as forbidden too without --allow-wasi', async () => {
    const bytes = await wat(stateful);
    const error = failure(() => preinitialize(bytes, { ...options, allowWasi: false }));
    expect(error.kind).toBe('forbidden-import');
    expect(error.message).toMatch(/'wasi_snapshot_preview1' 'random_get'/);
  });

  it('reports proc_exit with its status, in the format componentize-js strips', async () => {
    const bytes = await wat(`(module (import ${WASI} "proc_exit" (func $exit (param i32))) (memory (export "memory") 1)
      (func (export "componentize.wizer") (call $exit (i32.const 3))))`);
    const error = failure(() => preinitialize(bytes, { ...options, initFunc: 'componentize.wizer' }));
    expect(error.kind).toBe('init-exited');
    expect(error.exitStatus).toBe(3);
    expect(formatError(error)).toBe('Error: the `componentize.wizer` function trapped\n\nCaused by:\n    Exited with i32 exit status 3\n');
  });

  it('reports a trap with the engine message and the function that trapped', async () => {
    const bytes = await wat(`(module (func $deep unreachable) (func (export "init") call $deep))`);
    const error = failure(() => preinitialize(bytes, options));
    expect(error.kind).toBe('init-trapped');
    expect(error.func).toBe('init');
    expect(error.message).toMatch(/RuntimeError: unreachable/);
    expect(formatError(error)).toMatch(/^Error: the `init` function trapped\n\nCaused by:\n {4}RuntimeError: unreachable/);
  });

  it('reports a trap in the start function as such', async () => {
    const bytes = await wat(`(module (func $start unreachable) (start $start) (func (export "init")))`);
    const error = failure(() => preinitialize(bytes, options));
    expect([error.kind, error.func]).toEqual(['init-trapped', 'start']);
  });

  it('refuses an initialization that changes a table, which would be lost', async () => {
    const module = (init: string) =>
      wat(`(module (type $t (func (result i32))) (table 2 funcref)
        (func $a (result i32) i32.const 1) (func $b (result i32) i32.const 2)
        (elem (i32.const 0) $a) (elem declare func $b)
        (func (export "init") ${init})
        (func (export "slot0") (result i32) (call_indirect (type $t) (i32.const 0))))`);
    const changed = await module('(table.set (i32.const 1) (ref.func $b))');
    const refusal = failure(() => preinitialize(changed, options));
    expect(refusal.kind).toBe('unsupported');
    expect(refusal.message).toMatch(/changed entry 1 of table 0/);
    // Benign twin: tables left alone are rebuilt from the element segments.
    expect(call(instantiate(preinitialize(await module('nop'), options)), 'slot0')).toBe(1);
  });

  it('keeps the meaning of data segment indices when code refers to them', async () => {
    const bytes = await wat(`(module (memory (export "memory") 1)
      (data $keep "KEEP") (data $gone "GONE") (data $active (i32.const 0) "ACTV")
      (func (export "init") (data.drop $gone) (i32.store (i32.const 100) (i32.const 42)))
      (func (export "copy_keep") (memory.init $keep (i32.const 1000) (i32.const 0) (i32.const 4)))
      (func (export "copy_gone") (memory.init $gone (i32.const 1000) (i32.const 0) (i32.const 4)))
      (func (export "copy_active") (memory.init $active (i32.const 1000) (i32.const 0) (i32.const 4)))
      (func (export "copy_nothing") (memory.init $gone (i32.const 1000) (i32.const 0) (i32.const 0))))`);
    const outcomes = (guest: WebAssembly.Exports) =>
      ['copy_keep', 'copy_gone', 'copy_active', 'copy_nothing'].map((name) => {
        try {
          call(guest, name);
          return `${name}: ${Buffer.from((guest.memory as WebAssembly.Memory).buffer, 1000, 4).toString('latin1')}`;
        } catch (error) {
          return `${name}: ${(error as Error).name}`;
        }
      });
    // What the original does after its initialization...
    const original = instantiate(bytes);
    call(original, 'init');
    const expected = outcomes(original);
    expect(expected).toEqual(['copy_keep: KEEP', 'copy_gone: RuntimeError', 'copy_active: RuntimeError', 'copy_nothing: KEEP']);
    // ...is what the snapshot does.
    const output = preinitialize(bytes, options);
    const snapshot = instantiate(output);
    expect(new DataView((snapshot.memory as WebAssembly.Memory).buffer).getUint32(100, true)).toBe(42);
    expect(Buffer.from((snapshot.memory as WebAssembly.Memory).buffer, 0, 4).toString()).toBe('ACTV');
    expect(outcomes(snapshot)).toEqual(expected);
    const sections = readModule(output);
    const segments = readData(findSection(sections, SectionId.data));
    expect(segments.slice(0, 3).map((s) => [s.mode, Buffer.from(s.bytes).toString()])).toEqual([
      ['passive', 'KEEP'],
      ['passive', ''],
      ['passive', ''],
    ]);
    expect(readDataCount(findSection(sections, SectionId.dataCount))).toBe(segments.length);
  });

  it('renumbers segments freely, like Wizer, when no code refers to them', async () => {
    const bytes = await wat(`(module (memory (export "memory") 1) (data (i32.const 0) "abc") (data "unused")
      (func (export "init") (i32.store8 (i32.const 3) (i32.const 100))))`);
    // Bulk-memory toolchains emit a data count section even without memory.init.
    const withCount = encodeModule(setSection(readModule(bytes), SectionId.dataCount, encodeDataCount(2)));
    const sections = readModule(preinitialize(withCount, options));
    const segments = readData(findSection(sections, SectionId.data));
    expect(segments.map((s) => [s.mode, Buffer.from(s.bytes).toString()])).toEqual([['active', 'abcd']]);
    expect(readDataCount(findSection(sections, SectionId.dataCount))).toBe(1);
  });

  it('refuses modules it cannot snapshot faithfully, saying why', async () => {
    const importedMemory = await wat(`(module (import "env" "memory" (memory 1)) (func (export "init")))`);
    expect(failure(() => preinitialize(importedMemory, options))).toMatchObject({ kind: 'unsupported', message: expect.stringMatching(/imports a memory \("env" "memory"\)/) });
    const reserved = await wat(`(module (func (export "init")) (func (export "__preinit_x")))`);
    expect(failure(() => preinitialize(reserved, options))).toMatchObject({ kind: 'unsupported', message: expect.stringMatching(/reserved/) });
    const vector = await wat(`(module (global (mut v128) (v128.const i64x2 0 0)) (func (export "init")))`);
    expect(failure(() => preinitialize(vector, options))).toMatchObject({ kind: 'unsupported', message: expect.stringMatching(/global 0 is a mutable v128/) });
    const noInit = await wat(`(module (func (export "other")))`);
    expect(failure(() => preinitialize(noInit, options))).toMatchObject({ kind: 'usage', message: 'the Wasm module does not have a `init` export' });
    const withParameter = await wat(`(module (func (export "init") (param i32)))`);
    expect(failure(() => preinitialize(withParameter, options))).toMatchObject({ kind: 'usage', message: 'the `init` export must be a function of type [] -> []' });
  });

  it('reports a module that does not validate as malformed input', async () => {
    // Valid framing, invalid code: the [] -> [] function leaves an i32 on the stack.
    const bytes = Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00,
      0x07, 0x08, 0x01, 0x04, 0x69, 0x6e, 0x69, 0x74, 0x00, 0x00, 0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x00, 0x0b);
    let caught: unknown;
    try {
      preinitialize(bytes, options);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(WasmError);
    expect((caught as WasmError).message).toMatch(/the input module does not validate/);
  });
});

describe('the wizer command line', () => {
  const componentizeArgs = [
    '--allow-wasi', '--init-func', 'componentize.wizer', '--dir=/tmp/abc/sources', '--mapdir=/::/home/me/project',
    '--wasm-bulk-memory=true', '--inherit-env=true', '-o=/tmp/abc/out.wasm', '/tmp/abc/in.wasm',
  ];

  it('parses exactly what componentize-js passes', () => {
    expect(parseWizerArgs(componentizeArgs)).toEqual({
      input: '/tmp/abc/in.wasm',
      output: '/tmp/abc/out.wasm',
      initFunc: 'componentize.wizer',
      allowWasi: true,
      inheritEnv: true,
      preopens: [
        ['/tmp/abc/sources', '/tmp/abc/sources'],
        ['/', '/home/me/project'],
      ],
    });
  });

  it('rejects what it does not implement, with a usage line', () => {
    const usage = (argv: string[]) => failure(() => parseWizerArgs(argv));
    expect(usage(['--keep-init-func=true', ...componentizeArgs])).toMatchObject({ kind: 'usage', message: expect.stringMatching(/unsupported option --keep-init-func[\s\S]*Usage: preinit/) });
    expect(usage(['--mapdir=/a', 'in.wasm', '-o=x']).message).toMatch(/GUEST_DIR::HOST_DIR/);
    expect(usage(['in.wasm']).message).toMatch(/missing -o/);
    expect(usage(['-o=x', 'a.wasm', 'b.wasm']).message).toMatch(/exactly one input module, got 2/);
    expect(usage(['--inherit-env=yes', '-o=x', 'a.wasm']).message).toMatch(/takes true or false, got "yes"/);
    expect(usage(['--dir=/a', '--dir=/a', '-o=x', 'a.wasm']).message).toMatch(/preopened twice/);
    expect(usage(['--wasm-bulk-memory=false', '-o=x', 'a.wasm']).message).toMatch(/not supported/);
  });

  describe('as a program', () => {
    const work = mkdtempSync(join(tmpdir(), 'preinit-cli-'));
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    /** Runs the executable as componentize-js does: env holds only what it passes, stdin carries the runtime args. */
    const runBin = (args: string[], input: string, env: Record<string, string> = {}) =>
      spawnSync(preinitBin, args, { env, input, encoding: 'utf8' });

    it('reads stdin, the environment and preopened directories, and writes the snapshot', async () => {
      writeFileSync(join(work, 'input.txt'), 'file contents');
      const bytes = await wat(`(module
        (import ${WASI} "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
        (import ${WASI} "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
        (import ${WASI} "environ_sizes_get" (func $environ_sizes (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "input.txt")
        (func (export "componentize.wizer")
          (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 64))
          (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
          (drop (call $environ_sizes (i32.const 300) (i32.const 304)))
          (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 9) (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 400)))
          (i32.store (i32.const 0) (i32.const 2048)) (i32.store (i32.const 4) (i32.const 64))
          (drop (call $fd_read (i32.load (i32.const 400)) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
      writeFileSync(join(work, 'in.wasm'), bytes);
      const output = join(work, 'out.wasm');
      const args = ['--allow-wasi', '--init-func', 'componentize.wizer', `--dir=${work}`, '--wasm-bulk-memory=true', '--inherit-env=true', `-o=${output}`, join(work, 'in.wasm')];
      const result = runBin(args, 'runtime args from stdin', { EXPORT_CNT: '1', SOURCE_NAME: 'source.js' });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      const memory = new DataView((instantiate(new Uint8Array(readFileSync(output)), { wasi_snapshot_preview1: { fd_read: () => 0, path_open: () => 0, environ_sizes_get: () => 0 } }).memory as WebAssembly.Memory).buffer);
      expect(Buffer.from(memory.buffer, 1024, 23).toString()).toBe('runtime args from stdin');
      expect(memory.getUint32(300, true)).toBe(2);
      expect(Buffer.from(memory.buffer, 2048, 13).toString()).toBe('file contents');
    });

    it('exits non-zero with Wizer\'s message when the initialization fails', async () => {
      writeFileSync(join(work, 'exit.wasm'), await wat(`(module (import ${WASI} "proc_exit" (func $exit (param i32)))
        (import ${WASI} "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1) (data (i32.const 100) "guest says no\\n")
        (func (export "componentize.wizer")
          (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 14))
          (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
          (call $exit (i32.const 1))))`));
      const result = runBin(['--allow-wasi', '--init-func', 'componentize.wizer', `-o=${join(work, 'never.wasm')}`, join(work, 'exit.wasm')], '');
      expect(result.status).toBe(1);
      expect(result.stderr).toBe('guest says no\nError: the `componentize.wizer` function trapped\n\nCaused by:\n    Exited with i32 exit status 1\n');
    });

    it('exits with status 2 on a bad command line', () => {
      const result = runBin(['--frobnicate', 'x.wasm'], '');
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(/^Error: unsupported option --frobnicate/);
    });
  });
});
