import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { componentize } from '@bytecodealliance/componentize-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactComponent, encodeArtifact, writeArtifact } from '../../runner/compile/artifact.ts';
import { BuildCache } from '../../runner/compile/cache.ts';
import { buildOnce, fixtureDir, readComponentArtifact, repoRoot } from '../support/artifacts.ts';
import { konnectorCli, lastJsonLine } from '../support/cli.ts';

/** Several full builds (no cache) in one test: generous for a busy machine. */
const BUILDS_TIMEOUT_MS = 600_000;

let scratch: string;
let probeArtifact: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'cli-test-'));
  probeArtifact = await buildOnce(fixtureDir('sandbox-probe'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('konnector build', () => {
  it('gives the same bytes for the same sources, the artifact\'s and its engine\'s', async () => {
    const again = path.join(scratch, 'again.kwasm');
    const result = await konnectorCli(['build', fixtureDir('sandbox-probe'), '--out', again]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/sandbox-probe 1\.0\.0, \d+ bytes, sha256 [0-9a-f]{64}/);
    expect(Buffer.compare(await readFile(again), await readFile(probeArtifact))).toBe(0);
    const { header } = await readComponentArtifact(probeArtifact);
    const engineFile = (artifact: string) => path.join(path.dirname(artifact), 'engines', `${header.engine.sha256}.wasm`);
    expect(Buffer.compare(await readFile(engineFile(again)), await readFile(engineFile(probeArtifact)))).toBe(0);
  });

  it('writes only the konnector\'s own part to the artifact, the engine once beside it, named by its sha256', async () => {
    const artifact = await readComponentArtifact(probeArtifact);
    const { header } = artifact;
    expect(header.format).toBe(2);
    expect(artifact.engineFile).toBe(path.join(path.dirname(probeArtifact), 'engines', `${header.engine.sha256}.wasm`));
    const engine = await readFile(artifact.engineFile);
    expect(createHash('sha256').update(engine).digest('hex')).toBe(header.engine.sha256);
    expect(engine.length).toBe(header.engine.bytes);
    // The engine is most of the component; the artifact holds the rest, compressed.
    expect(header.engine.bytes).toBeGreaterThan(header.component.bytes / 2);
    expect(artifact.fileBytes).toBeLessThan((header.component.bytes - header.engine.bytes) / 2);
    expect(artifactComponent(artifact).length).toBe(header.component.bytes);
  });

  it.each([
    ['no-manifest', /no manifest\.konnector in .*no-manifest/],
    ['syntax-error', /syntax-error\/index\.js:3:\d+: Expected "\)" but found "\{"/],
    ['unknown-import', /unknown-import\/index\.js:2:\d+: "wasi:filesystem\/types@0\.2\.0" is not an interface of the konnector world/],
    ['no-entry', /no konnector entry in .*no-entry: tried lib\/start\.js \(package\.json "main"\), src\/index\.js, src\/index\.ts, index\.js, index\.ts/],
  ])('refuses %s with a clear message and exit code 2', async (name, message) => {
    const result = await konnectorCli(['build', fixtureDir(name), '--out', path.join(scratch, `${name}.kwasm`)]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it('refuses a konnector whose top level throws with its own error, naming the pre-initializer by its sources', async () => {
    const dir = path.join(scratch, 'throws-at-load');
    await mkdir(dir);
    await copyFile(path.join(fixtureDir('sandbox-probe'), 'manifest.konnector'), path.join(dir, 'manifest.konnector'));
    await writeFile(path.join(dir, 'index.js'), "throw new Error('cannot load: missing config');\nexport function run() {}\n");
    const result = await konnectorCli(['build', dir, '--out', path.join(scratch, 'throws-at-load.kwasm')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/does not compile to a component: Failed to initialize component \(wizer \(\S*runner\/compile\/preinit\/\)\)/);
    expect(result.stderr).toMatch(/Error: cannot load: missing config/);
    expect(result.stderr).not.toMatch(/konnector-preinit-/);
  });

  it('finds the entry at src/index.js, the catalog layout, when package.json has no main', async () => {
    const out = path.join(scratch, 'src-layout.kwasm');
    const built = await konnectorCli(['build', fixtureDir('src-layout'), '--out', out]);
    expect(built.code, built.stderr).toBe(0);
    const ran = await konnectorCli(['run', out, '--fields', '{}', '--json']);
    expect(ran.stdout).toContain('started from src/index.js, manual execution: true');
    expect(JSON.parse(ran.stdout.trim().split('\n').at(-1)!)).toMatchObject({ state: 'done', error: null });
  });

  it('keeps the toolchain-only work in a build cache: a warm build, a cold one and one without the cache give the same bytes; a damaged entry is made again', async () => {
    const cacheDir = path.join(scratch, 'cache');
    const build = async (name: string, cache: string) => {
      const out = path.join(scratch, `${name}.kwasm`);
      const result = await konnectorCli(['build', fixtureDir('sandbox-probe'), '--out', out], { KONNECTOR_CACHE_DIR: cache });
      expect(result.code, result.stderr).toBe(0);
      return readFile(out);
    };
    const uncached = await build('uncached', 'off');
    const cold = await build('cold', cacheDir);
    const entries = (await readdir(cacheDir)).sort();
    expect(entries.map((name) => name.replace(/-[0-9a-f]{64}$/, ''))).toEqual(['component', 'engine', 'fuel-code', 'metadata', 'reference', 'reference-sha256-for', 'spliced', 'stubbed']);
    const warm = await build('warm', cacheDir);
    for (const name of entries) {
      const entry = path.join(cacheDir, name);
      const bytes = await readFile(entry);
      bytes[bytes.length >> 1]! ^= 0xff;
      await writeFile(entry, bytes);
    }
    const repaired = await build('repaired', cacheDir);
    for (const artifact of [cold, warm, repaired]) expect(Buffer.compare(artifact, uncached)).toBe(0);
    expect(Buffer.compare(uncached, await readFile(probeArtifact))).toBe(0);
    // The damaged entries were made again, whole.
    const cache = new BuildCache(cacheDir);
    for (const name of entries) expect(cache.get(name)).toBeDefined();
  }, BUILDS_TIMEOUT_MS);

  it('lets two processes build the same sources at the same moment: they take turns on the work directories and give the same bytes', async () => {
    // Without the cache, so that each build runs componentize-js from start to end and the two overlap.
    const [first, second] = await Promise.all(
      ['first', 'second'].map(async (name) => {
        const out = path.join(scratch, `concurrent-${name}.kwasm`);
        const result = await konnectorCli(['build', fixtureDir('sandbox-probe'), '--out', out], { KONNECTOR_CACHE_DIR: 'off' });
        expect(result.code, result.stderr).toBe(0);
        return { stderr: result.stderr, bytes: await readFile(out) };
      }),
    );
    expect([first!.stderr, second!.stderr].filter((stderr) => stderr.includes('waiting for another build of the same sources'))).toHaveLength(1);
    for (const { bytes } of [first!, second!]) expect(Buffer.compare(bytes, await readFile(probeArtifact))).toBe(0);
  }, BUILDS_TIMEOUT_MS);

  it('builds several konnectors at once with --out-dir, each to <slug>.kwasm; a failed one does not stop the others', async () => {
    const outDir = path.join(scratch, 'many');
    const result = await konnectorCli(['build', fixtureDir('sandbox-probe'), fixtureDir('syntax-error'), fixtureDir('src-layout'), '--out-dir', outDir, '--jobs', '2']);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(/konnector: \S*syntax-error: cannot bundle .*\n.*index\.js:3:\d+: Expected "\)" but found "\{"/);
    expect(result.stderr).toContain('1 of 3 builds failed');
    expect(result.stdout).toMatch(/sandbox-probe\.kwasm: sandbox-probe 1\.0\.0/);
    expect((await readdir(outDir)).sort()).toEqual(['engines', 'sandbox-probe.kwasm', 'src-layout.kwasm']);
    // Both konnectors share one engine and one reference snapshot, written once.
    const shared = (await readdir(path.join(outDir, 'engines'))).map((name) => path.extname(name)).sort();
    expect(shared).toEqual(['.kwasm', '.wasm']);
    expect(Buffer.compare(await readFile(path.join(outDir, 'sandbox-probe.kwasm')), await readFile(probeArtifact))).toBe(0);
  });

  it.each([
    [['--out-dir', 'x', '--out', 'y.kwasm'], 'give --out <file> for one konnector or --out-dir <dir> for several, not both'],
    [['--out', 'y.kwasm', 'second-dir'], 'build takes exactly one konnector directory (several need --out-dir <dir>), got 2'],
    [['--out-dir', 'x', '--jobs', '0'], '--jobs takes a whole number of builds at a time (1 or more), got "0"'],
    [['--out-dir', 'x', 'same-again'], 'are both the konnector "sandbox-probe"'],
  ])('refuses build arguments that do not fit: %j', async (args, message) => {
    const dirs = args.map((arg) => (arg === 'second-dir' || arg === 'same-again' ? fixtureDir('sandbox-probe') : arg));
    const result = await konnectorCli(['build', fixtureDir('sandbox-probe'), ...dirs]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });

  it('says what is missing when called without --out', async () => {
    const result = await konnectorCli(['build', fixtureDir('sandbox-probe')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('build needs --out <file>');
  });
});

describe('konnector compat', () => {
  it('builds each konnector as it is and runs it offline, one table row each, bad directories included', async () => {
    const missing = path.join(scratch, 'no-such-konnector');
    const result = await konnectorCli(['compat', fixtureDir('undeclared-deps'), fixtureDir('syntax-error'), missing]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('compat: building 2 konnectors...');
    const rows = result.stdout.trim().split('\n').slice(2).map((line) => line.split(' | ').map((cell) => cell.replace(/^\| |\s*\|$/g, '')));
    expect(rows).toHaveLength(3);
    // Offline, the vendor's name does not resolve: the konnector ends with a Cozy error code.
    expect(rows[0]).toEqual(['undeclared-deps', 'ok', expect.stringMatching(/^\d+\.\d$/), expect.stringMatching(/^\d+\.\d$/), 'errored UNKNOWN_ERROR',
      expect.stringContaining('could not resolve shop.example')]);
    expect(rows[1]!.slice(0, 2)).toEqual(['syntax-error', expect.stringContaining('cannot bundle the konnector')]);
    expect(rows[1]![4]).toBe('not run');
    expect(rows[2]).toEqual(['no-such-konnector', `${missing} is not a directory`, '-', '-', 'not run', '']);
  });
});

describe('konnector inspect', () => {
  it('prints one JSON object with the imports, exports, permissions and limits', async () => {
    const result = await konnectorCli(['inspect', probeArtifact, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const facts = JSON.parse(result.stdout) as Record<string, unknown>;
    const artifact = await readComponentArtifact(probeArtifact);
    expect(facts).toMatchObject({
      slug: 'sandbox-probe',
      version: '1.0.0',
      sha256: artifact.header.sha256,
      world: 'cozy:konnector/konnector@0.1.0',
      engine: { name: 'componentize-js', sha256: artifact.header.engine.sha256, file: artifact.engineFile },
      exports: ['run'],
      permissions: { probes: { type: 'io.cozy.probes' } },
      limits: { memoryBytes: 256 * 1024 * 1024, wallClockMs: 300_000 },
    });
    expect(facts.imports).toEqual(
      expect.arrayContaining(['cozy:konnector/log@0.1.0', 'cozy:konnector/documents@0.1.0', 'cozy:konnector/clock@0.1.0']),
    );
    for (const name of facts.imports as string[]) expect(name).toMatch(/^(cozy:konnector\/|wasi:random\/)/);
  });
});

describe('konnector run refuses bad input with exit code 2', () => {
  it('a corrupt artifact', async () => {
    const corrupt = path.join(scratch, 'corrupt.kwasm');
    const bytes = await readFile(probeArtifact);
    bytes[bytes.length - 1000]! ^= 0xff;
    await writeFile(corrupt, bytes);
    const result = await konnectorCli(['run', corrupt, '--fields', '{}']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/not a usable konnector artifact: its content sha256 is [0-9a-f]{64}, the header records/);
  });

  it('a file that is not an artifact', async () => {
    const result = await konnectorCli(['run', path.join(repoRoot, 'package.json'), '--fields', '{}']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('it does not start with the artifact signature');
  });

  it('an artifact holding a component of another world', async () => {
    const dir = path.join(repoRoot, 'test/fixtures/other-world');
    const { component } = await componentize({
      sourcePath: path.join(dir, 'index.js'),
      witPath: path.join(dir, 'wit'),
      worldName: 'other',
      disableFeatures: ['stdio', 'clocks', 'http', 'fetch-event', 'random'],
    });
    const { header } = await readComponentArtifact(probeArtifact);
    const foreign = await encodeArtifact(
      { manifest: header.manifest, engine: header.engine, builtBy: header.builtBy, sourceSha256: header.sourceSha256, metering: null },
      component,
    );
    const file = path.join(scratch, 'other-world', 'other-world.kwasm');
    await writeArtifact(file, foreign);
    const result = await konnectorCli(['run', file, '--fields', '{}']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/the component imports test:other\/environment, which the konnector world does not provide/);
  });

  it('an artifact without its engine, or with an engine that is not the one it names; KONNECTOR_ENGINES_DIR is searched too', async () => {
    const { header, engineFile } = await readComponentArtifact(probeArtifact);
    const alone = path.join(scratch, 'alone', 'probe.kwasm');
    await mkdir(path.dirname(alone), { recursive: true });
    await copyFile(probeArtifact, alone);
    const emptyCache = path.join(scratch, 'empty-cache');
    const missing = await konnectorCli(['inspect', alone], { KONNECTOR_ENGINES_DIR: '', KONNECTOR_CACHE_DIR: emptyCache });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`needs the engine componentize-js ${header.engine.version} with sha256 ${header.engine.sha256}, which is in none of ${path.join(path.dirname(alone), 'engines')}, the build cache ${emptyCache}`);

    const found = await konnectorCli(['inspect', alone, '--json'], { KONNECTOR_ENGINES_DIR: path.dirname(engineFile), KONNECTOR_CACHE_DIR: emptyCache });
    expect(found.code, found.stderr).toBe(0);
    expect(JSON.parse(found.stdout)).toMatchObject({ engine: { sha256: header.engine.sha256, file: engineFile } });
    // The build that made it kept its engine in the build cache too.
    const cached = await konnectorCli(['inspect', alone, '--json'], { KONNECTOR_ENGINES_DIR: '' });
    expect(cached.code, cached.stderr).toBe(0);
    expect(JSON.parse(cached.stdout)).toMatchObject({ engine: { sha256: header.engine.sha256, file: expect.stringContaining(`engine-${header.engine.sha256}`) } });

    const tampered = path.join(path.dirname(alone), 'engines', `${header.engine.sha256}.wasm`);
    await mkdir(path.dirname(tampered), { recursive: true });
    const engine = await readFile(engineFile);
    engine[engine.length >> 1]! ^= 0xff;
    await writeFile(tampered, engine);
    const wrong = await konnectorCli(['run', alone, '--fields', '{}']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(new RegExp(`${alone}: the engine componentize-js \\S+ in ${tampered} is not the one it names: it has sha256 [0-9a-f]{64}, not ${header.engine.sha256}`));
  });

  it('an artifact without its reference snapshot, or with another artifact in its place', async () => {
    const { header, engineFile } = await readComponentArtifact(probeArtifact);
    const alone = path.join(scratch, 'no-reference', 'probe.kwasm');
    await mkdir(path.join(path.dirname(alone), 'engines'), { recursive: true });
    await copyFile(probeArtifact, alone);
    await copyFile(engineFile, path.join(path.dirname(alone), 'engines', path.basename(engineFile)));
    const emptyCache = { KONNECTOR_ENGINES_DIR: '', KONNECTOR_CACHE_DIR: path.join(scratch, 'empty-cache') };
    const missing = await konnectorCli(['inspect', alone], emptyCache);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${alone} needs the reference snapshot with sha256 ${header.reference!.sha256}, which is in none of ${path.join(path.dirname(alone), 'engines')}`);

    // A valid artifact of the same engine, but not the reference the header names.
    const referenceFile = path.join(path.dirname(alone), 'engines', `${header.reference!.sha256}.kwasm`);
    await copyFile(probeArtifact, referenceFile);
    const other = await konnectorCli(['inspect', alone], emptyCache);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain(`${alone}: the reference snapshot in ${referenceFile} is not the one it names:`);

    await copyFile(path.join(path.dirname(probeArtifact), 'engines', `${header.reference!.sha256}.kwasm`), referenceFile);
    const found = await konnectorCli(['inspect', alone, '--json'], emptyCache);
    expect(found.code, found.stderr).toBe(0);
    expect(JSON.parse(found.stdout)).toMatchObject({ sha256: header.sha256, reference: { sha256: header.reference!.sha256, file: referenceFile } });
  });

  it('an artifact of format 1, which held the whole engine: rebuild it', async () => {
    const old = path.join(scratch, 'format-1.kwasm');
    await writeFile(old, `cozy-konnector-artifact/1\n${JSON.stringify({ format: 1 })}\n`);
    const result = await konnectorCli(['run', old, '--fields', '{}']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('it is in format 1, which held the whole engine in each artifact; this runner reads format 2 (the engine in a shared store). Rebuild it with `konnector build`.');
  });

  it.each([
    ['{"login": ', /--fields is not valid JSON/],
    ['["a"]', /--fields must be a JSON object/],
    ['/nonexistent/fields.json', /--fields \/nonexistent\/fields\.json: neither a JSON object nor a readable file/],
  ])('malformed fields %s', async (fields, message) => {
    const result = await konnectorCli(['run', probeArtifact, '--fields', fields]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it('a malformed --connect-to and unknown options', async () => {
    const connect = await konnectorCli(['run', probeArtifact, '--fields', '{}', '--connect-to', 'nonsense']);
    expect(connect.code).toBe(2);
    expect(connect.stderr).toContain('--connect-to nonsense');
    const unknown = await konnectorCli(['run', probeArtifact, '--feilds', '{}']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '--feilds'/);
  });
});

describe('konnector run', () => {
  it('runs a job on the embedded CouchDB and prints the report as the last JSON line', async () => {
    const fieldsFile = path.join(scratch, 'fields.json');
    await writeFile(fieldsFile, JSON.stringify({ mode: 'fail', code: 'login-failed' }));
    const failed = await konnectorCli(['run', probeArtifact, '--fields', fieldsFile, '--data-dir', path.join(scratch, 'couch'), '--json']);
    expect(failed.code, failed.stderr).toBe(1);
    expect(lastJsonLine(failed.stdout)).toMatchObject({ state: 'errored', error: 'LOGIN_FAILED' });

    const done = await konnectorCli(['run', probeArtifact, '--fields', '{}', '--data-dir', path.join(scratch, 'couch'), '--json']);
    expect(done.code, done.stderr).toBe(0);
    const report = lastJsonLine(done.stdout);
    expect(report).toMatchObject({ state: 'done', error: null, requests: 0, bytesIn: 0, bytesOut: 0, saved: { 'io.cozy.probes': 1 } });
    expect(report.durationMs).toEqual(expect.any(Number));
    expect(report.memoryPeakBytes).toBeGreaterThan(0);
    const logLine = JSON.parse(done.stdout.trim().split('\n')[0]!) as Record<string, unknown>;
    expect(logLine).toMatchObject({ type: 'info' });
  });

  it('prints help for every command', async () => {
    for (const command of ['build', 'inspect', 'run', 'demo']) {
      const result = await konnectorCli([command, '--help']);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Usage: konnector ${command}`);
    }
    const main = await konnectorCli([]);
    expect(main.stdout).toContain('Commands:');
  });
});

