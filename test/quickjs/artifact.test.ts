/**
 * A QuickJS konnector as an artifact (`konnector build --engine quickjs`, runner/quickjs/artifact.ts): built by
 * the real command, read back by the generic entry points (run, inspect; loadArtifact), reproducible, and
 * refused with the reason when it or its engine is damaged or missing.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVendorSite, type VendorSite } from '../../konnectors/examples/example-bills/vendor-site.mts';
import { isQuickjsArtifact, readArtifact } from '../../runner/compile/artifact.ts';
import { defaultLimits } from '../../runner/limits.ts';
import { checkEngineImports, ENGINE_URL, expectedEngineSha256 } from '../../runner/quickjs/engine.ts';
import { loadArtifact } from '../../runner/sandbox/load-artifact.ts';
import { exampleDir } from '../support/artifacts.ts';
import { konnectorCli, lastJsonLine } from '../support/cli.ts';
import { startTestCouch, storedDocs, type TestCouch } from '../support/couch.ts';

const INSTANCE = 'quickjs-artifact.cozy.example';
/** The engine's imports, as inspect lists them (the same list test/quickjs/engine.test.ts pins). */
const ENGINE_IMPORTS = [
  'konnector.call (function)',
  'konnector.clock_now (function)',
  'konnector.log (function)',
  'konnector.random_fill (function)',
  'wasi_snapshot_preview1.clock_time_get (function)',
  'wasi_snapshot_preview1.fd_close (function)',
  'wasi_snapshot_preview1.fd_fdstat_get (function)',
  'wasi_snapshot_preview1.fd_read (function)',
  'wasi_snapshot_preview1.fd_seek (function)',
  'wasi_snapshot_preview1.fd_write (function)',
];

let scratch: string;
/** A build cache of the tests' own, so that "the engine is nowhere" can be arranged. */
let cacheDir: string;
let artifact: string;
let again: string;
let site: VendorSite;
let couch: TestCouch;

const build = async (out: string) => {
  const result = await konnectorCli(['build', exampleDir('example-bills'), '--engine', 'quickjs', '--out', out], { KONNECTOR_CACHE_DIR: cacheDir });
  expect(result.code, result.stderr).toBe(0);
  return result;
};

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'quickjs-artifact-'));
  cacheDir = path.join(scratch, 'cache');
  artifact = path.join(scratch, 'one', 'example-bills.kwasm');
  again = path.join(scratch, 'two', 'example-bills.kwasm');
  [site, couch] = await Promise.all([startVendorSite(), startTestCouch(), build(artifact), build(again)]);
}, 120_000);

afterAll(async () => {
  await site?.stop();
  await couch?.stop();
  await rm(scratch, { recursive: true, force: true });
});

const engineFileBeside = async (file: string) => path.join(path.dirname(file), 'engines', `${await expectedEngineSha256()}.wasm`);

describe('konnector build --engine quickjs', () => {
  it('writes the same bytes for the same sources, the artifact and its engine, which is runner/quickjs/engine.wasm', async () => {
    expect(Buffer.compare(await readFile(artifact), await readFile(again))).toBe(0);
    const engine = await readFile(await engineFileBeside(artifact));
    expect(Buffer.compare(engine, await readFile(await engineFileBeside(again)))).toBe(0);
    expect(Buffer.compare(engine, await readFile(ENGINE_URL))).toBe(0);

    const read = await readArtifact(artifact);
    if (!isQuickjsArtifact(read)) throw new Error('not read as a QuickJS artifact');
    expect(read.header.engine).toMatchObject({ name: 'quickjs', sha256: await expectedEngineSha256(), bytes: engine.length });
    expect(read.bytecode.length).toBe(read.header.bytecode.bytes);
    // Issue 16's target for a konnector's own artifact.
    expect(read.fileBytes).toBeLessThan(1.5e6);
    expect(read.header.own.bytes).toBeLessThan(read.header.bytecode.bytes / 2);
  });

  it('builds with --out-dir in a child process the same bytes, printing no node:wasi warning', async () => {
    const outDir = path.join(scratch, 'out-dir');
    const built = await konnectorCli(['build', exampleDir('example-bills'), '--engine', 'quickjs', '--out-dir', outDir], { KONNECTOR_CACHE_DIR: cacheDir });
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).not.toContain('ExperimentalWarning');
    expect(Buffer.compare(await readFile(path.join(outDir, 'example-bills.kwasm')), await readFile(artifact))).toBe(0);
  });

  it('refuses an engine it does not know and --unmetered, which does not apply to QuickJS', async () => {
    const unknown = await konnectorCli(['build', exampleDir('example-bills'), '--engine', 'v8', '--out', path.join(scratch, 'x.kwasm')]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--engine takes componentize-js or quickjs, got "v8"');
    const unmetered = await konnectorCli(['build', exampleDir('example-bills'), '--engine', 'quickjs', '--unmetered', '--out', path.join(scratch, 'x.kwasm')]);
    expect(unmetered.code).toBe(2);
    expect(unmetered.stderr).toContain('--unmetered is for componentize-js builds');
  });
});

describe('a QuickJS artifact read by the generic entry points', () => {
  it('runs with `konnector run`: example-bills saves its bills and files', async () => {
    const result = await konnectorCli([
      'run', artifact, '--fields', JSON.stringify(site.credentials), '--couchdb', couch.url, '--instance', INSTANCE,
      '--connect-to', `energy.example:80:127.0.0.1:${site.port}`, '--files-dir', path.join(scratch, 'files'), '--json',
    ], { KONNECTOR_CACHE_DIR: cacheDir });
    expect(result.code, result.stderr).toBe(0);
    expect(lastJsonLine(result.stdout)).toMatchObject({ state: 'done', error: null, saved: { 'io.cozy.bills': 6, 'io.cozy.files': 6 } });
    expect(lastJsonLine(result.stdout).fuelUsed).toBeGreaterThan(0);
    const bills = await storedDocs(couch.url, INSTANCE, 'io.cozy.bills');
    expect(bills).toHaveLength(6);
    expect(bills.every((bill) => bill.vendor && typeof bill.amount === 'number')).toBe(true);
  });

  it('is loaded once per process: the snapshot made from its bytecode is reused, whatever the memory cap', async () => {
    const first = await loadArtifact(await readArtifact(artifact), defaultLimits);
    const second = await loadArtifact(await readArtifact(again), { memoryBytes: 128 * 1024 * 1024 });
    expect(second.snapshots.engine).toBe(first.snapshots.engine);
    expect(second.id).not.toBe(first.id);
  });

  it('lets its snapshot go once no loaded konnector holds it (a host dropped it); loaded again, it is made again', async () => {
    v8.setFlagsFromString('--expose-gc');
    const collectGarbage = vm.runInNewContext('gc') as () => void;
    let loaded: Awaited<ReturnType<typeof loadArtifact>> | undefined = await loadArtifact(await readArtifact(artifact), defaultLimits);
    const snapshot = new WeakRef(loaded.snapshots.engine!);
    loaded = undefined;
    // A cache holding it would keep it alive through any number of collections. (A WeakRef keeps its target for the
    // rest of the turn that made or read it: each collection runs in a turn of its own, before the read.)
    let collected = false;
    for (let i = 0; i < 10 && !collected; i++) {
      await nextTurn();
      collectGarbage();
      collected = snapshot.deref() === undefined;
    }
    expect(collected).toBe(true);
    const reloaded = await loadArtifact(await readArtifact(artifact), defaultLimits);
    expect(reloaded.snapshots.engine!.memory.pages).toBeGreaterThan(0);
  });

  it('shows its engine and every import of the engine module with `konnector inspect`', async () => {
    const engineFile = await engineFileBeside(artifact);
    const json = await konnectorCli(['inspect', artifact, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const facts = JSON.parse(json.stdout);
    expect(facts).toMatchObject({
      slug: 'example-bills',
      engine: { name: 'quickjs', version: '2021-03-27', sha256: await expectedEngineSha256(), file: engineFile },
      metering: { fuel: true, at: 'load' },
    });
    expect([...facts.imports].sort()).toEqual(ENGINE_IMPORTS);
    expect(facts.exports).toContain('engine_run_loaded (function)');
    expect(facts.bytecodeBytes).toBeGreaterThan(facts.bytes);

    const text = await konnectorCli(['inspect', artifact]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`engine    quickjs 2021-03-27, built by`);
    expect(text.stdout).toContain(`read from ${engineFile}`);
    for (const name of ENGINE_IMPORTS) expect(text.stdout).toContain(`\n  ${name}\n`);
  });
});

describe('a damaged or incomplete QuickJS artifact', () => {
  it('refuses a modified artifact, naming what does not verify', async () => {
    const bytes = await readFile(artifact);
    bytes[bytes.length - 100]! ^= 0xff;
    const tampered = path.join(scratch, 'tampered', 'example-bills.kwasm');
    await mkdir(path.join(path.dirname(tampered), 'engines'), { recursive: true });
    await writeFile(tampered, bytes);
    await copyFile(await engineFileBeside(artifact), await engineFileBeside(tampered));
    const result = await konnectorCli(['run', tampered, '--fields', '{}']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/its content sha256 is [0-9a-f]{64}, the header records [0-9a-f]{64} \(the file was modified or corrupted\)/);
  });

  it('refuses a modified engine, and says where an absent one was looked for', async () => {
    const alone = path.join(scratch, 'alone', 'example-bills.kwasm');
    await mkdir(path.dirname(alone), { recursive: true });
    await copyFile(artifact, alone);
    const emptyCache = path.join(scratch, 'empty-cache');
    const missing = await konnectorCli(['run', alone, '--fields', '{}'], { KONNECTOR_ENGINES_DIR: '', KONNECTOR_CACHE_DIR: emptyCache });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(
      `needs the engine quickjs 2021-03-27 with sha256 ${await expectedEngineSha256()}, which is in none of ${path.join(path.dirname(alone), 'engines')}, the build cache ${emptyCache}`);

    const engine = await readFile(ENGINE_URL);
    engine[engine.length >> 1]! ^= 0xff;
    await mkdir(path.join(path.dirname(alone), 'engines'));
    await writeFile(await engineFileBeside(alone), engine);
    const wrong = await konnectorCli(['inspect', alone], { KONNECTOR_CACHE_DIR: emptyCache });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(new RegExp(`${alone}: the engine quickjs 2021-03-27 in ${await engineFileBeside(alone)} is not the one it names: it has sha256 [0-9a-f]{64}, not ${await expectedEngineSha256()}`));
  });

  it('refuses a header naming an engine this runner does not run', async () => {
    const text = (await readFile(artifact)).toString('latin1').replace('"name":"quickjs"', '"name":"v8"');
    const other = path.join(scratch, 'other-engine.kwasm');
    await writeFile(other, Buffer.from(text, 'latin1'));
    await expect(readArtifact(other)).rejects.toThrow(/is not a usable konnector artifact: its header is invalid:\n.*engine\.name/);
  });
});

/** A module importing `konnector.<name>`: the smallest engine an artifact could name. */
function moduleImporting(name: string): WebAssembly.Module {
  const utf8 = (text: string) => [text.length, ...Buffer.from(text)];
  const imports = [1, ...utf8('konnector'), ...utf8(name), 0x00, 0x00];
  const bytes = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 2, imports.length, ...imports];
  return new WebAssembly.Module(new Uint8Array(bytes));
}

describe('an engine asking for more than the sandbox gives', () => {
  it('is refused before it is instantiated; an engine importing only what the sandbox answers is taken', () => {
    expect(() => checkEngineImports(moduleImporting('spawn'), 'engines/forged.wasm')).toThrow(
      /the QuickJS engine engines\/forged\.wasm imports konnector\.spawn \(function\), which the sandbox does not provide/);
    expect(() => checkEngineImports(moduleImporting('log'), 'engines/benign.wasm')).not.toThrow();
  });
});
