/**
 * A konnector bundled for the QuickJS engine: one script defining a global
 * `konnector` (its exports), the world's interfaces answered by the engine's
 * host functions (`__host`, see engine-main.c), then compiled to bytecode by
 * the engine itself.
 */
import path from 'node:path';
import * as esbuild from 'esbuild';
import { GUEST_RESOLUTION } from '../compile/bundle.ts';
import { UsageError } from '../errors.ts';
import { compileInEngine } from './instance.ts';

/** The world's interfaces the engine answers so far, as modules over `__host`. */
const HOST_MODULES: Record<string, string> = {
  'cozy:konnector/log@0.1.0': 'export const write = (level, message) => __host.log(level, message);',
  'cozy:konnector/clock@0.1.0': 'export const now = () => BigInt(__host.now());',
};

const hostModules: esbuild.Plugin = {
  name: 'quickjs-host-modules',
  setup(build) {
    build.onResolve({ filter: /^(cozy|wasi|fastly|wasmtime):/ }, (args) => {
      if (args.path in HOST_MODULES) return { path: args.path, namespace: 'quickjs-host' };
      return { errors: [{ text: `"${args.path}" is not available on the QuickJS engine yet; it provides ${Object.keys(HOST_MODULES).join(', ')}` }] };
    });
    build.onLoad({ filter: /.*/, namespace: 'quickjs-host' }, (args) => ({ contents: HOST_MODULES[args.path], loader: 'js' }));
  },
};

/** Bundles the konnector in `dir` (its package.json `main`, else index.js) into one script. */
export async function bundleForQuickjs(dir: string): Promise<string> {
  const konnectorDir = path.resolve(dir);
  try {
    const result = await esbuild.build({
      stdin: { contents: `export * from ${JSON.stringify(konnectorDir)};`, resolveDir: konnectorDir, sourcefile: 'konnector-entry.js', loader: 'js' },
      ...GUEST_RESOLUTION,
      // What QuickJS 2021-03-27 parses; esbuild lowers newer syntax.
      target: 'es2020',
      format: 'iife',
      globalName: 'konnector',
      write: false,
      plugins: [hostModules],
      logLevel: 'silent',
      legalComments: 'none',
      charset: 'utf8',
    });
    return result.outputFiles[0]!.text;
  } catch (error) {
    const failure = error as esbuild.BuildFailure;
    if (!failure.errors) throw error;
    throw new UsageError('source', `cannot bundle the konnector in ${konnectorDir} for QuickJS:\n${failure.errors.map((e) => `  ${e.text}`).join('\n')}`);
  }
}

/** QuickJS bytecode of a bundled script, written by the engine (JS_WriteObject) under node:wasi. */
export function compileToBytecode(engine: WebAssembly.Module, script: string): Uint8Array {
  const result = compileInEngine(engine, script);
  if (result.outcome !== 'returned') throw new UsageError('source', `QuickJS cannot compile the konnector: ${result.error}`);
  return result.output;
}
