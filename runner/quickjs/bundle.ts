/**
 * A konnector bundled for the QuickJS engine: the same bundle as the component path's (runner/compile/bundle.ts
 * bundleGuest: the SDK, the prelude, Node built-ins' stand-ins, the same resolution), as one ES2020 script
 * defining a global `konnector` whose `run(job)` the engine calls, preceded by the web globals QuickJS lacks
 * (guest-globals.js). The world's interfaces are modules generated from the capabilities' descriptors
 * (host-api/index.ts): each function calls the engine's one generic host import (guest-host.js). The script is
 * then compiled to bytecode by the engine itself.
 */
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import type { HostFunction } from '../../host-api/capability.ts';
import { shortName } from '../../host-api/capability.ts';
import { CAPABILITIES } from '../../host-api/index.ts';
import { bundleGuest } from '../compile/bundle.ts';
import { WORLD_IMPORTS } from '../sandbox/capabilities.ts';
import { UsageError } from '../errors.ts';
import { compileInEngine } from './instance.ts';
import { FAILURE_OP, FAILURE_PREFIX } from './failure.ts';

const guestHost = fileURLToPath(new URL('./guest-host.js', import.meta.url));
const guestGlobals = fileURLToPath(new URL('./guest-globals.js', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Each world interface as a module over `hostCall`, by its versioned name: derived, never listed here. */
export const HOST_MODULES: Record<string, string> = Object.fromEntries(
  CAPABILITIES.filter((capability) => WORLD_IMPORTS.includes(capability.interface)).map((capability) => {
    const functions = Object.keys(capability.functions as Record<string, HostFunction<unknown, unknown[], unknown>>);
    const lines = functions.map((fn) => `export const ${fn} = (...args) => hostCall(${JSON.stringify(`${shortName(capability.interface)}.${fn}`)}, args);`);
    return [capability.interface, [`import { hostCall } from ${JSON.stringify(guestHost)};`, ...lines].join('\n')];
  }),
);

const hostModules: esbuild.Plugin = {
  name: 'quickjs-host-modules',
  setup(build) {
    build.onResolve({ filter: /^(cozy|wasi|fastly|wasmtime):/ }, (args) => {
      if (args.path in HOST_MODULES) return { path: args.path, namespace: 'quickjs-host' };
      return { errors: [{ text: `"${args.path}" is not an interface of the konnector world; it provides ${Object.keys(HOST_MODULES).join(', ')}` }] };
    });
    build.onLoad({ filter: /.*/, namespace: 'quickjs-host' }, (args) => ({ contents: HOST_MODULES[args.path], loader: 'js', resolveDir: repoRoot }));
  },
};

/** What QuickJS 2021-03-27 parses; esbuild lowers newer syntax. */
const QUICKJS_TARGET = 'es2020';

let globals: Promise<string> | undefined;

/** The web globals QuickJS lacks, as one script (built once per process). */
function globalsScript(): Promise<string> {
  globals ??= esbuild
    .build({ entryPoints: [guestGlobals], bundle: true, format: 'iife', target: QUICKJS_TARGET, platform: 'browser', write: false, logLevel: 'silent', legalComments: 'none', charset: 'utf8', absWorkingDir: repoRoot })
    .then((result) => result.outputFiles[0]!.text);
  return globals;
}

/**
 * Bundles the konnector in `dir` into one script for the engine. A WIT `failure` the konnector ends with is
 * told to the worker on the host call FAILURE_OP, then rejected as FAILURE_PREFIX (failure.ts,
 * runner/quickjs/guest-worker.ts): its message crosses whole, however long, for the host to cut like a log line.
 */
export async function bundleForQuickjs(dir: string): Promise<string> {
  const exportRun = [
    `export function run(job) {`,
    `  return Promise.resolve().then(() => runGuest(job)).catch((failure) => {`,
    `    if (failure && typeof failure === 'object' && typeof failure.code === 'string') {`,
    `      __host.call(JSON.stringify({ op: ${JSON.stringify(FAILURE_OP)}, args: [failure.code, String(failure.message)] }));`,
    `      throw ${JSON.stringify(FAILURE_PREFIX)};`,
    `    }`,
    `    throw failure;`,
    `  });`,
    `}`,
  ].join('\n');
  const [prefix, bundle] = await Promise.all([
    globalsScript(),
    bundleGuest(dir, { engine: 'QuickJS', worldImports: hostModules, format: 'iife', globalName: 'konnector', target: QUICKJS_TARGET, exportRun }),
  ]);
  return `${prefix}\n${bundle.code}`;
}

/** QuickJS bytecode of a bundled script, written by the engine (JS_WriteObject) under node:wasi. */
export function compileToBytecode(engine: WebAssembly.Module, script: string): Uint8Array {
  const result = compileInEngine(engine, script);
  if (result.outcome !== 'returned') throw new UsageError('source', `QuickJS cannot compile the konnector: ${result.error}`);
  return result.output;
}

