import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // test/ mirrors the source tree (test/README.md).
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Integration tests compile real components (seconds each) and share one
    // build cache; running files in parallel on 2 cores only adds contention.
    fileParallelism: false,
  },
});
