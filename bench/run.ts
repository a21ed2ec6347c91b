/**
 * `npm run bench`: every benchmark, one after the other, each printing its
 * table with ratios against a baseline measured in the same run. Each runs in
 * its own process so one's heap and threads do not weigh on the next.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const benches = ['build.ts', 'catalog.ts', 'fuel.ts', 'engines.ts', 'serve.ts', 'load.ts'];
let failed = 0;
for (const bench of benches) {
  process.stdout.write(`\n## bench/${bench}\n\n`);
  // The warning filter first: node:wasi (the QuickJS engine) warns when a bench's static imports are linked, before its code runs.
  const quiet = fileURLToPath(new URL('../runner/quiet-wasi-warning.mjs', import.meta.url));
  const result = spawnSync(process.execPath, ['--import', quiet, '--import', 'tsx', '--expose-gc', fileURLToPath(new URL(bench, import.meta.url))], {
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    failed += 1;
    process.stderr.write(`bench/${bench} failed (exit ${result.status ?? result.signal})\n`);
  }
}
process.exitCode = failed ? 1 : 0;
