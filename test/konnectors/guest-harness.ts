/**
 * Runs guest code (a konnector and the SDK in konnectors/libs) in plain Node,
 * without compiling a component: the code is bundled with the options of
 * `konnector build`, the `cozy:konnector/*` imports are bound to a test host,
 * and the bundle runs in a fresh `node:vm` context that has only the web
 * globals the StarlingMonkey guest has (no process, require, Buffer, fetch,
 * console; timers as the build's prelude gives them), so a use of a Node API
 * fails here as it would in the sandbox.
 *
 * The host is the runner's own where it matters: HTTP goes through
 * host-api/http (its cookie jar, redirects and egress policy) to real servers
 * on 127.0.0.1 that the test maps vendor names to, as the operator's
 * --connect-to does; documents and files go through `createDocuments` and
 * `createFiles` to a CouchDB-API server and a directory. Its calls are
 * asynchronous where the component's are blocking; the SDK awaits every host
 * call, so both work.
 */
import vm from 'node:vm';
import * as esbuild from 'esbuild';
import { createDocuments, DocumentsError, type Documents } from '../../host-api/documents.ts';
import { createFiles, FilesError, type Files } from '../../host-api/files/index.ts';
import { createHttp, HttpError, parseConnectTo, type HttpRequest, type HttpResponse } from '../../host-api/http/index.ts';
import { entryModuleSource, GUEST_RESOLUTION } from '../../runner/compile/bundle.ts';
import { WORLD_IMPORTS } from '../../runner/sandbox/capabilities.ts';
import { defaultLimits } from '../../runner/limits.ts';
import { repoRoot } from '../support/artifacts.ts';
import { startTestServer, type TestServer } from '../support/http-server.ts';
import { pdf } from '../support/pdf.ts';


/** What `run` throws on failure: the WIT `failure` record. */
export interface Failure {
  code: string;
  message: string;
}

export interface LogLine {
  level: string;
  message: string;
}

/** The host side, as the guest sees it; every method may return a promise. */
export interface TestHost {
  http: { send(req: HttpRequest): Promise<HttpResponse>; keepSession?(keep: boolean): void };
  documents: { save(doctype: string, doc: string): Promise<string>; find(doctype: string, selector: string, limit: number): Promise<string> };
  files: { save(path: string, content: Uint8Array, replace: boolean): Promise<string>; stat(path: string): Promise<string | undefined> };
  log: { write(level: string, message: string): void };
  clock: { now(): bigint };
}

/** A WIT `err` as the component glue hands it to the guest. */
export function witError(kind: string, message: string): { payload: { kind: string; message: string } } {
  return { payload: { kind, message } };
}

// ---------------------------------------------------------------------------
// HTTP

export interface TestHttpOptions {
  /**
   * "host:port" as the guest names it -> a port on 127.0.0.1 (--connect-to
   * host:port:127.0.0.1:port). Other hosts are refused, as by an operator's
   * allowed hosts: a test reaches its own servers only.
   */
  connectTo: Record<string, number>;
  /** Every request the guest sent, for assertions. */
  sent?: HttpRequest[];
}

/** The runner's http capability with its default limits, its errors turned into WIT `err`s. */
export function createTestHttp(opts: TestHttpOptions): TestHost['http'] {
  const connectTo = Object.entries(opts.connectTo).map(([hostPort, port]) => parseConnectTo(`${hostPort}:127.0.0.1:${port}`));
  const http = createHttp({
    limits: defaultLimits.http,
    connectTo,
    operatorAllowedHosts: connectTo.map((mapped) => mapped.host),
    // A mapped name on a port the test did not map is never looked up in the real DNS.
    resolve: async (host) => {
      throw new Error(`${host} has no address in tests`);
    },
  });
  return {
    send(req) {
      opts.sent?.push(req);
      return asWit(() => http.send(req));
    },
    keepSession: (keep) => http.keepSession(keep),
  };
}

/**
 * A vendor's file store on 127.0.0.1: GET /<name>.pdf answers `pdf('<name>')`, /empty.pdf an empty body,
 * /login-page.pdf an HTML page (what a vendor sends when the session is gone), /missing.pdf a 404.
 */
export function startFileServer(): Promise<TestServer> {
  return startTestServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://files.invalid');
    if (pathname === '/missing.pdf') return res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    if (pathname === '/empty.pdf') return res.writeHead(200, { 'content-type': 'application/pdf' }).end();
    if (pathname === '/login-page.pdf') {
      return res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html><html><body><form id="login"></form></body></html>');
    }
    res.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf(pathname.slice(1)));
  });
}

// ---------------------------------------------------------------------------
// Documents

export interface TestDocumentsOptions {
  couchUrl: string;
  /** A fresh instance name isolates a test's databases. */
  instance: string;
  accountId: string;
  permissions: Record<string, { type: string; verbs?: string[] }>;
  maxFindLimit?: number;
}

/** The runner's documents host, with its errors turned into WIT `err`s. */
export function createTestDocuments(opts: TestDocumentsOptions): { host: TestHost['documents']; documents: Documents } {
  const documents = createDocuments({
    couchUrl: opts.couchUrl,
    instance: opts.instance,
    slug: 'example-bills',
    accountId: opts.accountId,
    permissions: opts.permissions,
    limits: { maxDocuments: 1000, maxDocumentBytes: 1024 * 1024, maxFindLimit: opts.maxFindLimit ?? 1000 },
  });
  return {
    documents,
    host: {
      save: (doctype, doc) => asWit(() => documents.save(doctype, doc)),
      find: (doctype, selector, limit) => asWit(() => documents.find(doctype, selector, limit)),
    },
  };
}

/** A host call whose typed errors reach the guest as WIT `err`s, as the sandbox turns them. */
async function asWit<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof DocumentsError || error instanceof FilesError || error instanceof HttpError) throw witError(error.kind, error.message);
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Files

export interface TestFilesOptions {
  couchUrl: string;
  instance: string;
  accountId: string;
  /** The konnector's folder; undefined: the manifest grants none. */
  folderPath: string | undefined;
  filesDir: string;
  limits?: { maxFileBytes: number; maxTotalBytes: number; maxFiles: number };
}

/** The runner's files host, with its errors turned into WIT `err`s. */
export function createTestFiles(opts: TestFilesOptions): { host: TestHost['files']; files: Files } {
  const files = createFiles({
    couchUrl: opts.couchUrl,
    instance: opts.instance,
    slug: 'example-bills',
    accountId: opts.accountId,
    folderPath: opts.folderPath,
    filesDir: opts.filesDir,
    limits: opts.limits ?? { maxFileBytes: 1024 * 1024, maxTotalBytes: 16 * 1024 * 1024, maxFiles: 100 },
  });
  return {
    files,
    host: {
      // The bytes come from the guest's realm; the sandbox's bridge hands the host its own copy.
      save: (path, content, replace) => asWit(() => files.save(path, new Uint8Array(content), replace)),
      stat: (path) => asWit(() => files.stat(path)),
    },
  };
}

// ---------------------------------------------------------------------------
// Guest

export interface GuestJob {
  jobId?: string;
  accountId?: string;
  fields?: Record<string, unknown> | string;
  parameters?: Record<string, unknown> | string;
  /** The konnector's manifest (default `{}`). */
  manifest?: Record<string, unknown> | string;
  /** The response-size limit the guest holds decoded bodies to (default: the runner's). */
  maxResponseBytes?: number;
}

export interface Guest {
  /** The component's `run` export: resolves on success, rejects with a Failure. */
  run(job?: GuestJob): Promise<void>;
  /** The konnector module's exports (for test konnectors that export helpers). */
  exports: Record<string, unknown>;
}

export type GuestSource = { file: string } | { code: string };

/**
 * The bundle as `konnector build` makes it: the konnector's module, then the
 * SDK runtime's `runJob` when it created a BaseKonnector, else its own `run`.
 */
export async function bundleGuest(source: GuestSource, extraPlugins: esbuild.Plugin[] = []): Promise<string> {
  const konnectorPath = 'file' in source ? source.file : 'virtual:konnector';
  const entry = `${entryModuleSource(konnectorPath)}\nexport { konnector };`;
  const plugin: esbuild.Plugin = {
    name: 'guest-harness',
    setup(build) {
      build.onResolve({ filter: /^virtual:konnector$/ }, () => ({ path: 'konnector', namespace: 'virtual' }));
      build.onLoad({ filter: /.*/, namespace: 'virtual' }, () => ({
        contents: 'code' in source ? source.code : '',
        loader: 'js',
        resolveDir: repoRoot,
      }));
      // The world's interfaces become reads of the test host, installed as a global of the context.
      build.onResolve({ filter: /^cozy:konnector\// }, (args) => {
        const name = /^cozy:konnector\/([a-z]+)@0\.1\.0$/.exec(args.path)?.[1];
        if (!name || !WORLD_IMPORTS.includes(args.path)) {
          return { errors: [{ text: `${args.path} is not an interface of the konnector world (the version suffix @0.1.0 is required)` }] };
        }
        return { path: name, namespace: 'cozy-host' };
      });
      build.onLoad({ filter: /.*/, namespace: 'cozy-host' }, (args) => ({
        contents: `const host = globalThis.__cozyHost.${args.path};\n` +
          Object.keys(hostShape[args.path as keyof typeof hostShape]).map((fn) => `export const ${fn} = (...args) => host.${fn}(...args);`).join('\n'),
        loader: 'js',
      }));
    },
  };
  const result = await esbuild.build({
    ...GUEST_RESOLUTION,
    // An IIFE, so that the vm needs no module linker; same resolution as the ESM build.
    format: 'iife',
    globalName: '__guest',
    external: [],
    stdin: { contents: entry, resolveDir: repoRoot, sourcefile: 'konnector-entry.js', loader: 'js' },
    // The extra plugins resolve first (upstream's spec files map their modules onto the SDK's).
    plugins: [...extraPlugins, plugin],
    write: false,
    logLevel: 'silent',
    absWorkingDir: repoRoot,
  });
  return result.outputFiles[0]!.text;
}

const hostShape = { http: { send: 0, keepSession: 0 }, documents: { save: 0, find: 0 }, files: { save: 0, stat: 0 }, log: { write: 0 }, clock: { now: 0 } };

/**
 * TextEncoder/TextDecoder built inside the context, so that the bytes they
 * make are the context's own Uint8Array (instanceof works as in the guest).
 */
const CONTEXT_PRELUDE = `
globalThis.TextEncoder = class TextEncoder {
  get encoding() { return 'utf-8'; }
  encode(text = '') { return new Uint8Array(__node.encode(String(text))); }
};
globalThis.TextDecoder = class TextDecoder {
  constructor(label = 'utf-8', options = {}) { this.label = label; this.fatal = !!options.fatal; }
  get encoding() { return 'utf-8'; }
  decode(bytes) { return __node.decode(bytes, this.label, this.fatal); }
};
`;

const bundles = new Map<string, Promise<string>>();

/**
 * Loads a bundle (built once per source and plugins) in a fresh context whose globals are web ones only.
 * `plugins`: esbuild plugins the bundle is built with, before the harness's own.
 */
export async function loadGuest(source: GuestSource, host: TestHost, plugins: esbuild.Plugin[] = []): Promise<Guest> {
  const key = `${'file' in source ? `file:${source.file}` : `code:${source.code}`}:${plugins.map((plugin) => plugin.name).join(',')}`;
  if (!bundles.has(key)) bundles.set(key, bundleGuest(source, plugins));
  const code = await bundles.get(key)!;
  const context = vm.createContext({
    URL,
    URLSearchParams,
    structuredClone,
    atob,
    btoa,
    crypto: globalThis.crypto,
    // The engine's streams and zlib, which the SDK decodes gzip and deflate bodies with.
    ReadableStream,
    DecompressionStream,
    // What the build's prelude gives a konnector on the host clock (runner/compile/guest-prelude.js).
    setTimeout: (callback: () => void, ms?: number) => setTimeout(callback, ms),
    clearTimeout: (timer: ReturnType<typeof setTimeout>) => clearTimeout(timer),
    __node: {
      encode: (text: string) => new TextEncoder().encode(text),
      decode: (bytes: Uint8Array, label: string, fatal: boolean) => new TextDecoder(label, { fatal }).decode(bytes),
    },
  });
  vm.runInContext(CONTEXT_PRELUDE, context);
  const Uint8ArrayInGuest = vm.runInContext('Uint8Array', context) as Uint8ArrayConstructor;
  context.__cozyHost = {
    ...host,
    http: {
      // Bytes handed to the guest are the guest realm's own, as the component glue makes them.
      async send(req: HttpRequest) {
        const res = await host.http.send(req);
        return { ...res, body: new Uint8ArrayInGuest(res.body) };
      },
      keepSession: (keep: boolean) => host.http.keepSession?.(keep),
    },
  };
  vm.runInContext(code, context, { filename: 'konnector.bundle.js' });
  const guest = context.__guest as { run(job: unknown): unknown; konnector: Record<string, unknown> };
  return {
    exports: guest.konnector,
    async run(job = {}) {
      const asJson = (value: Record<string, unknown> | string | undefined) =>
        typeof value === 'string' ? value : JSON.stringify(value ?? {});
      await guest.run({
        jobId: job.jobId ?? 'job-1',
        accountId: job.accountId ?? 'account-1',
        fields: asJson(job.fields),
        parameters: asJson(job.parameters),
        manifest: asJson(job.manifest),
        maxResponseBytes: BigInt(job.maxResponseBytes ?? defaultLimits.http.maxResponseBytes),
      });
    },
  };
}

export interface TestHostOptions {
  http?: TestHttpOptions;
  documents?: TestHost['documents'];
  files?: TestHost['files'];
}

/** A host whose log lines are kept; HTTP, documents and files refuse everything unless given. */
export function createTestHost(opts: TestHostOptions = {}): TestHost & { logs: LogLine[] } {
  const logs: LogLine[] = [];
  return {
    logs,
    http: opts.http ? createTestHttp(opts.http) : { send: async () => { throw witError('denied', 'no HTTP in this test'); } },
    documents: opts.documents ?? {
      save: async () => { throw witError('forbidden', 'no documents in this test'); },
      find: async () => { throw witError('forbidden', 'no documents in this test'); },
    },
    files: opts.files ?? {
      save: async () => { throw witError('forbidden', 'no files in this test'); },
      stat: async () => { throw witError('forbidden', 'no files in this test'); },
    },
    log: { write: (level, message) => void logs.push({ level, message }) },
    clock: { now: () => BigInt(Date.now()) },
  };
}
