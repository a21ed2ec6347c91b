import { readFile } from 'node:fs/promises';
import { parseConnectTo, parseOperatorHosts, type ConnectTo, type OperatorHosts } from '../../host-api/http/index.ts';
import { UsageError } from '../errors.ts';
import { LimitsSchema, type Limits } from '../limits.ts';
import { describeIssues } from '../../host-api/schema-issues.ts';

/** Options both `run` and `serve` take, parsed the same way with the same errors. */

/** Each value of a repeatable option through `parse`; a bad one is a usage error naming the flag. */
function parseEach<T>(flag: string, specs: string[] | undefined, parse: (spec: string) => T): T[] {
  return (specs ?? []).map((spec) => {
    try {
      return parse(spec);
    } catch (error) {
      throw new UsageError('bad-arguments', `${flag} ${spec}: ${(error as Error).message}`);
    }
  });
}

export const connectToArgs = (specs: string[] | undefined): ConnectTo[] => parseEach('--connect-to', specs, parseConnectTo);

/** The operator's allowed hosts (`[slug=]spec`), checked now; undefined when none was given (no narrowing). */
export function allowHostArgs(specs: string[] | undefined): OperatorHosts | undefined {
  if (!specs?.length) return undefined;
  parseEach('--allow-host', specs, (spec) => parseOperatorHosts([spec]));
  return parseOperatorHosts(specs);
}

/** A JSON object given inline or as a file path. */
export async function jsonObjectArg(flag: string, value: string): Promise<Record<string, unknown>> {
  let text = value;
  if (!/^\s*[[{"]/.test(value)) {
    try {
      text = await readFile(value, 'utf8');
    } catch {
      throw new UsageError('job-input', `${flag} ${value}: neither a JSON object nor a readable file`);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError('job-input', `${flag} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UsageError('job-input', `${flag} must be a JSON object such as {"login":"...","password":"..."}`);
  }
  return json as Record<string, unknown>;
}

/** The defaults, overridden by a JSON limits file when given. */
export async function limitsArg(file: string | undefined): Promise<Limits> {
  const overrides = file ? await jsonObjectArg('--limits', file) : {};
  const parsed = LimitsSchema.safeParse(overrides);
  if (!parsed.success) throw new UsageError('bad-arguments', `--limits ${file}:\n${describeIssues(parsed.error)}`);
  return parsed.data;
}
