import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { UsageError } from '../errors.ts';
import { WORLD_IMPORTS } from '../sandbox/capabilities.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const preludePath = fileURLToPath(new URL('./guest-prelude.js', import.meta.url));
const processStandIn = fileURLToPath(new URL('./guest-process.js', import.meta.url));
const bufferGlobal = fileURLToPath(new URL('./guest-buffer.js', import.meta.url));
const guestLibsDir = path.join(repoRoot, 'konnectors/libs');

/** Where a konnector's entry may be, after package.json `main`: the catalog's webpack layout first, as the Cozy build does. */
const ENTRY_CANDIDATES = ['src/index.js', 'src/index.ts', 'index.js', 'index.ts'];

/** The konnector's entry file: package.json `main`, else src/index.js, else index.js (TypeScript entries too). */
async function entryFile(konnectorDir: string): Promise<string> {
  const tried: string[] = [];
  try {
    const pkg = JSON.parse(await readFile(path.join(konnectorDir, 'package.json'), 'utf8')) as { main?: unknown };
    if (typeof pkg.main === 'string') {
      const main = path.resolve(konnectorDir, pkg.main);
      if (await exists(main)) return main;
      tried.push(`${pkg.main} (package.json "main")`);
    }
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

const stdlib = createRequire(import.meta.url)('node-stdlib-browser') as Record<string, string | null>;
const resolvePackage = createRequire(path.join(repoRoot, 'package.json')).resolve;

/** Node built-ins given to konnectors as webpack 4 gave them: the pure-JS versions node-stdlib-browser points to. */
const POLYFILLED_BUILTINS = ['assert', 'buffer', 'constants', 'crypto', 'domain', 'events', 'os', 'path', 'punycode',
  'querystring', 'stream', 'string_decoder', 'sys', 'timers', 'timers/promises', 'url', 'util', 'zlib',
  '_stream_duplex', '_stream_passthrough', '_stream_readable', '_stream_transform', '_stream_writable'];

/** Node built-ins a sandbox cannot have: they build, and fail when called (runner/compile/guest-unavailable.js). */
const UNAVAILABLE_BUILTINS = ['fs', 'fs/promises', 'child_process', 'net', 'tls', 'dgram', 'dns', 'http2',
  'cluster', 'worker_threads', 'vm', 'module', 'readline', 'repl', 'tty', 'v8', 'perf_hooks', 'async_hooks', 'inspector', 'trace_events'];

const unavailablePath = fileURLToPath(new URL('./guest-unavailable.js', import.meta.url));

/** `http` and `https` on the host's http.send (runner/compile/guest-http.js). */
const GUEST_HTTP_BUILTINS = ['http', 'https'];
const guestHttpPath = fileURLToPath(new URL('./guest-http.js', import.meta.url));

/**
 * Packages whose whole job is to provide `fetch` (a konnector's own copy included: in the sandbox the only
 * fetch is the host's, runner/compile/guest-fetch.js). isomorphic-fetch came with older cozy-konnector-libs.
 */
const FETCH_PACKAGES = ['node-fetch', 'isomorphic-fetch', 'cross-fetch', 'whatwg-fetch'];
const guestFetchPath = fileURLToPath(new URL('./guest-fetch.js', import.meta.url));

/** Node built-ins: polyfilled, or a module whose functions fail with a named error; `process` is the stand-in. */
const nodeBuiltins: esbuild.Plugin = {
  name: 'node-builtins',
  setup(build) {
    build.onResolve({ filter: new RegExp(`^(${FETCH_PACKAGES.join('|')})$`) }, (args) => ({ path: args.path, namespace: 'guest-fetch' }));
    build.onResolve({ filter: /^(node:)?[a-z_][a-z0-9_]*(\/promises)?$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (name === 'process') return { path: name, namespace: 'guest-process' };
      if (name === 'util' || name === 'sys') return { path: 'util', namespace: 'guest-util' };
      if (POLYFILLED_BUILTINS.includes(name)) return { path: resolvePackage(stdlib[name]!) };
      if (GUEST_HTTP_BUILTINS.includes(name)) return { path: name, namespace: 'guest-http' };
      if (UNAVAILABLE_BUILTINS.includes(name)) return { path: name, namespace: 'unavailable-builtin' };
      if (args.path.startsWith('node:')) return { errors: [{ text: `"${args.path}" is not a Node built-in the konnector sandbox knows` }] };
      return undefined;
    });
    // Node's util, knowing the guest's setTimeout as Node's knows its own: util.promisify(setTimeout) sleeps.
    build.onLoad({ filter: /.*/, namespace: 'guest-util' }, () => ({
      contents: [
        `const util = require(${JSON.stringify(resolvePackage(stdlib.util!))});`,
        'setTimeout[util.promisify.custom] = (delay, value) => new Promise((resolve) => setTimeout(resolve, delay, value));',
        'module.exports = util;',
      ].join('\n'),
      loader: 'js',
      resolveDir: repoRoot,
    }));
    // `require('process')` is Node's process itself, not a module holding it: the stand-in the build injects.
    build.onLoad({ filter: /.*/, namespace: 'guest-process' }, () => ({
      contents: `import { process } from ${JSON.stringify(processStandIn)};\nmodule.exports = process;`,
      loader: 'js',
      resolveDir: repoRoot,
    }));
    build.onLoad({ filter: /.*/, namespace: 'unavailable-builtin' }, (args) => ({
      contents: `import { unavailableBuiltin } from ${JSON.stringify(unavailablePath)};\nmodule.exports = unavailableBuiltin(${JSON.stringify(args.path)});`,
      loader: 'js',
      resolveDir: repoRoot,
    }));
    build.onLoad({ filter: /.*/, namespace: 'guest-fetch' }, () => ({
      contents: `import { fetchModule } from ${JSON.stringify(guestFetchPath)};\nmodule.exports = fetchModule();`,
      loader: 'js',
      resolveDir: repoRoot,
    }));
    build.onLoad({ filter: /.*/, namespace: 'guest-http' }, (args) => ({
      contents: `import { ${args.path} } from ${JSON.stringify(guestHttpPath)};\nmodule.exports = ${args.path};`,
      loader: 'js',
      resolveDir: repoRoot,
    }));
  },
};

/**
 * Packages cozy-konnector-libs brought with it (5.13; moment: its 4.x releases), which catalog konnectors
 * require without declaring them. This project depends on them (pinned); a
 * konnector's own copy wins when its node_modules has one.
 */
export const SDK_PROVIDED_PACKAGES = ['request', 'request-promise', 'request-promise-native', 'bluebird', 'lodash', 'moment', 'date-fns', 'tough-cookie'];
const SDK_PROVIDED_IMPORT = new RegExp(`^(${SDK_PROVIDED_PACKAGES.join('|')})(/.*)?$`);

/**
 * Packages whose browser entry is a web global the guest does not have
 * (form-data's is `window.FormData`): their Node entry, which runs on the
 * polyfilled built-ins, is used instead.
 */
const NODE_ENTRIES: Record<string, string> = { 'form-data': 'lib/form_data.js' };

const nodeEntries: esbuild.Plugin = {
  name: 'node-entries',
  setup(build) {
    build.onResolve({ filter: new RegExp(`^(${Object.keys(NODE_ENTRIES).join('|')})$`) }, async (args) => {
      if (args.pluginData === 'node-entry') return undefined;
      const manifest = await build.resolve(`${args.path}/package.json`, {
        kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: 'node-entry',
      });
      if (manifest.errors.length > 0) return { errors: manifest.errors };
      return { path: path.join(path.dirname(manifest.path), NODE_ENTRIES[args.path]!) };
    });
  },
};

const sdkProvidedPackages: esbuild.Plugin = {
  name: 'sdk-provided-packages',
  setup(build) {
    build.onResolve({ filter: SDK_PROVIDED_IMPORT }, async (args) => {
      if (args.pluginData === 'sdk-provided') return undefined;
      const options = { kind: args.kind, importer: args.importer, pluginData: 'sdk-provided' };
      const own = await build.resolve(args.path, { ...options, resolveDir: args.resolveDir });
      if (own.errors.length === 0) return own;
      const provided = await build.resolve(args.path, { ...options, resolveDir: repoRoot });
      // Neither: the konnector's own resolution error is the one that says what to install.
      return provided.errors.length === 0 ? provided : { errors: own.errors };
    });
  },
};

/** How a konnector's imports resolve inside the guest (shared with the SDK's test harness). */
export const GUEST_RESOLUTION = {
  bundle: true,
  // The guest's globals are web ones: packages' browser entries (and their "browser" maps) are the ones that run there.
  platform: 'browser',
  target: 'es2022',
  mainFields: ['browser', 'module', 'main'],
  // esbuild adds `import` or `require` by how each module is asked for, as Node does: a require() gets a package's CommonJS file.
  conditions: ['browser', 'default'],
  // `require('../manifest.konnector')` for the slug or version, as the Cozy build's json-loader gave it.
  loader: { '.konnector': 'json' },
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
 * before the konnector starts and once its run has settled; with `exportAs`,
 * the function is not exported but named so, for an engine's own `run`.
 */
export function entryModuleSource(konnectorModule: string, hooks: { beforeRun?: string; afterRun?: string; exportAs?: string } = {}): string {
  return [
    `import * as konnector from ${JSON.stringify(konnectorModule)};`,
    `import { runJob, hasKonnector, startJob, toFailure } from ${JSON.stringify(path.join(guestLibsDir, 'runtime.js'))};`,
    `function runKonnector(job) {`,
    `  startJob(job);`,
    `  if (hasKonnector()) return runJob(job);`,
    `  if (typeof konnector.run === 'function') return Promise.resolve().then(() => konnector.run(job)).catch((e) => { throw toFailure(e); });`,
    `  throw { code: 'unknown-error', message: 'the konnector neither exports run() nor creates a BaseKonnector' };`,
    `}`,
    `${hooks.exportAs === undefined ? 'export function run' : `function ${hooks.exportAs}`}(job) {`,
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

/** What differs between engines in a konnector's bundle; everything else (SDK, polyfills, resolution) is shared. */
export interface GuestEngineTarget {
  /** Named in error messages: "cannot bundle the konnector in <dir> for <engine>". */
  engine?: string;
  /** How the world's interfaces (`cozy:konnector/http@0.1.0`...) resolve: external imports of a component, or modules. */
  worldImports: esbuild.Plugin;
  format: 'esm' | 'iife';
  globalName?: string;
  target?: string;
  /** The entry module's `run` export, given the guest's own run function (named `runGuest`); default: `runGuest` is `run`. */
  exportRun?: string;
}

/** A component's bundle: the world's interfaces are the component's imports. */
const COMPONENT_TARGET: GuestEngineTarget = { worldImports: worldImportsOnly, format: 'esm' };

/**
 * Bundles a konnector and its npm dependencies for an engine: `cozy-konnector-libs` resolves to our guest SDK,
 * built on the world's interfaces, Node built-ins to the guest's stand-ins, the prelude (clock, timers, fetch)
 * runs first and `run` is the SDK's entry (entryModuleSource). Only `target` differs between engines.
 */
export async function bundleGuest(dir: string, target: GuestEngineTarget): Promise<Bundle> {
  const konnectorDir = path.resolve(dir);
  const entry = await entryFile(konnectorDir);
  const hooks = { beforeRun: 'enableHostClock(); setJobEnvironment(job.environment);', afterRun: 'dropTimers();' };
  const wrapper = [
    `import { enableHostClock, dropTimers, setJobEnvironment } from ${JSON.stringify(preludePath)};`,
    entryModuleSource(entry, target.exportRun === undefined ? hooks : { ...hooks, exportAs: 'runGuest' }),
    target.exportRun ?? '',
  ].join('\n');
  let result: esbuild.BuildResult & { outputFiles: esbuild.OutputFile[] };
  try {
    result = await esbuild.build({
      stdin: { contents: wrapper, resolveDir: konnectorDir, sourcefile: 'konnector-entry.js', loader: 'js' },
      ...GUEST_RESOLUTION,
      ...(target.target ? { target: target.target } : {}),
      inject: [processStandIn, bufferGlobal],
      // What libraries test to drop their development-only code, as other bundlers do.
      // `global` is Node's name for the global object, as webpack 4 defined it for konnectors' polyfills.
      define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' },
      write: false,
      format: target.format,
      ...(target.globalName ? { globalName: target.globalName } : {}),
      plugins: [target.worldImports, nodeBuiltins, nodeEntries, sdkProvidedPackages],
      logLevel: 'silent',
      legalComments: 'none',
      charset: 'utf8',
      absWorkingDir: repoRoot,
    });
  } catch (error) {
    const failure = error as esbuild.BuildFailure;
    if (!failure.errors) throw error;
    const engine = target.engine ? ` for ${target.engine}` : '';
    throw new UsageError('source', `cannot bundle the konnector in ${konnectorDir}${engine}:\n${formatMessages(failure.errors)}`);
  }
  return { code: result.outputFiles[0]!.text, entry };
}

/**
 * Bundles a konnector and its npm dependencies into one ES module whose only
 * imports are the world's interfaces. `cozy-konnector-libs` resolves to our
 * guest SDK, built on those interfaces.
 */
export function bundleKonnector(dir: string): Promise<Bundle> {
  return bundleGuest(dir, COMPONENT_TARGET);
}
