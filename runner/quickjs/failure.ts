/**
 * How a WIT `failure` the konnector ends with reaches the worker (bundle.ts, guest-worker.ts). The engine's error
 * text is cut at 8 KiB (engine-main.c's static buffer), so the failure itself crosses whole on the host call
 * `FAILURE_OP` (`{"op":"konnector.fail","args":[code,message]}`, charged like any call), and `konnector.run` then
 * rejects with FAILURE_PREFIX: the worker reports the failure it was told only when the run ends that way.
 */
export const FAILURE_PREFIX = '\u0001konnector-failure';
export const FAILURE_OP = 'konnector.fail';
