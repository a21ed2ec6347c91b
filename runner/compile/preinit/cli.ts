/**
 * The wizer command line componentize-js runs (its `wizerBin` option): the subset it uses, parsed, and the
 * exit status and stderr format it expects.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { z } from 'zod';
import { formatIssues } from '../../../host-api/schema-issues.ts';
import { PreinitError } from './contract.ts';
import { preinitialize } from './index.ts';

const InvocationSchema = z
  .object({
    input: z.string().min(1),
    output: z.string().min(1),
    initFunc: z.string().min(1),
    allowWasi: z.boolean(),
    inheritEnv: z.boolean(),
    preopens: z.array(z.tuple([z.string().min(1), z.string().min(1)])),
  })
  .strict();

export type Invocation = z.infer<typeof InvocationSchema>;

const SUPPORTED_OPTIONS =
  '--allow-wasi, --init-func/-f, --dir, --mapdir, --inherit-env, --wasm-bulk-memory=true, -o/--output';

function usage(message: string): PreinitError {
  return new PreinitError('usage', `${message}\nUsage: preinit [${SUPPORTED_OPTIONS}] <input.wasm>`);
}

function parseBool(flag: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw usage(`${flag} takes true or false, got "${value}"`);
}

/** Parses the wizer command line that componentize-js builds (see its `componentize.js`). */
export function parseWizerArgs(argv: readonly string[]): Invocation {
  const options = {
    initFunc: 'wizer.initialize',
    allowWasi: false,
    inheritEnv: false,
    preopens: [] as [string, string][],
    output: undefined as string | undefined,
  };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[++i];
      if (next === undefined) throw usage(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--allow-wasi':
        options.allowWasi = inline === undefined ? true : parseBool(flag, inline);
        break;
      case '--init-func':
      case '-f':
        options.initFunc = value();
        break;
      case '--dir': {
        const dir = value();
        options.preopens.push([dir, dir]);
        break;
      }
      case '--mapdir': {
        const spec = value();
        const parts = spec.split('::');
        if (parts.length !== 2) throw usage(`--mapdir "${spec}" must be GUEST_DIR::HOST_DIR with exactly one "::"`);
        options.preopens.push([parts[0]!, parts[1]!]);
        break;
      }
      case '--inherit-env':
        options.inheritEnv = parseBool(flag, value());
        break;
      case '--wasm-bulk-memory':
        if (!parseBool(flag, value())) throw usage('--wasm-bulk-memory=false is not supported: V8 always validates with bulk memory');
        break;
      case '-o':
      case '--output':
        options.output = value();
        break;
      default:
        throw usage(`unsupported option ${flag}: this pre-initializer implements only ${SUPPORTED_OPTIONS}`);
    }
  }
  if (positional.length !== 1) throw usage(`expected exactly one input module, got ${positional.length}`);
  if (options.output === undefined) throw usage('missing -o=<output.wasm>');
  const guests = options.preopens.map(([guest]) => guest);
  const duplicate = guests.find((guest, i) => guests.indexOf(guest) !== i);
  if (duplicate !== undefined) throw usage(`guest directory "${duplicate}" is preopened twice`);
  const parsed = InvocationSchema.safeParse({ ...options, input: positional[0] });
  if (!parsed.success) {
    throw usage(formatIssues(parsed.error, 'arguments'));
  }
  return parsed.data;
}

/**
 * The wizer command-line contract: exit 0 and write `-o` on success;
 * otherwise exit non-zero with Wizer's stderr format, which componentize-js
 * parses (`parseWizerStderr`) to show only the guest's own error output.
 */
export function main(argv: readonly string[], stderr: NodeJS.WritableStream = process.stderr): number {
  // The guest runs once, for a fraction of a second: optimizing its hot
  // functions in the background only competes for the CPU (measured: the
  // whole run takes about half as long with baseline code only).
  setFlagsFromString('--liftoff-only');
  try {
    const invocation = parseWizerArgs(argv);
    const output = preinitialize(readFileSync(invocation.input), {
      initFunc: invocation.initFunc,
      allowWasi: invocation.allowWasi,
      preopens: invocation.preopens,
      env: invocation.inheritEnv ? definedEntries(process.env) : {},
    });
    writeFileSync(invocation.output, output);
    return 0;
  } catch (error) {
    stderr.write(formatError(error));
    return error instanceof PreinitError && error.kind === 'usage' ? 2 : 1;
  }
}

function definedEntries(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

export function formatError(error: unknown): string {
  if (error instanceof PreinitError && error.func !== undefined) {
    const cause = error.kind === 'init-exited' ? `Exited with i32 exit status ${error.exitStatus}` : error.message;
    const indented = cause
      .split('\n')
      .map((line) => (line ? `    ${line}` : line))
      .join('\n');
    return `Error: the \`${error.func}\` function trapped\n\nCaused by:\n${indented}\n`;
  }
  return `Error: ${error instanceof Error ? error.message : String(error)}\n`;
}
