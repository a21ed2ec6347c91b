import type * as WitClock from '../wit/types/interfaces/cozy-konnector-clock.js';
import { workerCapability } from './capability.ts';

/**
 * WIT `clock`: the guest's only clock. Answered inside the worker thread
 * (no round trip to the host); it only reveals what any web page can see.
 * `sleep` blocks the worker, which runs nothing else meanwhile; the host's
 * wall-clock timer stops a job that sleeps past its limit.
 */
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export default workerCapability({
  interface: 'cozy:konnector/clock@0.1.0',
  module: import.meta.url,
  functions: {
    now: (): bigint => BigInt(Date.now()),
    sleep: (ms: number): void => {
      if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
    },
  } satisfies typeof WitClock,
});
