/**
 * Node built-ins in konnectors, as webpack 4 gave them to the catalog: pure-JS
 * versions of util, events, querystring, url, path, assert, crypto, zlib,
 * string_decoder and a global Buffer; the ones a sandbox cannot have (fs,
 * child_process, net...) build, and fail with a named error when called. The
 * component still imports nothing but the world's interfaces.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureDir } from '../support/artifacts.ts';
import { konnectorCli } from '../support/cli.ts';

let scratch: string;
let artifact: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'node-builtins-'));
  artifact = path.join(scratch, 'node-stdlib.kwasm');
  const built = await konnectorCli(['build', fixtureDir('node-stdlib'), '--out', artifact]);
  expect(built.code, built.stderr).toBe(0);
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const report = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!);

describe('Node built-ins', () => {
  it('gives konnectors the pure-JS built-ins, with the results Node computes', async () => {
    const ran = await konnectorCli(['run', artifact, '--fields', '{}', '--json', '--data-dir', path.join(scratch, 'data')]);
    expect(report(ran.stdout), ran.stderr).toMatchObject({ state: 'done', error: null });
    const line = ran.stdout.split('\n').find((l) => l.includes('facts {'));
    const facts = JSON.parse(JSON.parse(line!).message.replace(/^facts /, ''));
    expect(facts).toEqual({
      promisified: 42,
      slept: 'awake',
      heard: 'FAC-1',
      query: 'login=jane%20doe&page=2',
      host: 'shop.example',
      base64: 'amFuZTpzZWNyZXQ=',
      sha256: '623210167553939c',
      hmac: 'b8482077eb9b7138',
      gunzipped: 'compressed bill',
      decoded: '€',
      inspected: 'bills: 6',
    });
  });

  it.each(['fs.readFileSync', 'child_process.execSync'])('fails a konnector that calls %s, naming it', async (call) => {
    const ran = await konnectorCli(['run', artifact, '--fields', JSON.stringify({ call }), '--json', '--data-dir', path.join(scratch, 'data')]);
    expect(report(ran.stdout)).toMatchObject({ state: 'errored' });
    expect(ran.stdout).toContain(`${call} is not available in the konnector sandbox`);
    expect(ran.stdout).not.toContain('root:');
  });

  it('adds no import to the world', async () => {
    const inspected = await konnectorCli(['inspect', artifact, '--json']);
    const { imports } = JSON.parse(inspected.stdout) as { imports: string[] };
    expect(imports.filter((name) => !/^(cozy:konnector|wasi:random)\//.test(name))).toEqual([]);
  });
});
