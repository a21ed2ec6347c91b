/**
 * Runs a konnector component in THIS thread, the way runner/sandbox/guest-worker.ts
 * instantiates it (jco glue, our core modules, WIT imports), but with the
 * fuel counter in reach and deterministic clock and randomness, so the fuel
 * tests and the fuel benchmark can set budgets and read counts. Only for
 * konnectors that compute and log: http and documents calls fail.
 */
import { transpileBytes } from '@bytecodealliance/jco-transpile';
import { FUEL_GLOBAL_EXPORT } from '../../runner/wasm/fuel.ts';

export interface PreparedGuest {
  glue: Glue;
  modules: Record<string, WebAssembly.Module>;
}

interface Glue {
  instantiate(
    getCoreModule: (name: string) => WebAssembly.Module,
    imports: Record<string, Record<string, unknown>>,
    instantiateCore: (module: WebAssembly.Module, imports?: WebAssembly.Imports) => WebAssembly.Instance,
  ): { run(job: { jobId: string; accountId: string; fields: string; parameters: string; manifest: string; environment: [string, string][]; maxResponseBytes: bigint }): unknown };
}

/** Transpiles a component and compiles its core modules (as runner/sandbox/loader.ts does). */
export async function prepareGuest(component: Uint8Array): Promise<PreparedGuest> {
  const transpiled = await transpileBytes(component, {
    name: 'konnector',
    instantiation: 'sync',
    wasiShim: false,
    noComponentErrorWrapping: true,
  });
  const modules: Record<string, WebAssembly.Module> = {};
  for (const [name, bytes] of Object.entries(transpiled.files)) {
    if (name.endsWith('.wasm')) modules[name] = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  }
  const source = Buffer.from(transpiled.files['konnector.js']!).toString('base64');
  const glue = (await import(`data:text/javascript;base64,${source}`)) as Glue;
  return { glue, modules };
}

export interface GuestRun {
  outcome: 'returned' | 'failed' | 'trapped';
  /** The error for failed and trapped runs. */
  error?: unknown;
  logs: string[];
  /** Fuel used: budget minus what is left (more than the budget when exhausted). */
  consumed: bigint;
  /** The counter after the run; below zero means the fuel ran out. */
  remaining: bigint;
}

export interface RunOptions {
  /** Fuel budget; leave out for a guest that is not metered. */
  budget?: bigint;
  /** Fuel the log import charges per byte of message (host work on the guest's behalf). */
  logFuelPerByte?: bigint;
}

/** One job in a fresh component instance. */
export function runGuest(guest: PreparedGuest, fields: Record<string, unknown>, options: RunOptions = {}): GuestRun {
  const logs: string[] = [];
  const fuelGlobals: WebAssembly.Global[] = [];
  let randomState = 0x2545f491n;
  const nextRandom = () => (randomState = (randomState * 6364136223846793005n + 1442695040888963407n) & 0xffff_ffff_ffff_ffffn);
  const refused = () => {
    throw { payload: { kind: 'denied', message: 'this host call is not available in the fuel harness' } };
  };
  const charge = (units: bigint) => {
    for (const global of fuelGlobals) global.value = (global.value as bigint) - units;
  };

  let outcome: GuestRun['outcome'] = 'returned';
  let error: unknown;
  try {
    const given: Record<string, Record<string, unknown>> = {
      'cozy:konnector/log': {
        write: (_level: string, message: string) => {
          logs.push(message);
          if (options.logFuelPerByte) charge(options.logFuelPerByte * BigInt(Buffer.byteLength(message)));
        },
      },
      'cozy:konnector/clock': { now: () => 1_700_000_000_000n, sleep: () => {} },
      'wasi:random/random': {
        getRandomBytes: (len: bigint) => {
          const bytes = new Uint8Array(Number(len));
          for (let i = 0; i < bytes.length; i++) bytes[i] = Number(nextRandom() >> 56n);
          return bytes;
        },
        getRandomU64: nextRandom,
      },
    };
    // Every other interface of the world (http, documents, files...) refuses every call.
    const imports = new Proxy(given, {
      get: (target, name: string) => target[name] ?? new Proxy({}, { get: () => refused }),
    });
    const instance = guest.glue.instantiate(
      (name) => guest.modules[name]!,
      imports,
      (module, imports) => {
        const core = new WebAssembly.Instance(module, imports);
        const fuel = core.exports[FUEL_GLOBAL_EXPORT];
        if (fuel instanceof WebAssembly.Global) fuelGlobals.push(fuel);
        return core;
      },
    );
    if (options.budget !== undefined) for (const global of fuelGlobals) global.value = options.budget;
    instance.run({ jobId: 'fuel-job', accountId: 'fuel-account', fields: JSON.stringify(fields), parameters: '{}', manifest: '{}', environment: [], maxResponseBytes: 0n });
  } catch (caught) {
    error = caught;
    outcome = caught instanceof WebAssembly.RuntimeError ? 'trapped' : 'failed';
  }
  const remaining = fuelGlobals.length > 0 ? (fuelGlobals[0]!.value as bigint) : 0n;
  return { outcome, error, logs, remaining, consumed: options.budget === undefined ? 0n : options.budget - remaining };
}
