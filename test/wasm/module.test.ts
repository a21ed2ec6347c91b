import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  binaryKind,
  constExpr,
  ComponentSectionId,
  encodeComponent,
  encodeData,
  encodeDataCount,
  encodeExports,
  encodeGlobals,
  encodeMemories,
  encodeModule,
  encodeStart,
  findSection,
  mapCoreModules,
  readComponent,
  readData,
  readDataCount,
  readExports,
  readGlobals,
  readImports,
  readMemories,
  readModule,
  readStart,
  readTypes,
  SectionId,
  setSection,
  WasmError,
  type Section,
} from '../../runner/wasm/index.ts';
import { call, componentizeJsFile, instantiate, wat } from './wat.ts';

/** The real StarlingMonkey engine that componentize-js splices konnectors into (~10 MB). */
const engine = readFileSync(componentizeJsFile('lib/starlingmonkey_embedding.wasm'));

function expectWasmError(run: () => unknown, kind: WasmError['kind'], message: RegExp): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(WasmError);
  expect((caught as WasmError).kind).toBe(kind);
  expect((caught as WasmError).message).toMatch(message);
}


describe('core module framing', () => {
  it('decodes and re-encodes the real engine to identical bytes', () => {
    const sections = readModule(engine);
    expect(sections.map((s) => s.id)).toEqual(expect.arrayContaining([1, 2, 3, 5, 6, 7, 10, 11]));
    expect(Buffer.compare(encodeModule(sections), engine)).toBe(0);
    // Without the raw bytes, every section is re-framed from its payload: still identical (canonical sizes).
    expect(Buffer.compare(encodeModule(sections.map(({ id, payload }) => ({ id, payload }))), engine)).toBe(0);
  });

  it('re-encodes every decoded section of the engine to its original payload', () => {
    const sections = readModule(engine);
    const original = (id: number) => Buffer.from(findSection(sections, id)!.payload);
    const same = (section: Section, id: number) => expect(original(id).equals(section.payload)).toBe(true);
    same(encodeMemories(readMemories(findSection(sections, SectionId.memory))), SectionId.memory);
    same(encodeGlobals(readGlobals(findSection(sections, SectionId.global))), SectionId.global);
    same(encodeExports(readExports(findSection(sections, SectionId.export))), SectionId.export);
    const data = readData(findSection(sections, SectionId.data));
    same(encodeData(data), SectionId.data);
    const dataCount = readDataCount(findSection(sections, SectionId.dataCount));
    expect(dataCount).toBe(data.length);
    same(encodeDataCount(dataCount!), SectionId.dataCount);
    const imports = readImports(findSection(sections, SectionId.import));
    expect(imports.some((i) => i.module === 'wasi_snapshot_preview1' && i.desc.kind === 'func')).toBe(true);
    expect(readTypes(findSection(sections, SectionId.type)).length).toBeGreaterThan(10);
  });

  it('keeps a padded section size byte for byte, and re-frames a replaced section canonically', () => {
    // Type section () -> () framed with a 5-byte padded size LEB, then a function section.
    const padded = Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x01, 0x84, 0x80, 0x80, 0x80, 0x00, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b);
    expect(WebAssembly.validate(padded)).toBe(true);
    const sections = readModule(padded);
    expect(Buffer.compare(encodeModule(sections), padded)).toBe(0);
    const reframed = encodeModule(sections.map(({ id, payload }) => ({ id, payload })));
    expect(reframed.length).toBe(padded.length - 4);
    expect(WebAssembly.validate(reframed)).toBe(true);
  });

  it('decodes and encodes start, exports, globals, memories and data of a small module', async () => {
    const bytes = await wat(`(module
      (memory 1 3)
      (global $g (mut i32) (i32.const -7)) (global f64 (f64.const 1.5)) (global i64 (i64.const 3))
      (func $s) (start $s)
      (func (export "f"))
      (export "m" (memory 0)) (export "g" (global $g))
      (data (i32.const 16) "hi") (data "passive"))`);
    const sections = readModule(bytes);
    expect(readMemories(findSection(sections, SectionId.memory))).toEqual([{ min: 1, max: 3, shared: false, index64: false }]);
    const globals = readGlobals(findSection(sections, SectionId.global));
    expect(globals.map((g) => [g.type.name, g.mutable, Buffer.from(g.init).toString('hex')])).toEqual([
      ['i32', true, '41790b'],
      ['f64', false, '44000000000000f83f0b'],
      ['i64', false, '42030b'],
    ]);
    expect(readStart(findSection(sections, SectionId.start))).toBe(0);
    expect(readExports(findSection(sections, SectionId.export))).toEqual([
      { name: 'f', kind: 'func', index: 1 },
      { name: 'm', kind: 'memory', index: 0 },
      { name: 'g', kind: 'global', index: 0 },
    ]);
    const data = readData(findSection(sections, SectionId.data));
    expect(data.map((d) => [d.mode, Buffer.from(d.bytes).toString()])).toEqual([
      ['active', 'hi'],
      ['passive', 'passive'],
    ]);
    // A module rebuilt from decoded pieces is valid and behaves as written.
    let rebuilt = setSection(sections, SectionId.start, encodeStart(1));
    rebuilt = setSection(rebuilt, SectionId.data, encodeData([data[1]!, data[0]!]));
    rebuilt = setSection(rebuilt, SectionId.global, encodeGlobals(globals.map((g, i) => (i === 0 ? { ...g, init: constExpr('i32', 99) } : g))));
    const exports = instantiate(encodeModule(rebuilt));
    expect(Buffer.from((exports.m as WebAssembly.Memory).buffer, 16, 2).toString()).toBe('hi');
    expect((exports.g as WebAssembly.Global).value).toBe(99);
  });

  it('decodes the limits of shared and 64-bit memories', () => {
    const memories = readMemories({ id: SectionId.memory, payload: Uint8Array.of(0x02, 0x03, 0x01, 0x04, 0x04, 0x80, 0x01) });
    expect(memories).toEqual([
      { min: 1, max: 4, shared: true, index64: false },
      { min: 128, shared: false, index64: true },
    ]);
    expect(Buffer.from(encodeMemories(memories).payload).toString('hex')).toBe('02030104048001');
  });

  it('decodes extended-const and SIMD initializers', () => {
    const globals = readGlobals({
      id: SectionId.global,
      payload: Uint8Array.of(0x02, 0x7e, 0x00, 0x42, 0x01, 0x42, 0x02, 0x7c, 0x0b, 0x7b, 0x00, 0xfd, 0x0c, ...new Array(16).fill(7), 0x0b),
    });
    expect(globals.map((g) => [g.type.name, g.init.length])).toEqual([
      ['i64', 6],
      ['v128', 19],
    ]);
  });

  it('inserts a missing section at its canonical place, before trailing custom sections', async () => {
    const bytes = await wat(`(module (memory 1) (func (export "size") (result i32) memory.size) (@custom "trailer" "x"))`);
    const sections = readModule(bytes);
    const withData = setSection(sections, SectionId.data, encodeData([{ mode: 'active', memory: 0, offset: Uint8Array.of(0x41, 0x00, 0x0b), bytes: Uint8Array.of(42) }]));
    expect(withData.map((s) => s.id)).toEqual([1, 3, 5, 7, 10, 11, 0]);
    expect(call(instantiate(encodeModule(withData)), 'size')).toBe(1);
    expect(setSection(withData, SectionId.data, null).map((s) => s.id)).toEqual([1, 3, 5, 7, 10, 0]);
  });

  it('rejects malformed modules with the offset of the problem', () => {
    const header = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
    expectWasmError(() => readModule(Uint8Array.of(0x00, 0x61, 0x73, 0x6e, 1, 0, 0, 0)), 'malformed', /missing the "\\0asm" magic/);
    expectWasmError(() => readModule(Uint8Array.of(...header.slice(0, 4), 2, 0, 0, 0)), 'malformed', /unknown WebAssembly binary version 2/);
    expectWasmError(() => readModule(Uint8Array.of(...header, 0x01, 0x05, 0x01)), 'malformed', /5 bytes announced but only 1 remain \(at byte offset 10\)/);
    expectWasmError(() => readModule(Uint8Array.of(...header, 0x03, 0x01, 0x00, 0x01, 0x01, 0x00)), 'malformed', /section id 1 is duplicated or out of order/);
    expectWasmError(() => readModule(Uint8Array.of(...header, 0x0e, 0x00)), 'malformed', /unknown section id 14/);
    // A memory section with a trailing byte.
    const memory = readModule(Uint8Array.of(...header, 0x05, 0x04, 0x01, 0x00, 0x01, 0xff));
    expectWasmError(() => readMemories(findSection(memory, SectionId.memory)), 'malformed', /1 unexpected trailing bytes after the memory section \(at byte offset 13\)/);
    // A data segment with invalid flags.
    const data = readModule(Uint8Array.of(...header, 0x0b, 0x02, 0x01, 0x07));
    expectWasmError(() => readData(findSection(data, SectionId.data)), 'malformed', /invalid data segment flags 7/);
    // Reading a global initializer that is not constant.
    expectWasmError(() => readGlobals({ id: 6, payload: Uint8Array.of(0x01, 0x7f, 0x00, 0x20, 0x00, 0x0b) }), 'malformed', /0x20 is not allowed in a constant expression/);
  });

  it('reports custom page sizes as unsupported rather than guessing', () => {
    expectWasmError(() => readMemories({ id: 5, payload: Uint8Array.of(0x01, 0x08, 0x01, 0x10) }), 'unsupported', /custom page sizes/);
  });
});

describe('components', () => {
  const componentText = `(component
    (core module $a (func (export "answer") (result i32) i32.const 41))
    (core module $b (memory 1))
    (component $nested (core module $c (func (export "answer") (result i32) i32.const 7))))`;

  it('tells components from modules and iterates their sections', async () => {
    const component = await wat(componentText);
    expect(binaryKind(component)).toBe('component');
    expect(binaryKind(await wat('(module)'))).toBe('module');
    const sections = readComponent(component);
    expect(sections.filter((s) => s.id === ComponentSectionId.coreModule)).toHaveLength(2);
    expect(sections.filter((s) => s.id === ComponentSectionId.component)).toHaveLength(1);
    expect(Buffer.compare(encodeComponent(sections), component)).toBe(0);
    expectWasmError(() => readModule(component), 'malformed', /expected a core WebAssembly module but got a component/);
    expectWasmError(() => readComponent(engine), 'malformed', /expected a WebAssembly component but got a core module/);
  });

  it('replaces embedded core modules, nested ones included, in depth-first order', async () => {
    const component = await wat(componentText);
    const seen: number[] = [];
    const replacement = await wat(`(module (func (export "answer") (result i32) i32.const 42))`);
    const rewritten = mapCoreModules(component, (module, index) => {
      seen.push(index);
      expect(binaryKind(module)).toBe('module');
      return index === 0 || index === 2 ? replacement : module;
    });
    expect(seen).toEqual([0, 1, 2]);
    const answers: number[] = [];
    mapCoreModules(rewritten, (module) => {
      const exports = instantiate(new Uint8Array(module));
      if (exports.answer) answers.push(call(exports, 'answer') as number);
      return module;
    });
    expect(answers).toEqual([42, 42]);
    // Untouched modules are kept byte for byte, and so is the whole component when nothing changes.
    expect(mapCoreModules(component, (module) => module)).toBe(component);
    const second = (bytes: Uint8Array) => readComponent(bytes).filter((s) => s.id === ComponentSectionId.coreModule)[1]!.payload;
    expect(Buffer.from(second(rewritten))).toEqual(Buffer.from(second(component)));
  });

  it('rejects an unknown component section', () => {
    const bytes = Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0x0d, 0x00);
    expectWasmError(() => readComponent(bytes), 'malformed', /unknown component section id 13/);
  });
});
