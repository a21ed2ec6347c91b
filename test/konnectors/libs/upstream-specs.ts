/**
 * Runs cozy-konnector-libs' own Jest spec files against the guest SDK, under
 * vitest, through a mechanical adaptation:
 *
 * - the spec's source is parsed (acorn) and its top-level `jest.mock(...)`
 *   calls hoisted above everything else, as babel-jest does;
 * - it becomes the body of a function, bundled with the SDK by the guest
 *   harness and run in the harness's sandbox-like context (see
 *   guest-harness.ts): its `require` maps upstream's module paths onto the
 *   SDK's modules (UPSTREAM_MODULES), `jest` is vitest's `vi`, and `describe`,
 *   `it`, `expect`... are vitest's;
 * - every SDK module is reached through a wrapper whose exports are live
 *   bindings, so that `jest.mock('./saveFiles')` replaces `saveFiles` for the
 *   SDK's own modules too (saveBills calls the mock), as Jest's module registry
 *   does for upstream's.
 *
 * A test the SDK answers differently from upstream, for a reason the project
 * stands by, is listed with that reason (see upstream-specs.test.ts) and run as
 * `it.fails`: it must keep failing, so the list cannot go stale.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import * as acorn from 'acorn';
import type * as esbuild from 'esbuild';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { repoRoot } from '../../support/artifacts.ts';
import { createTestHost, loadGuest, witError, type TestHost } from '../guest-harness.ts';

const libsDir = path.join(repoRoot, 'konnectors/libs');

/**
 * What an upstream module path stands for: one export of an SDK module, a whole SDK module, a package as the
 * guest has it (ADAPTERS), or upstream's test utilities on the harness (jestRuntime).
 */
type Target = { sdk: string; export: string } | { sdk: string; whole: true } | { adapter: keyof typeof ADAPTERS } | { harness: 'testUtils' };

/**
 * A RegExp made in the guest's realm is not `instanceof RegExp` here, and vitest's matchers test that:
 * matcher arguments are remade in this realm.
 */
function inThisRealm(value: unknown): unknown {
  return Object.prototype.toString.call(value) === '[object RegExp]' && !(value instanceof RegExp)
    ? new RegExp((value as RegExp).source, (value as RegExp).flags)
    : value;
}

/** vitest's `expect` whose matchers take the guest's RegExps (`.not`, `.resolves`, `.rejects` included). */
function realmExpect(): typeof expect {
  const adapt = (assertion: object): object =>
    new Proxy(assertion, {
      get(target, member, receiver) {
        const value = Reflect.get(target, member, receiver) as unknown;
        if (typeof value === 'function') return (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(target, args.map(inThisRealm));
        return value !== null && typeof value === 'object' ? adapt(value) : value;
      },
    });
  const call = (actual: unknown, message?: string) => adapt(expect(actual, message));
  // expect.assertions, expect.any... are vitest's own.
  return new Proxy(call, { get: (_target, member) => Reflect.get(expect, member) as unknown }) as unknown as typeof expect;
}

/** Upstream modules (paths under its `src/`, without extension, or package names) -> the SDK. */
const UPSTREAM_MODULES: Record<string, Target> = {
  'libs/BaseKonnector': { sdk: 'BaseKonnector', export: 'BaseKonnector' },
  'libs/CookieKonnector': { sdk: 'CookieKonnector', export: 'CookieKonnector' },
  'libs/addData': { sdk: 'addData', export: 'addData' },
  'libs/cozyclient': { sdk: 'cozyClient', export: 'cozyClient' },
  'libs/document': { sdk: 'Document', export: 'Document' },
  'libs/hydrateAndFilter': { sdk: 'hydrateAndFilter', export: 'hydrateAndFilter' },
  'libs/manifest': { sdk: 'manifest', export: 'manifest' },
  'libs/normalizeFilename': { sdk: 'normalizeFilename', export: 'normalizeFilename' },
  'libs/request': { sdk: 'request', export: 'requestFactory' },
  'libs/request/request': { sdk: 'request', whole: true },
  'libs/saveBills': { sdk: 'saveBills', export: 'saveBills' },
  'libs/saveFiles': { sdk: 'saveFiles', export: 'saveFiles' },
  'libs/saveIdentity': { sdk: 'saveIdentity', whole: true },
  'libs/scrape': { sdk: 'scrape', export: 'scrape' },
  'libs/signin': { sdk: 'signin', export: 'signin' },
  'libs/updateOrCreate': { sdk: 'updateOrCreate', export: 'updateOrCreate' },
  'libs/utils': { sdk: 'utils', export: 'utils' },
  'helpers/errors': { sdk: 'errors', export: 'errors' },
  'libs/testUtils': { harness: 'testUtils' },
  cheerio: { adapter: 'cheerio' },
  'cozy-logger': { adapter: 'cozy-logger' },
  'cozy-client': { adapter: 'cozy-client' },
  'request-promise/errors': { adapter: 'request-promise/errors' },
};

/** Packages upstream's specs use, as the guest has them (built in the bundle, so of the guest's realm). */
const ADAPTERS = {
  cheerio: `import * as cheerio from 'cheerio'; export default cheerio;`,
  // cozy-logger is the SDK's log; levels only filter what Jest prints, the job's log keeps every line.
  'cozy-logger': `import { log } from 'sdk-module:log'; export default Object.assign((...args) => log(...args), { namespace: log.namespace, setLevel() {} });`,
  'cozy-client': `import { cozyClient } from 'sdk-module:cozyClient'; export default { models: cozyClient.new.models };`,
  'request-promise/errors': `import { RequestError, StatusCodeError } from 'sdk-module:exceptions'; export default { RequestError, StatusCodeError };`,
};

const EXPORT_DECLARATION = /^export (?:async )?(?:function\*?|class|const|let) ([A-Za-z_$][\w$]*)/gm;

/** An SDK module whose exports are live bindings the adaptation can replace (`__mock.set`). */
async function mockableModule(name: string): Promise<string> {
  const file = path.join(libsDir, `${name}.js`);
  const names = [...(await readFile(file, 'utf8')).matchAll(EXPORT_DECLARATION)].map((match) => match[1]!);
  return [
    `import * as real from ${JSON.stringify(file)};`,
    ...names.map((exported) => `export let ${exported} = real.${exported};`),
    `export const __mock = {`,
    `  names: ${JSON.stringify(names)},`,
    `  set(name, value) {`,
    `    switch (name) {`,
    ...names.map((exported) => `      case ${JSON.stringify(exported)}: ${exported} = value; return;`),
    `    }`,
    `    throw new Error(${JSON.stringify(`konnectors/libs/${name}.js has no export `)} + name);`,
    `  },`,
    `};`,
  ].join('\n');
}

/** Resolves the SDK's imports of its own modules, and `sdk-module:<name>`, to the mockable wrappers. */
const mockableSdk: esbuild.Plugin = {
  name: 'upstream-specs',
  setup(build) {
    build.onResolve({ filter: /^sdk-module:/ }, (args) => ({ path: args.path.slice('sdk-module:'.length), namespace: 'sdk-module' }));
    build.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (args.namespace !== 'file' || path.dirname(args.importer) !== libsDir) return undefined;
      const target = path.resolve(args.resolveDir, args.path);
      if (path.dirname(target) !== libsDir || !target.endsWith('.js')) return undefined;
      return { path: path.basename(target, '.js'), namespace: 'sdk-module' };
    });
    build.onLoad({ filter: /.*/, namespace: 'sdk-module' }, async (args) => ({ contents: await mockableModule(args.path), resolveDir: libsDir, loader: 'js' }));
    build.onResolve({ filter: /^adapter:/ }, (args) => ({ path: args.path.slice('adapter:'.length), namespace: 'upstream-adapter' }));
    build.onLoad({ filter: /.*/, namespace: 'upstream-adapter' }, (args) => ({
      contents: ADAPTERS[args.path as keyof typeof ADAPTERS],
      resolveDir: repoRoot,
      loader: 'js',
    }));
  },
};

/** The globals a Jest spec gets, in the order the spec's function takes them. */
const SPEC_PARAMETERS = [
  'require', 'module', 'exports', 'jest', 'describe', 'it', 'test', 'expect',
  'beforeEach', 'afterEach', 'beforeAll', 'afterAll', 'setImmediate', 'process', 'global',
] as const;

/** The spec's source with its top-level `jest.mock(...)` statements first, as babel-jest hoists them. */
function hoistJestMocks(source: string): string {
  const program = acorn.parse(source, { ecmaVersion: 'latest', sourceType: 'script', allowHashBang: true });
  const isJestMock = (node: acorn.Statement | acorn.ModuleDeclaration) =>
    node.type === 'ExpressionStatement' &&
    node.expression.type === 'CallExpression' &&
    node.expression.callee.type === 'MemberExpression' &&
    node.expression.callee.object.type === 'Identifier' &&
    node.expression.callee.object.name === 'jest' &&
    node.expression.callee.property.type === 'Identifier' &&
    node.expression.callee.property.name === 'mock';
  const mocks = program.body.filter(isJestMock);
  let rest = source;
  for (const node of [...mocks].reverse()) rest = `${rest.slice(0, node.start)}${rest.slice(node.end)}`;
  return `${mocks.map((node) => source.slice(node.start, node.end)).join('\n')}\n${rest}`;
}

/** The guest code of one spec: the SDK's modules, the adapters, and the spec as a function. */
function specModule(specSource: string): string {
  const sdkNames = [...new Set(['context', ...Object.values(UPSTREAM_MODULES).flatMap((target) => ('sdk' in target ? [target.sdk] : []))])];
  return [
    ...sdkNames.map((name) => `import * as sdk_${name} from 'sdk-module:${name}';`),
    ...Object.keys(ADAPTERS).map((name, index) => `import adapter_${index} from 'adapter:${name}';`),
    `export const sdk = { ${sdkNames.map((name) => `${name}: sdk_${name}`).join(', ')} };`,
    `export const guestGlobal = globalThis;`,
    `export const adapters = { ${Object.keys(ADAPTERS).map((name, index) => `${JSON.stringify(name)}: adapter_${index}`).join(', ')} };`,
    `export function runSpec(${SPEC_PARAMETERS.join(', ')}) {`,
    hoistJestMocks(specSource),
    `}`,
  ].join('\n');
}

interface SpecBundle {
  guestGlobal: typeof globalThis;
  sdk: Record<string, Record<string, unknown> & { __mock: { names: string[]; set(name: string, value: unknown): void } }>;
  adapters: Record<string, unknown>;
  runSpec(...args: unknown[]): void;
}

/**
 * What `require` of a module nothing maps gives: a function failing, naming the module, when called
 * (its members too), so that only the tests using it fail.
 */
function unmapped(key: string): unknown {
  const fail = () => {
    throw new Error(`${key} is not mapped onto the SDK by the adaptation of upstream's specs (test/konnectors/upstream-specs.ts)`);
  };
  return new Proxy(fail, {
    get: (_target, member) => (typeof member === 'string' ? unmapped(`${key}.${member}`) : undefined),
    apply: fail,
    construct: fail,
  });
}

/** Jest's automock: functions become mock functions, objects are walked. */
function automock(value: unknown): unknown {
  if (typeof value === 'function') return Object.assign(vi.fn(), automockMembers(value));
  if (value !== null && typeof value === 'object') return automockMembers(value);
  return value;
}

function automockMembers(value: object): Record<string, unknown> {
  return Object.fromEntries(Object.keys(value).map((key) => [key, automock((value as Record<string, unknown>)[key])]));
}

/** A module key as upstream's spec names it: `libs/x` for `./x` required from `src/libs/`, a package name as is. */
function moduleKey(specDir: string, request: string): string {
  if (!request.startsWith('.')) return request;
  return path.posix.join(specDir, request).replace(/\.js$/, '');
}

/** The spec's mock of upstream's `./cozyclient` module, once `jest.mock` made it. */
interface CozyClientMock {
  current?: { data?: { findAll?: (doctype: string) => unknown; query?: (...args: unknown[]) => unknown } };
}

/**
 * The documents host of a spec's guest, answered by the spec's cozy-client mock: what upstream's specs
 * have `cozy.data.findAll` (else `cozy.data.query`, page after page) answer is what the SDK's `find` reads.
 */
function documentsFromCozyMock(cozy: CozyClientMock): TestHost['documents'] {
  return {
    async find(doctype) {
      const data = cozy.current?.data;
      // A mock function the spec gave no answer returns undefined: then the other one is the spec's.
      const all = typeof data?.findAll === 'function' ? await data.findAll(doctype) : undefined;
      if (all !== undefined) return JSON.stringify(all);
      if (typeof data?.query === 'function') {
        const docs: unknown[] = [];
        for (;;) {
          const page = (await data.query(doctype)) as { docs?: unknown[]; next?: boolean } | undefined;
          docs.push(...(page?.docs ?? []));
          if (!page?.next) return JSON.stringify(docs);
        }
      }
      throw witError('forbidden', "the spec's cozy-client mock has neither data.findAll nor data.query");
    },
    async save() {
      throw witError('forbidden', "upstream's specs check writes on their cozy-client mock, which the SDK does not use");
    },
  };
}

/** The Jest globals of one spec run, bound to its bundle: `require`, `jest` (mocks set the SDK's bindings). */
function jestRuntime(bundle: SpecBundle, specDir: string, cozy: CozyClientMock) {
  const mocks = new Map<string, unknown>();
  const context = bundle.sdk.context as unknown as { beginJob(job: unknown): void; endJob(): void };
  /** Upstream's test utilities the specs use, on the SDK: COZY_* variables are what a job brings here. */
  const testUtils = {
    mockEnvVariables(variables: Record<string, string>) {
      const { account, fields } = JSON.parse(variables.COZY_FIELDS ?? '{}') as { account?: string; fields?: Record<string, unknown> };
      const parameters = JSON.parse(variables.COZY_PARAMETERS ?? '{}') as Record<string, unknown>;
      beforeEach(() => context.beginJob({ jobId: 'upstream-spec', accountId: account ?? '', fields: fields ?? {}, parameters, manifest: {} }));
      afterEach(() => context.endJob());
    },
    asyncResolve: <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), 0)),
  };
  const actual = (key: string): unknown => {
    const target = UPSTREAM_MODULES[key];
    if (!target) return unmapped(key);
    if ('adapter' in target) return bundle.adapters[target.adapter];
    if ('harness' in target) return testUtils;
    const namespace = bundle.sdk[target.sdk]!;
    if ('export' in target) return namespace[target.export];
    return Object.fromEntries(namespace.__mock.names.map((name) => [name, namespace[name]]));
  };
  const require = (request: string) => {
    const key = moduleKey(specDir, request);
    return mocks.has(key) ? mocks.get(key) : actual(key);
  };
  const jest = {
    fn: vi.fn,
    spyOn: vi.spyOn,
    clearAllMocks: () => vi.clearAllMocks(),
    resetAllMocks: () => vi.resetAllMocks(),
    restoreAllMocks: () => vi.restoreAllMocks(),
    useFakeTimers: () => vi.useFakeTimers(),
    useRealTimers: () => vi.useRealTimers(),
    requireActual: (request: string) => actual(moduleKey(specDir, request)),
    mock(request: string, factory?: () => unknown) {
      const key = moduleKey(specDir, request);
      const value = factory ? factory() : automock(actual(key));
      mocks.set(key, value);
      if (key === 'libs/cozyclient') cozy.current = value as CozyClientMock['current'];
      const target = UPSTREAM_MODULES[key];
      if (!target || !('sdk' in target)) return;
      const namespace = bundle.sdk[target.sdk]!;
      if ('export' in target) namespace.__mock.set(target.export, value);
      else for (const [name, member] of Object.entries(value as object)) if (namespace.__mock.names.includes(name)) namespace.__mock.set(name, member);
    },
  };
  return { require, jest };
}

/** The name of the test standing for a spec file, or a suite, whose body throws. */
const LOADING = '(loading the spec file)';

/** Upstream's tests whose outcome differs here: spec file -> full test name -> why. */
export type KnownDifferences = Record<string, Record<string, string>>;

/** Every `*.spec.js` under the package's `src/`, as paths relative to it. */
export async function listSpecs(packageDir: string): Promise<string[]> {
  const entries = await readdir(path.join(packageDir, 'src'), { recursive: true });
  return entries.filter((entry) => entry.endsWith('.spec.js')).map((entry) => entry.split(path.sep).join('/')).sort();
}

/**
 * Loads one upstream spec (a path under `src/`) and registers its tests in the
 * current vitest suite; `differences` are that spec's known differences, and
 * `registered` receives every full test name.
 */
export async function loadUpstreamSpec(packageDir: string, spec: string): Promise<(differences: Record<string, string>, registered: string[]) => void> {
  const source = await readFile(path.join(packageDir, 'src', spec), 'utf8');
  const cozy: CozyClientMock = {};
  const guest = await loadGuest({ code: specModule(source) }, createTestHost({ documents: documentsFromCozyMock(cozy) }), [mockableSdk]);
  const bundle = guest.exports as unknown as SpecBundle;
  return (differences, registered) => {
    const { require, jest } = jestRuntime(bundle, path.posix.dirname(spec), cozy);
    // vitest runs a suite's body after its parent's returned: each suite keeps the path it was declared at.
    let suitePath: string[] = [];
    const fullName = (name: string) => [...suitePath, name].join(' > ');
    // Jest fails a whole file, or suite, whose body throws: here that is one failing test, which can be listed.
    const failedLoading = (error: unknown) =>
      specIt(LOADING, () => {
        throw error;
      });
    const suite = (register: typeof describe | typeof describe.skip) => (name: string, body: () => void) => {
      const declaredAt = [...suitePath, name];
      register(name, () => {
        const outer = suitePath;
        suitePath = declaredAt;
        try {
          body();
        } catch (error) {
          failedLoading(error);
        } finally {
          suitePath = outer;
        }
      });
    };
    const specDescribe = Object.assign(suite(describe), { skip: suite(describe.skip) });
    const specIt = (name: string, body?: () => unknown, timeout?: number) => {
      const full = fullName(name);
      registered.push(full);
      (differences[full] === undefined ? it : it.fails)(name, body, timeout);
    };
    const module = { exports: {} };
    try {
      bundle.runSpec(
        require, module, module.exports, jest, specDescribe, specIt, specIt, realmExpect(),
        beforeEach, afterEach, beforeAll, afterAll, (callback: () => void) => setTimeout(callback, 0), { env: {} }, bundle.guestGlobal,
      );
    } catch (error) {
      failedLoading(error);
    }
  };
}
