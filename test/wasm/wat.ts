import { parse } from '@bytecodealliance/jco-transpile/wasm-tools';

/** Assembles WebAssembly text (a core module or a component) into bytes. */
export async function wat(text: string): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await parse(text));
}

/** Instantiates a core module with the given imports and returns its exports. */
export function instantiate(bytes: Uint8Array<ArrayBuffer>, imports: WebAssembly.Imports = {}): WebAssembly.Exports {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports;
}

/** Calls an exported function and returns what it returned. */
export function call(exports: WebAssembly.Exports, name: string, ...args: number[]): unknown {
  const fn = exports[name];
  if (typeof fn !== 'function') throw new Error(`no exported function ${name}`);
  return (fn as (...a: number[]) => unknown)(...args);
}

/** A file of the installed componentize-js package (its `exports` map hides everything but the API). */
export function componentizeJsFile(path: string): URL {
  return new URL(`../../node_modules/@bytecodealliance/componentize-js/${path}`, import.meta.url);
}
