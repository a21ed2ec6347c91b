/**
 * The sandbox's plumbing of the konnector world, derived from the capabilities' descriptors
 * (host-api/index.ts) rather than restated: the interfaces a component may import, those a konnector's source
 * may import, what the worker builds a component's imports object from, the bridge's operations and the
 * dispatch of each to the capability that answers it.
 */
import { shortName, unversioned, type HostCapability, type HostFunction, type ShortName, type WitErrorClass } from '../../host-api/capability.ts';
import { CAPABILITIES, HOST_CAPABILITIES, type JobCapabilities } from '../../host-api/index.ts';
import { describeIssues } from '../../host-api/schema-issues.ts';
import type { HostAnswer } from './bridge.ts';

/** Interfaces a konnector component may import, unversioned as the glue names them: the loader's allow-list. */
export const ALLOWED_IMPORTS = new Set(CAPABILITIES.map((capability) => unversioned(capability.interface)));

/** The world's interfaces, versioned as a konnector's source imports them: the bundle's externals (not the engine's wasi). */
export const WORLD_IMPORTS: string[] = CAPABILITIES.map((capability) => capability.interface).filter((name) => !name.startsWith('wasi:'));

type OpsOf<C> = C extends HostCapability<infer I> ? `${ShortName<I>}.${keyof C['functions'] & string}` : never;

/** A host function the guest calls over the bridge: `<interface>.<function>`, as `http.send` or `log.write`. */
export type HostOp = OpsOf<(typeof HOST_CAPABILITIES)[number]>;

/**
 * What a worker builds each component's imports object from, by interface as the glue names it: the bridge
 * operations of a host-answered interface's functions, or the module of one answered in the worker. Plain
 * data, the worker's workerData: the worker does not load the host's capabilities.
 */
export type GuestImports = Array<
  | { name: string; answeredBy: 'host'; functions: Array<{ name: string; op: HostOp; blocks: boolean }> }
  | { name: string; answeredBy: 'worker'; module: string }
>;

export const GUEST_IMPORTS: GuestImports = CAPABILITIES.map((capability) => {
  const name = unversioned(capability.interface);
  if (capability.answeredBy === 'worker') return { name, answeredBy: 'worker', module: capability.module };
  const functions = Object.entries(capability.functions as Record<string, HostFunction<unknown, unknown[], unknown>>);
  return {
    name,
    answeredBy: 'host',
    functions: functions.map(([fn, { blocks }]) => ({ name: fn, op: `${shortName(capability.interface)}.${fn}` as HostOp, blocks })),
  };
});

interface Route {
  capability: keyof JobCapabilities;
  fn: HostFunction<unknown, unknown[], unknown>;
  error: WitErrorClass | undefined;
}

const routes = new Map<string, Route>(
  (HOST_CAPABILITIES as readonly HostCapability[]).flatMap((capability) =>
    Object.entries(capability.functions as Record<string, Route['fn']>).map(([fn, answer]): [string, Route] => [
      `${shortName(capability.interface)}.${fn}`,
      { capability: shortName(capability.interface) as keyof JobCapabilities, fn: answer, error: capability.error },
    ]),
  ),
);

/**
 * Answers one host call with the job's capability: `ok` with its result for a call the guest waits on, its
 * WIT error as `err`, nothing for a notice. Arguments the WIT does not allow (the function's `params`) are
 * `invalid` for a call, the guest's TypeError. Anything else it throws (a spent budget, a notice with invalid
 * arguments...) ends the job.
 */
export async function dispatch(op: HostOp, args: unknown[], caps: JobCapabilities): Promise<HostAnswer | undefined> {
  const route = routes.get(op);
  if (!route) throw new Error(`unknown host call ${String(op)}`);
  const checked = route.fn.params.safeParse(args);
  if (!checked.success) {
    const message = `${op}: arguments the WIT does not allow:\n${describeIssues(checked.error)}`;
    if (route.fn.blocks) return { invalid: message };
    throw new TypeError(message);
  }
  try {
    const result = await route.fn.answer(caps[route.capability], ...checked.data);
    return route.fn.blocks ? { ok: result } : undefined;
  } catch (error) {
    if (route.fn.blocks && route.error && error instanceof route.error) return { err: { kind: error.kind, message: error.message } };
    throw error;
  }
}
