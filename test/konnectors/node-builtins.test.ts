/**
 * Node built-ins in konnectors, as webpack 4 gave them to the catalog: pure-JS
 * versions of util, events, querystring, url, path, assert, crypto, zlib,
 * string_decoder and a global Buffer; the ones a sandbox cannot have (fs,
 * child_process, net...) build, and fail with a named error when called. The
 * component still imports nothing but the world's interfaces. The jobs run on
 * both engines (test/support/engines.ts), each from its artifact as
 * `konnector build --engine` writes it, through `konnector run`.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleKonnector } from '../../runner/compile/bundle.ts';
import type { EngineName } from '../../runner/sandbox/pool.ts';
import { fixtureDir } from '../support/artifacts.ts';
import { konnectorCli } from '../support/cli.ts';
import { ENGINES } from '../support/engines.ts';

let scratch: string;
const artifacts = new Map<EngineName, Promise<string>>();

/** node-stdlib built for `engine` with the real command, once. */
function artifactFor(engine: EngineName): Promise<string> {
  let artifact = artifacts.get(engine);
  if (!artifact) {
    artifact = (async () => {
      const out = path.join(scratch, engine, 'node-stdlib.kwasm');
      const built = await konnectorCli(['build', fixtureDir('node-stdlib'), '--out', out, '--engine', engine]);
      expect(built.code, built.stderr).toBe(0);
      return out;
    })();
    artifacts.set(engine, artifact);
  }
  return artifact;
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'node-builtins-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const report = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!);

describe.each(ENGINES)('Node built-ins, on %s', (engine) => {
  const run = async (fields: Record<string, unknown>) =>
    konnectorCli(['run', await artifactFor(engine), '--fields', JSON.stringify(fields), '--json', '--data-dir', path.join(scratch, engine, 'data')]);

  it('gives konnectors the pure-JS built-ins, with the results Node computes', async () => {
    const ran = await run({});
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
      manifest: 'node-stdlib@1.0.0',
      drawnAtLoad: true,
      processModule: 'function',
    });
  });

  it.each(['fs.readFileSync', 'child_process.execSync', 'http2.connect'])('fails a konnector that calls %s, naming it', async (call) => {
    const ran = await run({ call });
    expect(report(ran.stdout)).toMatchObject({ state: 'errored' });
    expect(ran.stdout).toContain(`${call} is not available in the konnector sandbox`);
    expect(ran.stdout).not.toContain('root:');
  });
});

// A component's imports, componentize-js only: the QuickJS engine's imports are pinned in test/quickjs/engine.test.ts.
describe('Node built-ins in a component', () => {
  it('add no import to the world', async () => {
    const inspected = await konnectorCli(['inspect', await artifactFor('componentize-js'), '--json']);
    const { imports } = JSON.parse(inspected.stdout) as { imports: string[] };
    expect(imports.filter((name) => !/^(cozy:konnector|wasi:random)\//.test(name))).toEqual([]);
  });
});

describe('packages cozy-konnector-libs brought, which konnectors require undeclared', () => {
  /** The version line of this project's moment, as esbuild prints it. */
  const PROJECT_MOMENT = /hooks\.version = ["']2\.30\.1["']/;

  /** A konnector in a folder outside this project requiring `moduleName`, with the files given (its own node_modules). */
  async function konnectorOutside(moduleName: string, files: Record<string, string> = {}): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'undeclared-'));
    await writeFile(path.join(dir, 'index.js'), `exports.run = () => console.log(require(${JSON.stringify(moduleName)}))\n`);
    for (const [file, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
      await writeFile(path.join(dir, file), content);
    }
    return dir;
  }

  it("resolve from this project when the konnector's node_modules lacks them", async () => {
    const dir = await konnectorOutside('moment');
    const { code } = await bundleKonnector(dir);
    expect(code).toMatch(PROJECT_MOMENT);
    await rm(dir, { recursive: true, force: true });
  });

  it("the konnector's own copy wins when it has one", async () => {
    const dir = await konnectorOutside('moment', {
      'node_modules/moment/package.json': '{ "name": "moment", "version": "0.0.1", "main": "own.js" }',
      'node_modules/moment/own.js': "module.exports = 'the konnector own moment'\n",
    });
    const { code } = await bundleKonnector(dir);
    expect(code).toContain('the konnector own moment');
    expect(code).not.toMatch(PROJECT_MOMENT);
    await rm(dir, { recursive: true, force: true });
  });

  it('only those: another package of this project is not lent, the build names what is missing', async () => {
    const dir = await konnectorOutside('undici');
    await expect(bundleKonnector(dir)).rejects.toThrow(/Could not resolve "undici"/);
    await rm(dir, { recursive: true, force: true });
  });
});
