import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { artifactComponent } from '../../runner/compile/artifact.ts';
import {
  applySnapshot,
  deltaOwnSections,
  joinComponent,
  mapCoreModules,
  separateComponent,
  snapshotOfOwnSections,
  splitSnapshot,
  undoDeltaOwnSections,
  type Snapshot,
} from '../../runner/wasm/index.ts';
import { buildOnce, fixtureDir, readComponentArtifact } from '../support/artifacts.ts';
import { instantiate, wat } from './wat.ts';

/** Instantiates a module with every function import answering 0. */
function instantiateStubbed(module: WebAssembly.Module): WebAssembly.Instance {
  const imports: Record<string, Record<string, () => number>> = {};
  for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
    if (kind !== 'function') throw new Error(`cannot stub the ${kind} import ${from}.${name}`);
    (imports[from] ??= {})[name] = () => 0;
  }
  return new WebAssembly.Instance(module, imports);
}

const memoryOf = (instance: WebAssembly.Instance) => new Uint8Array((instance.exports.memory as WebAssembly.Memory).buffer);

describe('splitSnapshot', () => {
  it('gives a real konnector engine + snapshot that instantiate to the same memory and globals as the whole module', async () => {
    const artifact = await readComponentArtifact(await buildOnce(fixtureDir('sandbox-probe')));
    const modules: Uint8Array[] = [];
    mapCoreModules(artifactComponent(artifact), (module) => (modules.push(module), module));
    const split = modules.map((module) => splitSnapshot(module));
    // The engine's main module is pre-initialized; the small adapter modules have no memory of their own.
    expect(split.filter((s) => s !== null)).toHaveLength(1);
    const index = split.findIndex((s) => s !== null);
    const { engine, snapshot } = split[index]!;

    const whole = instantiateStubbed(new WebAssembly.Module(modules[index] as Uint8Array<ArrayBuffer>));
    const fromEngine = instantiateStubbed(new WebAssembly.Module(engine));
    expect(memoryOf(fromEngine).length).toBe(0);
    applySnapshot(fromEngine, snapshot);
    expect(memoryOf(fromEngine).length).toBe(memoryOf(whole).length);
    expect(Buffer.compare(memoryOf(fromEngine), memoryOf(whole))).toBe(0);
    expect(snapshot.data.length).toBeGreaterThan(1024 * 1024);
    expect(snapshot.globals.map((g) => g.value)).toContain(1_048_576); // the guest's stack pointer
    expect((fromEngine.exports.konnector_fuel as WebAssembly.Global).value).toBe((whole.exports.konnector_fuel as WebAssembly.Global).value);
  });

  const splittable = `(memory (export "memory") 2) (global $sp (mut i32) (i32.const 4096)) (global (export "g64") (mut i64) (i64.const -5))
    (data (i32.const 100) "hello") (data (i32.const 70000) "world")
    (func (export "sp") (result i32) global.get $sp)`;

  it('puts the data, the memory size and every global back into an instance of the engine', async () => {
    const split = splitSnapshot(await wat(`(module ${splittable})`))!;
    expect(split.snapshot.memory).toEqual({ exportName: 'memory', pages: 2 });
    expect(split.snapshot.segments).toEqual([100, 5, 70000, 5]);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(split.engine));
    expect((instance.exports.sp as () => number)()).toBe(0);
    applySnapshot(instance, split.snapshot);
    expect((instance.exports.sp as () => number)()).toBe(4096);
    expect((instance.exports.g64 as WebAssembly.Global).value).toBe(-5n);
    expect(Buffer.from(memoryOf(instance).subarray(100, 105)).toString()).toBe('hello');
    expect(Buffer.from(memoryOf(instance).subarray(70000, 70005)).toString()).toBe('world');
    expect(memoryOf(instance).length).toBe(2 * 65536);
  });

  it('keeps the image in shared memory: a worker it is posted to reads the same bytes, not a copy', async () => {
    const { snapshot } = splitSnapshot(await wat(`(module ${splittable})`))!;
    expect(snapshot.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    const { port1, port2 } = new MessageChannel();
    const received = new Promise<Snapshot>((resolve) => port2.once('message', resolve));
    port1.postMessage(snapshot);
    const posted = await received;
    port1.close();
    posted.data[0] = 0x21;
    expect(snapshot.data[0]).toBe(0x21);
    expect(Buffer.from(snapshot.data.subarray(1, 5)).toString()).toBe('ello');
  });

  it('merges segments less than 1 KiB apart, in the order the module writes them', async () => {
    const split = splitSnapshot(await wat(`(module (memory (export "memory") 1)
      (data (i32.const 100) "hello") (data (i32.const 110) "world") (data (i32.const 2000) "far") (data (i32.const 101) "J"))`))!;
    expect(split.snapshot.segments).toEqual([100, 15, 2000, 3, 101, 1]);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(split.engine));
    applySnapshot(instance, split.snapshot);
    expect(Buffer.from(memoryOf(instance).subarray(100, 115)).toString()).toBe('hJllo\0\0\0\0\0world');
    expect(Buffer.from(memoryOf(instance).subarray(2000, 2003)).toString()).toBe('far');
  });

  it.each([
    ['a start function, which would run before the snapshot is in', `(module ${splittable} (func $init) (start $init))`],
    ['an immutable global, which the snapshot could not set', '(module (memory (export "memory") 1) (global i32 (i32.const 7)))'],
    ['a passive data segment', '(module (memory (export "memory") 1) (data "x"))'],
    ['a memory it does not export', '(module (memory 1) (data (i32.const 0) "x"))'],
    ['an imported memory', '(module (import "env" "memory" (memory 1)) (data (i32.const 0) "x"))'],
    ['a data offset read from a global', '(module (import "env" "base" (global i32)) (memory (export "memory") 1) (data (global.get 0) "x"))'],
  ])('leaves whole a module with %s', async (_, text) => {
    expect(splitSnapshot(await wat(text))).toBeNull();
  });
});

describe('separateComponent', () => {
  it('takes a real konnector apart into the engine splitSnapshot gives and each module\'s own sections, and joinComponent puts it back byte for byte', async () => {
    const component = artifactComponent(await readComponentArtifact(await buildOnce(fixtureDir('sandbox-probe'))));
    const { engine, own } = separateComponent(component);
    expect([...own.keys()]).toHaveLength(1);
    const [index, part] = [...own][0]!;
    const modules: Uint8Array[] = [];
    mapCoreModules(engine, (module) => (modules.push(module), module));
    const whole: Uint8Array[] = [];
    mapCoreModules(component, (module) => (whole.push(module), module));
    expect(Buffer.compare(modules[index]!, splitSnapshot(whole[index]!)!.engine)).toBe(0);
    // The own part is the snapshot, not the engine's code.
    expect(part.length).toBeLessThan(whole[index]!.length - modules[index]!.length + 1024 * 1024);
    expect(Buffer.compare(joinComponent(engine, own), component)).toBe(0);
  });
});

describe('deltaOwnSections', () => {
  const PAGE = 4096;
  const page = (byte: (i: number) => number) => Uint8Array.from({ length: PAGE }, (_, i) => byte(i));
  /** A module of one memory and one data segment holding `pages` end to end at address 0. */
  const ownOf = (...pages: Uint8Array[]) => {
    const data = [...Buffer.concat(pages)].map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
    return wat(`(module (memory (export "memory") 1) (data (i32.const 0) "${data}"))`);
  };
  const dataOf = (module: Uint8Array) => new Uint8Array((instantiate(module as Uint8Array<ArrayBuffer>).memory as WebAssembly.Memory).buffer);

  const shared = page((i) => (i * 7) % 251);
  const sdk = page((i) => (i * 13) % 241);
  const changed = Uint8Array.from(sdk, (b, i) => (i % 400 === 0 ? b ^ 0x5a : b));
  const unlike = page((i) => (i * 31 + 17) % 256);
  const referenceOf = () => ownOf(shared, sdk, page((i) => i % 3));

  it('XORs the pages the reference mostly predicts, keeps the others as they are, and is undone byte for byte', async () => {
    const [own, reference] = [await ownOf(shared, changed, unlike), await referenceOf()];
    const delta = deltaOwnSections(own, reference);
    const stored = dataOf(delta.slice());
    expect(stored.subarray(0, PAGE).every((b) => b === 0)).toBe(true);
    expect(stored.subarray(PAGE, 2 * PAGE).filter((b) => b !== 0)).toHaveLength(Math.ceil(PAGE / 400));
    expect(Buffer.compare(stored.subarray(2 * PAGE, 3 * PAGE), unlike)).toBe(0);
    expect(Buffer.compare(undoDeltaOwnSections(delta.slice(), reference), own)).toBe(0);
  });

  it('gives the same snapshot read from the delta as from the own sections: segments apart, unaligned, a step back', async () => {
    const escaped = (bytes: Uint8Array) => [...bytes].map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
    const segments: [number, Uint8Array][] = [
      [3, shared.subarray(3, 101)],
      [203, shared.subarray(203, 4001)],
      [4101, changed.subarray(5, 3000)],
      [150, Uint8Array.of(1, 2, 3)],
      [9000, unlike.subarray(0, 77)],
    ];
    const own = await wat(`(module (memory (export "memory") 1) ${segments.map(([at, bytes]) => `(data (i32.const ${at}) "${escaped(bytes)}")`).join(' ')})`);
    const reference = await referenceOf();
    const fromDelta = snapshotOfOwnSections(deltaOwnSections(own, reference), 0, reference)!;
    const instance = new WebAssembly.Instance(new WebAssembly.Module(splitSnapshot(own)!.engine));
    applySnapshot(instance, fromDelta);
    expect(Buffer.compare(memoryOf(instance), dataOf(own))).toBe(0);
    expect(fromDelta.segments).toEqual(snapshotOfOwnSections(own, 0)!.segments);
  });

  it('refuses to undo what is not a delta', async () => {
    const [own, reference] = [await ownOf(shared), await referenceOf()];
    expect(() => undoDeltaOwnSections(own, reference)).toThrow(/a delta ends with its one konnector-snapshot-delta section/);
  });
});
