import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { UsageError } from '../errors.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const preludePath = fileURLToPath(new URL('./guest-prelude.js', import.meta.url));
const processStandIn = fileURLToPath(new URL('./guest-process.js', import.meta.url));
const guestLibsDir = path.join(repoRoot, 'konnectors/libs');

/** The host interfaces a konnector may import (the world's imports). */
export const WORLD_IMPORTS = ['http', 'documents', 'files', 'log', 'clock'].map((name) => `cozy:konnector/${name}@0.1.0`);

/** Where a konnector's entry may be, after package.json `main`: the catalog's webpack layout first, as the Cozy build does. */
const ENTRY_CANDIDATES = ['src/index.js', 'src/index.ts', 'index.js', 'index.ts'];

/** The konnector's entry file: package.json `main`, else src/index.js, else index.js (TypeScript entries too). */
async function entryFile(konnectorDir: string): Promise<string> {
  const tried: string[] = [];
  try {
    const pkg = JSON.parse(await readFile(path.join(konnectorDir, 'package.json'), 'utf8')) as { main?: unknown };
    if (typeof pkg.main === 'string') tried.push(`${pkg.main} (package.json "main")`);
    if (typeof pkg.main === 'string' && (await exists(path.resolve(konnectorDir, pkg.main)))) return path.resolve(konnectorDir, pkg.main);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UsageError('source', `${konnectorDir}/package.json: ${(error as Error).message}`);
    }
  }
  for (const candidate of ENTRY_CANDIDATES) {
    if (await exists(path.join(konnectorDir, candidate))) return path.join(konnectorDir, candidate);
    tried.push(candidate);
  }
  throw new UsageError('source', `no konnector entry in ${konnectorDir}: tried ${tried.join(', ')} (set "main" in package.json or add src/index.js)`);
}

const exists = (file: string) => stat(file).then((info) => info.isFile(), () => false);

const MAX_SHOWN_ERRORS = 10;

function formatMessages(messages: esbuild.Message[]): string {
  const shown = messages.slice(0, MAX_SHOWN_ERRORS).map((m) => {
    const where = m.location ? `${m.location.file}:${m.location.line}:${m.location.column + 1}: ` : '';
    const hint = m.notes.map((n) => n.text).filter(Boolean);
    return `  ${where}${m.text}${hint.length ? ` (${hint.join(' ')})` : ''}`;
  });
  const hidden = messages.length - shown.length;
  return [...shown, ...(hidden > 0 ? [`  ... and ${hidden} more`] : [])].join('\n');
}

/** Refuses, at its import statement, any host module the world does not provide. */
const worldImportsOnly: esbuild.Plugin = {
  name: 'world-imports-only',
  setup(build) {
    build.onResolve({ filter: /^(cozy|wasi|fastly|wasmtime):/ }, (args) => {
      if (WORLD_IMPORTS.includes(args.path)) return { path: args.path, external: true };
      return {
        errors: [
          {
            text: `"${args.path}" is not an interface of the konnector world; it provides ${WORLD_IMPORTS.join(', ')}`,
          },
        ],
      };
    });
  },
};

/** Explains Node built-ins instead of esbuild's bare "could not resolve". */
const noNodeBuiltins: esbuild.Plugin = {
  name: 'no-node-builtins',
  setup(build) {
    const builtins = /^(node:.*|fs|fs\/promises|child_process|net|tls|dgram|dns|http|https|http2|os|path|process|cluster|worker_threads|vm|module|crypto|stream|zlib|util|events|buffer|url|querystring|readline|tty|v8|perf_hooks|async_hooks|inspector|repl|assert|punycode|string_decoder|constants|timers|domain|trace_events)$/;
    build.onResolve({ filter: builtins }, (args) => ({
      errors: [
        {
          text: `"${args.path}" is a Node built-in; konnectors run in a WebAssembly sandbox without Node APIs (use the cozy-konnector-libs API or a pure-JS package)`,
        },
      ],
    }));
  },
};

/** How a konnector's imports resolve inside the guest (shared with the SDK's test harness). */
export const GUEST_RESOLUTION = {
  bundle: true,
  platform: 'neutral',
  target: 'es2022',
  mainFields: ['module', 'main'],
  conditions: ['import', 'require', 'default'],
  alias: {
    'cozy-konnector-libs': path.join(guestLibsDir, 'index.js'),
    // cheerio's default entry pulls in undici and Node streams; its browser
    // entry has the same parse5-based `load` without them.
    cheerio: path.join(repoRoot, 'node_modules/cheerio/dist/browser/index.js'),
  },
} satisfies esbuild.BuildOptions;

/**
 * The component's `run` export: a konnector built on the SDK (it created a
 * BaseKonnector) runs through the SDK's runtime; otherwise its own `run`.
 * Anything it throws becomes a WIT `failure`. `hooks` are statements run
 * before the konnector starts and once its run has settled.
 */
export function entryModuleSource(konnectorModule: string, hooks: { beforeRun?: string; afterRun?: string } = {}): string {
  return [
    `import * as konnector from ${JSON.stringify(konnectorModule)};`,
    `import { runJob, hasKonnector, toFailure } from ${JSON.stringify(path.join(guestLibsDir, 'runtime.js'))};`,
    `function runKonnector(job) {`,
    `  if (hasKonnector()) return runJob(job);`,
    `  if (typeof konnector.run === 'function') return Promise.resolve().then(() => konnector.run(job)).catch((e) => { throw toFailure(e); });`,
    `  throw { code: 'unknown-error', message: 'the konnector neither exports run() nor creates a BaseKonnector' };`,
    `}`,
    `export function run(job) {`,
    `  ${hooks.beforeRun ?? ''}`,
    hooks.afterRun
      ? `  return Promise.resolve().then(() => runKonnector(job)).finally(() => { ${hooks.afterRun} });`
      : `  return runKonnector(job);`,
    `}`,
  ].join('\n');
}

export interface Bundle {
  code: string;
  entry: string;
}

/**
 * Bundles a konnector and its npm dependencies into one ES module whose only
 * imports are the world's interfaces. `cozy-konnector-libs` resolves to our
 * guest SDK, built on those interfaces.
 */
export async function bundleKonnector(dir: string): Promise<Bundle> {
  const konnectorDir = path.resolve(dir);
  const entry = await entryFile(konnectorDir);
  const wrapper = [
    `import { enableHostClock, dropTimers } from ${JSON.stringify(preludePath)};`,
    entryModuleSource(entry, { beforeRun: 'enableHostClock();', afterRun: 'dropTimers();' }),
  ].join('\n');
  let result: esbuild.BuildResult & { outputFiles: esbuild.OutputFile[] };
  try {
    result = await esbuild.build({
      stdin: { contents: wrapper, resolveDir: konnectorDir, sourcefile: 'konnector-entry.js', loader: 'js' },
      ...GUEST_RESOLUTION,
      inject: [processStandIn],
      // What libraries test to drop their development-only code, as other bundlers do.
      define: { 'process.env.NODE_ENV': '"production"' },
      write: false,
      format: 'esm',
      plugins: [worldImportsOnly, noNodeBuiltins],
      logLevel: 'silent',
      legalComments: 'none',
      charset: 'utf8',
      absWorkingDir: repoRoot,
    });
  } catch (error) {
    const failure = error as esbuild.BuildFailure;
    if (!failure.errors) throw error;
    throw new UsageError('source', `cannot bundle the konnector in ${konnectorDir}:\n${formatMessages(failure.errors)}`);
  }
  return { code: result.outputFiles[0]!.text, entry };
}
