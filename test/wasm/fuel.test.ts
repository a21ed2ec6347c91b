import { readFileSync } from 'node:fs';
import { print } from '@bytecodealliance/jco-transpile/wasm-tools';
import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../../runner/wasm/bytes.ts';
import { CodeCursor, readInstruction } from '../../runner/wasm/fuel-decode.ts';
import {
  DEFAULT_FUEL_COSTS,
  FUEL_GLOBAL_EXPORT,
  FUEL_INSTRUMENTER_VERSION,
  FuelInstrumentError,
  instrumentComponentFuel,
  instrumentFuel,
  isFuelInstrumented,
  readFuelMetadata,
  type FuelOptions,
} from '../../runner/wasm/fuel.ts';
import { readExports, readModule, findSection, SectionId, mapCoreModules } from '../../runner/wasm/index.ts';
import { componentizeJsFile, wat } from './wat.ts';

/**
 * Charges are asserted exactly. With the default costs every instruction
 * costs 1, except block, loop, end, else, nop, drop, return, unreachable and
 * the try/catch structure (0); bulk operations add their size-based price.
 */

interface Metered {
  exports: WebAssembly.Exports;
  fuel: WebAssembly.Global;
  /** Calls an export with `budget` fuel; reports what it returned or the trap, and the fuel used. */
  run(name: string, budget: bigint, ...args: unknown[]): { value?: unknown; trap?: Error; consumed: bigint; remaining: bigint };
}

async function meter(text: string, imports: (fuel: () => WebAssembly.Global) => WebAssembly.Imports = () => ({}), options?: FuelOptions): Promise<Metered> {
  const bytes = instrumentFuel(await wat(text), options);
  expect(WebAssembly.validate(bytes)).toBe(true);
  let fuel: WebAssembly.Global | undefined;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), imports(() => fuel!));
  fuel = instance.exports[FUEL_GLOBAL_EXPORT] as WebAssembly.Global;
  return {
    exports: instance.exports,
    fuel,
    run(name, budget, ...args) {
      fuel!.value = budget;
      let value: unknown;
      let trap: Error | undefined;
      try {
        value = (instance.exports[name] as (...a: unknown[]) => unknown)(...args);
      } catch (error) {
        if (!(error instanceof WebAssembly.RuntimeError)) throw error;
        trap = error;
      }
      const remaining = fuel!.value as bigint;
      return { value, trap, remaining, consumed: budget - remaining };
    },
  };
}

const PLENTY = 1n << 40n;

function expectFuelError(run: () => unknown, kind: FuelInstrumentError['kind'], message: RegExp): FuelInstrumentError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(FuelInstrumentError);
  expect((caught as FuelInstrumentError).kind).toBe(kind);
  expect((caught as FuelInstrumentError).message).toMatch(message);
  return caught as FuelInstrumentError;
}

const COUNTER = `(module
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    block $done
      loop $next
        local.get $i local.get $n i32.ge_u br_if $done
        local.get $i i32.const 1 i32.add local.set $i
        br $next
      end
    end
    local.get $i))`;
/** 4 to test, 5 to step and branch back, 4 for the last test, 1 for the result. */
const countCost = (n: number) => BigInt(9 * n + 5);

describe('fuel charges', () => {
  it('charges straight-line code one unit per instruction', async () => {
    const m = await meter(`(module (func (export "inc") (param i32) (result i32) local.get 0 i32.const 1 i32.add))`);
    expect(m.run('inc', 100n, 41)).toMatchObject({ value: 42, consumed: 3n });
  });

  it('charges a loop exactly per iteration, including the final test', async () => {
    const m = await meter(COUNTER);
    for (const n of [0, 1, 10, 1000]) expect(m.run('count', PLENTY, n)).toMatchObject({ value: n, consumed: countCost(n) });
  });

  it('charges each br_table target its own code', async () => {
    const m = await meter(`(module (func (export "pick") (param i32) (result i32)
      block $c block $b block $a
        local.get 0 br_table $a $b $c
      end i32.const 10 return
      end i32.const 20 i32.const 1 i32.add return
      end i32.const 30 i32.const 2 i32.mul i32.const 1 i32.add))`);
    expect(m.run('pick', PLENTY, 0)).toMatchObject({ value: 10, consumed: 3n });
    expect(m.run('pick', PLENTY, 1)).toMatchObject({ value: 21, consumed: 5n });
    expect(m.run('pick', PLENTY, 2)).toMatchObject({ value: 61, consumed: 7n });
    expect(m.run('pick', PLENTY, 7)).toMatchObject({ value: 61, consumed: 7n });
  });

  it('charges only the arm of an if/else that runs', async () => {
    const m = await meter(`(module
      (func (export "abs1") (param i32) (result i32)
        local.get 0 i32.const 0 i32.lt_s
        if (result i32) i32.const 0 local.get 0 i32.sub else local.get 0 end
        i32.const 1 i32.add)
      (func (export "clamp") (param i32) (result i32)
        local.get 0 i32.const 100 i32.gt_s
        if i32.const 100 local.set 0 end
        local.get 0))`);
    expect(m.run('abs1', PLENTY, -5)).toMatchObject({ value: 6, consumed: 9n });
    expect(m.run('abs1', PLENTY, 5)).toMatchObject({ value: 6, consumed: 7n });
    expect(m.run('clamp', PLENTY, 500)).toMatchObject({ value: 100, consumed: 7n });
    expect(m.run('clamp', PLENTY, 5)).toMatchObject({ value: 5, consumed: 5n });
  });

  it('does not charge the rest of a region a conditional branch skips', async () => {
    const m = await meter(`(module (func (export "early") (param i32) (result i32)
      block $out
        local.get 0 br_if $out
        i32.const 1 i32.const 2 i32.const 3 i32.add i32.add drop
      end
      i32.const 7))`);
    expect(m.run('early', PLENTY, 1)).toMatchObject({ value: 7, consumed: 3n });
    expect(m.run('early', PLENTY, 0)).toMatchObject({ value: 7, consumed: 8n });
  });

  it('charges callees on their own and sums calls exactly, through recursion', async () => {
    const m = await meter(`(module
      (func $sq (param i32) (result i32) local.get 0 local.get 0 i32.mul)
      (func (export "sumsq") (param i32 i32) (result i32) local.get 0 call $sq local.get 1 call $sq i32.add)
      (func $down (export "down") (param i32) (result i32)
        local.get 0 i32.eqz
        if (result i32) i32.const 0
        else local.get 0 i32.const 1 i32.sub call $down i32.const 1 i32.add end))`);
    expect(m.run('sumsq', PLENTY, 3, 4)).toMatchObject({ value: 25, consumed: 11n });
    expect(m.run('down', PLENTY, 0)).toMatchObject({ value: 0, consumed: 4n });
    expect(m.run('down', PLENTY, 100)).toMatchObject({ value: 100, consumed: 904n });
  });

  it('charges indirect calls and calls through the host', async () => {
    const m = await meter(
      `(module
        (import "host" "twice" (func $twice (param i32) (result i32)))
        (type $un (func (param i32) (result i32)))
        (table 1 funcref) (elem (i32.const 0) $inc)
        (func $inc (export "inc") (param i32) (result i32) local.get 0 i32.const 1 i32.add)
        (func (export "viaTable") (param i32) (result i32) local.get 0 i32.const 0 call_indirect (type $un))
        (func (export "viaHost") (param i32) (result i32) local.get 0 call $twice))`,
      () => ({ host: { twice: (x: number) => 2 * (m.exports.inc as (x: number) => number)(x) } }),
    );
    expect(m.run('viaTable', PLENTY, 1)).toMatchObject({ value: 2, consumed: 6n });
    // 2 in viaHost, then the host re-enters the guest: 3 for inc.
    expect(m.run('viaHost', PLENTY, 1)).toMatchObject({ value: 4, consumed: 5n });
  });

  it('prices bulk memory by size and memory.grow by page, at run time', async () => {
    const m = await meter(`(module
      (memory 1 100)
      (data $hello "hello, fuel, hello, fuel, hello, fuel, hello, fuel, hello, fuel, hello, fuel!")
      (func (export "fill") (param i32) i32.const 0 i32.const 7 local.get 0 memory.fill)
      (func (export "copy") (param i32) i32.const 4096 i32.const 0 local.get 0 memory.copy)
      (func (export "init") (param i32) i32.const 0 i32.const 0 local.get 0 memory.init $hello)
      (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
      (func (export "pages") (result i32) memory.size))`);
    expect(m.run('fill', PLENTY, 0).consumed).toBe(4n);
    expect(m.run('fill', PLENTY, 63).consumed).toBe(4n);
    expect(m.run('fill', PLENTY, 64).consumed).toBe(5n);
    expect(m.run('fill', PLENTY, 6400).consumed).toBe(104n);
    expect(m.run('copy', PLENTY, 640).consumed).toBe(14n);
    expect(m.run('init', PLENTY, 64).consumed).toBe(5n);
    expect(m.run('grow', PLENTY, 2)).toMatchObject({ value: 1, consumed: 2n + 2n * 1024n });
    // A refused grow is charged too.
    expect(m.run('grow', PLENTY, 1000)).toMatchObject({ value: -1, consumed: 2n + 1000n * 1024n });
  });

  it('stops a bulk operation the budget cannot pay for before it runs', async () => {
    const m = await meter(`(module (memory 1 100)
      (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
      (func (export "pages") (result i32) memory.size))`);
    const hog = m.run('grow', 10_000n, 50);
    expect(hog.trap?.message).toMatch(/unreachable/);
    expect(hog.remaining).toBeLessThan(0n);
    expect(m.run('pages', PLENTY).value).toBe(1);
    // Twin: a grow the budget covers.
    expect(m.run('grow', 10_000n, 5)).toMatchObject({ value: 1, consumed: 2n + 5n * 1024n });
    expect(m.run('pages', PLENTY).value).toBe(6);
  });

  it('prices table bulk operations per element', async () => {
    const m = await meter(`(module (table 10 1000 funcref)
      (func (export "fill") (param i32) i32.const 0 ref.null func local.get 0 table.fill 0)
      (func (export "grow") (param i32) (result i32) ref.null func local.get 0 table.grow 0))`);
    expect(m.run('fill', PLENTY, 10).consumed).toBe(4n + 1n);
    expect(m.run('grow', PLENTY, 800)).toMatchObject({ value: 10, consumed: 3n + 100n });
  });

  it('uses custom costs', async () => {
    const m = await meter(COUNTER, undefined, { costs: { instruction: 2 } });
    expect(m.run('count', PLENTY, 10).consumed).toBe(2n * countCost(10));
    const calls = await meter(`(module (func $f) (func (export "g") call $f call $f))`, undefined, { costs: { call: 10 } });
    expect(calls.run('g', PLENTY).consumed).toBe(20n);
  });
});

describe('fuel exhaustion', () => {
  it('traps an endless loop with the counter below zero; a loop within the budget returns', async () => {
    const m = await meter(`(module (func (export "spin") loop br 0 end))`);
    const spin = m.run('spin', 1000n);
    expect(spin.trap?.message).toMatch(/unreachable/);
    expect(spin.remaining).toBeLessThan(0n);
    // Overshoot is bounded by one loop-free stretch.
    expect(spin.remaining).toBeGreaterThanOrEqual(-2n);

    const counter = await meter(COUNTER);
    expect(counter.run('count', 1000n, 100)).toMatchObject({ value: 100, remaining: 1000n - countCost(100) });
  });

  it('runs exactly up to its budget', async () => {
    const m = await meter(COUNTER);
    expect(m.run('count', countCost(50), 50)).toMatchObject({ value: 50, remaining: 0n });
    const short = m.run('count', countCost(50) - 1n, 50);
    expect(short.trap).toBeDefined();
    expect(short.remaining).toBeLessThan(0n);
  });

  it('traps endless recursion as exhaustion, before the stack overflows', async () => {
    const m = await meter(`(module (func $f (export "f") call $f))`);
    const deep = m.run('f', 5000n);
    expect(deep.trap?.message).toMatch(/unreachable/);
    expect(deep.remaining).toBeLessThan(0n);
  });

  it('traps endless tail recursion, which no stack limit would stop', async () => {
    const m = await meter(`(module (func $f (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add return_call $f))`);
    const tail = m.run('f', 100_000n, 0);
    expect(tail.trap?.message).toMatch(/unreachable/);
    expect(tail.remaining).toBeLessThan(0n);
  });

  it('leaves the counter at zero or above on other traps, so they are told apart', async () => {
    const m = await meter(`(module
      (func (export "fail") i32.const 1 drop unreachable)
      (func (export "div") (param i32) (result i32) i32.const 10 local.get 0 i32.div_s))`);
    const explicit = m.run('fail', 100n);
    expect(explicit.trap?.message).toMatch(/unreachable/);
    expect(explicit).toMatchObject({ remaining: 99n });
    const divide = m.run('div', 100n, 0);
    expect(divide.trap?.message).toMatch(/divide by zero/);
    expect(divide.remaining).toBeGreaterThanOrEqual(0n);
    expect(m.run('div', 100n, 2)).toMatchObject({ value: 5, consumed: 3n });
  });

  it('traps before running anything when no budget was set (the counter starts at 0)', async () => {
    const m = await meter(COUNTER);
    expect(() => (m.exports.count as (n: number) => number)(1)).toThrow(WebAssembly.RuntimeError);
    expect(m.fuel.value as bigint).toBeLessThan(0n);
    const started = await meter(COUNTER, undefined, { initialFuel: 1000n });
    expect((started.exports.count as (n: number) => number)(1)).toBe(1);
    expect(started.fuel.value).toBe(1000n - countCost(1));
  });

  it('sees what a host import charges on the guest’s behalf at its next check', async () => {
    const m = await meter(
      `(module (import "host" "work" (func $work))
        (func (export "job") (param $n i32)
          loop $again
            call $work
            local.get $n i32.const 1 i32.sub local.tee $n
            br_if $again
          end))`,
      (fuel) => ({ host: { work: () => void (fuel().value = (fuel().value as bigint) - 1000n) } }),
    );
    // 1 (call) + 5 per iteration, plus 1000 charged by the host per call.
    expect(m.run('job', PLENTY, 3)).toMatchObject({ consumed: 3n * 1006n });
    const over = m.run('job', 5000n, 100);
    expect(over.trap).toBeDefined();
    expect(over.remaining).toBeLessThan(0n);
    expect(over.consumed).toBeLessThan(7n * 1006n);
  });
});

describe('instructions beyond the core', () => {
  it('meters legacy exception handling: throw, catch, rethrow, delegate', async () => {
    const m = await meter(`(module
      (tag $e (param i32))
      (func $maybe (param i32) local.get 0 if local.get 0 throw $e end)
      (func (export "catcher") (param i32) (result i32)
        try (result i32)
          local.get 0 call $maybe
          i32.const -1
        catch $e
          i32.const 1 i32.add
        end)
      (func (export "relay") (param i32) (result i32)
        try (result i32)
          try (result i32) local.get 0 call $maybe i32.const -1 delegate 0
        catch_all
          i32.const 99
        end))`);
    // No throw: catcher 3, $maybe 2 (its test).
    expect(m.run('catcher', PLENTY, 0)).toMatchObject({ value: -1, consumed: 5n });
    // Throw: catcher's first region 3 (the skipped i32.const included), $maybe 2 + 2, the handler 2.
    expect(m.run('catcher', PLENTY, 5)).toMatchObject({ value: 6, consumed: 9n });
    // Delegated to the outer handler: 3 + 4 + 1.
    expect(m.run('relay', PLENTY, 5)).toMatchObject({ value: 99, consumed: 8n });
  });

  it('handles multi-value blocks and block parameters', async () => {
    const m = await meter(`(module (func (export "swap") (param i32 i32) (result i32 i32)
      local.get 0 local.get 1
      block (param i32 i32) (result i32 i32)
        local.set 0 local.set 1 local.get 0 local.get 1
        br 0
      end))`);
    expect(m.run('swap', PLENTY, 1, 2)).toMatchObject({ value: [2, 1], consumed: 7n });
  });

  it('handles SIMD', async () => {
    const m = await meter(`(module (func (export "sum") (param i32) (result i32)
      local.get 0 i32x4.splat
      v128.const i32x4 1 2 3 4 i32x4.add
      i32x4.extract_lane 3))`);
    expect(m.run('sum', PLENTY, 10)).toMatchObject({ value: 14, consumed: 5n });
  });

  it('decodes every instruction it accepts exactly as wasm-tools does', async () => {
    const module = (instructions: Uint8Array) => {
      const body = new ByteWriter().u8(0).bytes(instructions).u8(0x0b).finish();
      const code = new ByteWriter().u8(1).u32(body.length).bytes(body).finish();
      return new ByteWriter().bytes(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 10)).u32(code.length).bytes(code).finish();
    };
    const structure = new Set([0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0b, 0x18, 0x19, 0xfb, 0xfc, 0xfd, 0xfe]);
    const probes: [string, Uint8Array][] = [];
    for (let op = 0; op < 256; op++) if (!structure.has(op)) probes.push([op.toString(16), Uint8Array.of(op)]);
    for (const [prefix, count] of [[0xfb, 32], [0xfc, 32], [0xfd, 0x130], [0xfe, 0x50]] as const) {
      for (let sub = 0; sub < count; sub++) probes.push([`${prefix.toString(16)} ${sub.toString(16)}`, new ByteWriter().u8(prefix).u32(sub).finish()]);
    }
    const disagreements: string[] = [];
    const refusedKnown: string[] = [];
    for (const [name, opcode] of probes) {
      // Immediates of zeros (a select's type vector must not be empty).
      const padded = new Uint8Array(opcode.length + 32);
      padded.set(opcode);
      if (opcode[0] === 0x1c) padded.set([1, 0x7f], 1);
      let length: number | undefined;
      try {
        const cursor = new CodeCursor(padded, 0, padded.length, 0, 'in a probe');
        readInstruction(cursor);
        length = cursor.pos;
      } catch (error) {
        expect((error as FuelInstrumentError).kind).toBe('unknown-opcode');
      }
      let text: string | undefined;
      try {
        text = await print(module(length === undefined ? opcode : padded.subarray(0, length)));
      } catch {
        // wasm-tools does not know it either
      }
      const instructions = text?.split('\n').filter((line) => /^ {4}\S/.test(line)) ?? [];
      if (length !== undefined && instructions.length !== 1) disagreements.push(`${name}: ${JSON.stringify(instructions)}`);
      if (length === undefined && text !== undefined) refusedKnown.push(name);
    }
    expect(disagreements).toEqual([]);
    // What wasm-tools knows and the instrumenter refuses: exnref, GC, wide arithmetic.
    for (const name of refusedKnown) expect(name).toMatch(/^(a|d3|fb \w+|fc 1[3-6])$/);
  });
});

describe('refusals', () => {
  /** A module whose only function body is `bytes` then `end`, and the offset of `bytes` in it. */
  function rawModule(bytes: number[]): { module: Uint8Array; at: number } {
    const body = [0, ...bytes, 0x0b];
    const module = Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 10, body.length + 2, 1, body.length, ...body);
    return { module, at: module.length - bytes.length - 1 };
  }

  it('names an unknown opcode and its byte offset', () => {
    const { module, at } = rawModule([0x41, 0x01, 0xc5]);
    const error = expectFuelError(() => instrumentFuel(module), 'unknown-opcode', /instruction 0xc5 in function 0/);
    expect(error.offset).toBe(at + 2);
    expect(error.message).toContain(`at byte offset ${at + 2}`);
  });

  it('refuses GC, atomics and exnref instructions, naming them', async () => {
    expectFuelError(() => instrumentFuel(rawModule([0xfb, 0x1a]).module), 'unknown-opcode', /0xfb 26 \(GC\)/);
    const atomics = await wat(`(module (memory 1 1 shared) (func (result i32) i32.const 0 i32.atomic.load))`);
    expectFuelError(() => instrumentFuel(atomics), 'unknown-opcode', /0xfe 16 \(threads/);
    expectFuelError(() => instrumentFuel(rawModule([0x1f, 0x40, 0x00, 0x0b]).module), 'unknown-opcode', /try_table \(exnref/);
  });

  it('refuses memory64, instrumenting twice, bad input and bad costs', async () => {
    const memory64 = Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0x04, 1);
    expectFuelError(() => instrumentFuel(memory64), 'unsupported', /memory64/);
    const once = instrumentFuel(await wat(COUNTER));
    expectFuelError(() => instrumentFuel(once), 'already-instrumented', /already exports "konnector_fuel"/);
    const truncated = rawModule([0x41]).module;
    expectFuelError(() => instrumentFuel(truncated.subarray(0, truncated.length - 1)), 'malformed', /./);
    expectFuelError(() => instrumentFuel(Uint8Array.of(1, 2, 3)), 'malformed', /not a WebAssembly binary/);
    // Well-formed but invalid: the instrumenter does not hide it behind its own output.
    expectFuelError(() => instrumentFuel(rawModule([0x6a]).module), 'invalid-input', /does not validate in this engine/);
    expectFuelError(() => instrumentFuel(once, { costs: { instruction: 0 } }), 'invalid-options', /costs\.instruction/);
    expectFuelError(() => instrumentFuel(once, { costs: { bulkBytesPerUnit: 100 } }), 'invalid-options', /power of two/);
    // A free call would make a tail-call loop free, and endless.
    expectFuelError(() => instrumentFuel(once, { costs: { call: 0 } }), 'invalid-options', /costs\.call/);
  });

  it('refuses metadata it did not write', async () => {
    const module = await wat(`(module (@custom "konnector_fuel" "{\\"version\\": 1}"))`);
    expectFuelError(() => readFuelMetadata(module), 'malformed', /does not hold the instrumenter's metadata/);
    expect(readFuelMetadata(await wat('(module)'))).toBeUndefined();
  });
});

describe('the componentize-js engine', () => {
  const engine = readFileSync(componentizeJsFile('lib/starlingmonkey_embedding.wasm'));

  it('instruments the StarlingMonkey engine module into a valid module that keeps its interface', () => {
    const metered = instrumentFuel(engine);
    expect(WebAssembly.validate(metered)).toBe(true);
    expect(isFuelInstrumented(metered)).toBe(true);
    expect(isFuelInstrumented(engine)).toBe(false);
    expect(readFuelMetadata(metered)).toEqual({ version: FUEL_INSTRUMENTER_VERSION, costs: DEFAULT_FUEL_COSTS });
    const exportsOf = (bytes: Uint8Array) => readExports(findSection(readModule(bytes), SectionId.export));
    expect(exportsOf(metered)).toEqual([...exportsOf(engine), { name: FUEL_GLOBAL_EXPORT, kind: 'global', index: expect.any(Number) }]);
    const imports = (bytes: Uint8Array) => WebAssembly.Module.imports(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>));
    expect(imports(metered)).toEqual(imports(engine));
    // Deterministic output.
    expect(Buffer.compare(instrumentFuel(engine), metered)).toBe(0);
  });

  it('meters the core modules of a component that need it, leaving stubs and code-less modules alone', async () => {
    const component = await wat(`(component
      (core module $main (func (export "spin") loop br 0 end))
      (core module $stub (type $t (func)) (table 1 funcref) (func (export "0") i32.const 0 call_indirect (type $t)))
      (core module $nocode (memory 1))
      (core instance $a (instantiate $main))
      (core instance $b (instantiate $stub))
      (core instance $c (instantiate $nocode)))`);
    const metered = instrumentComponentFuel(component);
    const modules: Uint8Array[] = [];
    mapCoreModules(metered, (module) => (modules.push(module), module));
    expect(modules.map((module) => isFuelInstrumented(module))).toEqual([true, false, false]);
    expect(isFuelInstrumented(metered)).toBe(true);
    expect(isFuelInstrumented(component)).toBe(false);
  });
});
