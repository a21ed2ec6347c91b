/**
 * A deterministic pre-initializer: a drop-in for the subset of the `wizer`
 * CLI that componentize-js runs (its `wizerBin` option), built on V8 and
 * `node:wasi`. It instantiates the module, runs its initialization function
 * and writes a module whose globals, memories and data segments hold the
 * state the initialization left, like Wizer. Unlike Wizer, the guest sees a
 * seeded random generator and a scripted clock, so the same input gives the
 * same output bytes on every run and every machine.
 *
 * Beside it: layout.ts reads the module and instruments it, wasi.ts is what the guest may call, run.ts runs the
 * initialization and reads the state, rewrite.ts writes that state back as a module, cli.ts is wizer's command line.
 */
import { WasmError } from '../../wasm/index.ts';
import { PreinitError, type PreinitOptions } from './contract.ts';
import { instrument, probedSegments, readLayout } from './layout.ts';
import { rewrite } from './rewrite.ts';
import { run } from './run.ts';

export { PreinitError, type PreinitErrorKind, type PreinitOptions } from './contract.ts';

/**
 * Runs the module's initialization and returns the pre-initialized module.
 * Deterministic: same input and options, same bytes.
 */
export function preinitialize(input: Uint8Array, options: PreinitOptions): Uint8Array<ArrayBuffer> {
  const layout = readLayout(input, options.initFunc);
  const probes = probedSegments(layout);
  const instrumented = instrument(layout, probes);
  let compiled: WebAssembly.Module;
  try {
    compiled = new WebAssembly.Module(instrumented);
  } catch (error) {
    throw new WasmError('malformed', `the input module does not validate: ${(error as Error).message}`);
  }
  const snapshot = run(compiled, layout, probes, options);
  const output = rewrite(layout, snapshot, options.initFunc);
  if (!WebAssembly.validate(output)) {
    throw new PreinitError('invalid-output', 'the pre-initialized module does not validate: this is a bug in runner/compile/preinit/');
  }
  return output;
}
