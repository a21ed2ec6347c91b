/**
 * `konnector build` with and without the build cache (runner/compile/cache.ts),
 * end to end through the CLI as CI runs it: a build without the cache is the
 * baseline, measured in the same run. Every build of a konnector must give
 * the same bytes, cached or not. Then each artifact's size, the konnector's
 * own part, against the whole component it held before the engine was shared.
 *
 *   node --import tsx bench/build.ts [--rounds N]
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { readComponentArtifact } from '../test/support/artifacts.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);

const konnectors = ['konnectors/examples/example-bills', 'bench/fixtures/cheerio-bills'];
const scratch = await mkdtemp(path.join(os.tmpdir(), 'bench-build-'));

/** Seconds one `konnector build` took, and the sha256 of what it wrote. */
async function build(konnector: string, cacheDir: string): Promise<{ seconds: number; sha256: string }> {
  const out = path.join(scratch, `${path.basename(konnector)}.kwasm`);
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, [path.join(repoRoot, 'bin/konnector.mjs'), 'build', konnector, '--out', out], {
    cwd: repoRoot,
    env: { ...process.env, KONNECTOR_CACHE_DIR: cacheDir },
    encoding: 'utf8',
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`build of ${konnector} failed: ${result.stderr}`);
  return { seconds, sha256: createHash('sha256').update(await readFile(out)).digest('hex') };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
/** Issue 15's target for a warm build, in seconds. */
const WARM_TARGET_SECONDS = 3;

console.log(`${os.cpus().length} CPUs (${os.cpus()[0]?.model}), Node ${process.version}, ${rounds} rounds, medians in seconds`);
console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at the start`);
console.log(`| konnector | no cache | cold cache | warm cache | warm / no cache | warm / target (${WARM_TARGET_SECONDS} s) |`);
console.log('|---|---|---|---|---|---|');
try {
  for (const konnector of konnectors) {
    const times = { none: [] as number[], cold: [] as number[], warm: [] as number[] };
    const hashes = new Set<string>();
    // Interleaved, so that a busy moment of the machine weighs on every column alike.
    for (let round = 0; round < rounds; round++) {
      const cacheDir = path.join(scratch, `cache-${round}`);
      for (const [column, dir] of [['none', 'off'], ['cold', cacheDir], ['warm', cacheDir]] as const) {
        const { seconds, sha256 } = await build(konnector, dir);
        times[column].push(seconds);
        hashes.add(sha256);
      }
      await rm(cacheDir, { recursive: true, force: true });
    }
    if (hashes.size !== 1) throw new Error(`${konnector}: cached and uncached builds gave different bytes`);
    const [none, cold, warm] = [median(times.none), median(times.cold), median(times.warm)];
    console.log(`| ${path.basename(konnector)} | ${none.toFixed(2)} | ${cold.toFixed(2)} | ${warm.toFixed(2)} | ${(warm / none).toFixed(2)}x | ${(warm / WARM_TARGET_SECONDS).toFixed(2)}x |`);
  }
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at the end`);
  const mb = (bytes: number) => (bytes / 1e6).toFixed(2);
  console.log('\n| konnector | artifact (own part) MB | whole component MB (format 1) | ratio | engine MB, once per toolchain |');
  console.log('|---|---|---|---|---|');
  for (const konnector of konnectors) {
    const { header, fileBytes } = await readComponentArtifact(path.join(scratch, `${path.basename(konnector)}.kwasm`));
    console.log(`| ${path.basename(konnector)} | ${mb(fileBytes)} | ${mb(header.component.bytes)} | ${(fileBytes / header.component.bytes).toFixed(2)} | ${mb(header.engine.bytes)} |`);
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}
