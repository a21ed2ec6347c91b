// Konnectors written for Node name `process`: most set process.env.SENTRY_DSN
// in their first lines. The sandbox has no process. The build injects this
// stand-in wherever a konnector's code names `process` (never as a global): an
// environment that starts empty, which the konnector may write to, and
// nextTick. It reaches nothing of the host; each job's instance starts from
// the build-time snapshot, so what one job writes no other job sees.
export const process = {
  env: {},
  nextTick: (callback, ...args) => queueMicrotask(() => callback(...args)),
  // What polyfilled built-ins (readable-stream, util) read, as browserify's process shim gave them.
  version: '',
  versions: {},
  argv: [],
  browser: true,
  cwd: () => '/',
};
