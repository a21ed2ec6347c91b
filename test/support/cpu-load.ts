/**
 * Saturates every core with busy-looping processes for the length of a test
 * or a benchmark, so that concurrency and failover tests prove their promises,
 * and bench/load.ts measures the host, on a machine with no idle CPU. Each
 * spinner stops by itself after `maxMs`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';

export interface CpuLoad {
  stop(): Promise<void>;
}

export function saturateCpu(maxMs = 10 * 60_000): CpuLoad {
  const spinners: ChildProcess[] = [];
  for (let i = 0; i < availableParallelism(); i++) {
    spinners.push(spawn(process.execPath, ['-e', `const end = Date.now() + ${maxMs}; while (Date.now() < end) {}`], { stdio: 'ignore' }));
  }
  return {
    async stop() {
      await Promise.all(spinners.map((child) => new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      })));
    },
  };
}
