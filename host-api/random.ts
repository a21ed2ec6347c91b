import { randomFillSync } from 'node:crypto';
import { workerCapability } from './capability.ts';

/**
 * `wasi:random/random`, backed by the host CSPRNG. componentize-js seeds
 * `Math.random` and `crypto.getRandomValues` from it, so without it every run
 * would see the same "random" values. Answered inside the worker thread.
 * Not in the konnector world: the engine imports it, a konnector's source cannot.
 */
const MAX_RANDOM_BYTES = 1024 * 1024;

export default workerCapability({
  interface: 'wasi:random/random',
  module: import.meta.url,
  functions: {
    getRandomBytes(len: bigint): Uint8Array {
      if (len > BigInt(MAX_RANDOM_BYTES)) {
        throw new RangeError(`get-random-bytes asked for ${len} bytes, at most ${MAX_RANDOM_BYTES} per call`);
      }
      return randomFillSync(new Uint8Array(Number(len)));
    },
    getRandomU64(): bigint {
      return randomFillSync(new BigUint64Array(1))[0]!;
    },
  },
});
