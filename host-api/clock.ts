/**
 * WIT `clock`: the guest's only clock. Answered inside the worker thread
 * (no round trip to the host); it only reveals what any web page can see.
 */
export const clockImports = {
  now: (): bigint => BigInt(Date.now()),
};
