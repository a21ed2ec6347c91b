/**
 * What a capability says of itself, so that the runner derives its plumbing from the list of them
 * (host-api/index.ts) instead of restating the WIT: the import allow-list, the bundle's externals, the
 * worker's imports object, the bridge's operations and their dispatch, the limits and the report's budgets.
 *
 * A capability is one WIT interface, answered either by the host (one instance per job, reached over the
 * synchronous bridge, runner/sandbox/bridge.ts) or inside the sandbox's worker thread (stateless: clock,
 * randomness). Its functions are typed from jco's declarations of the WIT (wit/types, npm run wit-types), so a
 * function added to the WIT does not type-check until its capability answers it.
 */
import type { z } from 'zod';
import type { ImportObject } from '../wit/types/konnector.js';
import type { ConnectTo } from './http/policy.ts';
import type { LogLevel, LogLine } from './log.ts';

/** A WIT interface of the konnector world, versioned as a konnector's source imports it: `cozy:konnector/http@0.1.0`. */
export type WorldInterface = keyof ImportObject;

/** An interface's short name, its key among a job's capabilities and in the bridge's operations: `http`. */
export type ShortName<I extends string> = I extends `${string}/${infer Name}@${string}` ? Name : I extends `${string}/${infer Name}` ? Name : never;

export function shortName<I extends string>(name: I): ShortName<I> {
  return name.replace(/^.*\//, '').replace(/@.*$/, '') as ShortName<I>;
}

/** The interface as the component's glue names it, without its version: what the loader allows. */
export const unversioned = (name: string): string => name.replace(/@.*$/, '');

/** One budget of a job in its report: what it used against its limit. */
export interface BudgetUsage {
  used: number;
  limit: number;
}

/** Everything a job gives its capabilities: whose data, which konnector, and the host's wiring. */
export interface JobScope {
  /** CouchDB base URL (credentials in it are used, never shown). */
  couchUrl: string;
  /** The Cozy instance domain. */
  instance: string;
  accountId: string;
  /** The account's fields: the konnector's folder is named after the account. */
  fields: Record<string, unknown>;
  /** The konnector's manifest, the parts its capabilities read. */
  manifest: {
    slug: string;
    name: string;
    version?: string;
    permissions: Record<string, { type: string; verbs?: string[] }>;
    folders?: ReadonlyArray<{ defaultDir?: unknown }>;
    fields?: Record<string, unknown>;
    allowed_hosts?: string[];
  };
  /** Where file contents are stored (`<filesDir>/<instance>/<path>`); without it the konnector cannot save files. */
  filesDir?: string;
  /** The vendor session the account's previous job kept; read while the konnector starts. */
  session: Promise<string | undefined>;
  /** The operator's network settings for http: allowed hosts, --connect-to, DNS, extra CAs. */
  network: {
    operatorAllowedHosts?: string[];
    connectTo?: ConnectTo[];
    resolve?: (host: string) => Promise<string[]>;
    extraCaCertificates?: string[];
  };
  /** The runner's own lines about the job (refusals, warnings), in the job's log. */
  note(level: LogLevel, message: string): void;
  /** Every line of the job's log, as it is written. */
  onLog?: (line: LogLine) => void;
}

/** What a CouchDB-backed capability takes from the job's scope (job-scope.ts's jobScopeSchema). */
export function couchScope(scope: JobScope) {
  return { couchUrl: scope.couchUrl, instance: scope.instance, slug: scope.manifest.slug, appVersion: scope.manifest.version, accountId: scope.accountId };
}

/** How the host answers one function of its interface. */
export interface HostFunction<Instance, Args extends unknown[], Result> {
  /**
   * Whether the guest waits for the answer: a call over the synchronous bridge. A function that returns
   * nothing may instead be a notice, posted without waiting (its failures end the job, never the guest's call).
   */
  blocks: [Result] extends [void] ? boolean : true;
  /**
   * Its arguments as the WIT types them: what the host checks a call against before answering it. jco's glue
   * lifts a component's arguments to these types already; an engine whose guest hands the host JSON
   * (runner/quickjs/host-calls.ts) gets them checked here, by the same dispatcher.
   */
  params: z.ZodType<Args, z.ZodTypeDef, unknown>;
  answer(instance: Instance, ...args: Args): Result | Promise<Result>;
}

/** The host's side of every function of a WIT interface, as jco's declarations (`Wit`) type them. */
export type HostFunctions<Wit, Instance> = {
  [F in keyof Wit]: Wit[F] extends (...args: infer A) => infer R ? HostFunction<Instance, A, R> : never;
};

/** A failure the guest gets as its call's WIT `error` (its `kind` and `message`), rather than the job ending. */
export type WitErrorClass = abstract new (...args: never[]) => Error & { kind: string };

/** A capability the host answers, with one instance per job. */
export interface HostCapability<I extends WorldInterface = WorldInterface, Instance = unknown, Limits = unknown, Budget extends string = string> {
  answeredBy: 'host';
  interface: I;
  functions: HostFunctions<ImportObject[I], Instance>;
  /** The errors its functions hand to the guest. */
  error?: WitErrorClass;
  /** Its per-job limits, with the defaults an operator's limits file overrides (runner/limits.ts). */
  limits: z.ZodType<Limits, z.ZodTypeDef, unknown>;
  create(scope: JobScope, limits: Limits): Instance;
  /** Its budgets in the job's report. */
  usage(instance: Instance, limits: Limits): Record<Budget, BudgetUsage>;
}

/**
 * A capability answered inside the sandbox's worker thread, without a round trip to the host: stateless, with
 * no budget. The worker imports `module` (light: it is loaded in every worker) and takes its default export.
 */
export interface WorkerCapability<Functions extends object = object> {
  answeredBy: 'worker';
  /** Versioned when it is one of the world's; an interface the engine imports (wasi) is named as the glue names it. */
  interface: WorldInterface | `wasi:${string}`;
  /** The module holding this descriptor: `import.meta.url`. */
  module: string;
  functions: Functions;
}

/** Any capability: each has its own instance and limits types. */
export type Capability = HostCapability<WorldInterface, any, any> | WorkerCapability;

/** A host capability's descriptor, its instance and limits types checked against the WIT and each other. */
export function hostCapability<I extends WorldInterface, Instance, Limits, Budget extends string>(
  descriptor: Omit<HostCapability<I, Instance, Limits, Budget>, 'answeredBy'>,
): HostCapability<I, Instance, Limits, Budget> {
  return { answeredBy: 'host', ...descriptor };
}

export function workerCapability<Functions extends object>(descriptor: Omit<WorkerCapability<Functions>, 'answeredBy'>): WorkerCapability<Functions> {
  return { answeredBy: 'worker', ...descriptor };
}
