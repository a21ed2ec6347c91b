// Runs first in every konnector, inside the sandbox. The component has no WASI
// clock, so `Date` would be frozen at build time: route it to the host's
// `clock.now`. Host calls are forbidden while the snapshot is taken at build
// time, so the host clock is only switched on when a job starts.
import { now } from 'cozy:konnector/clock@0.1.0';

const BuildTimeDate = Date;
let hostClockOn = false;

function currentMillis() {
  return hostClockOn ? Number(now()) : BuildTimeDate.now();
}

class HostDate extends BuildTimeDate {
  constructor(...args) {
    if (args.length === 0) super(currentMillis());
    else super(...args);
  }

  static now() {
    return currentMillis();
  }
}

// `Date()` called without `new` returns the current time as a string.
globalThis.Date = new Proxy(HostDate, {
  apply: () => new BuildTimeDate(currentMillis()).toString(),
});

// The engine's performance.now() reads a WASI clock this world does not
// import, and would trap the whole instance: count from the job's start on the
// host clock instead, in whole milliseconds (no finer timer reaches the guest).
let timeOrigin = BuildTimeDate.now();
globalThis.performance = {
  get timeOrigin() {
    return timeOrigin;
  },
  now: () => currentMillis() - timeOrigin,
};

export function enableHostClock() {
  hostClockOn = true;
  timeOrigin = currentMillis();
}

// The engine's timers wait on a WASI clock this world does not import: a
// timer would trap the whole instance. A zero delay (how libraries defer work)
// runs the callback after the current microtasks; any real wait fails the call
// with a way out instead.
const deferred = new Map();
let nextTimer = 1;
globalThis.setTimeout = (callback, delay = 0, ...args) => {
  if (Number(delay) > 0) {
    throw new TypeError(`setTimeout(…, ${delay}): the konnector sandbox cannot wait; do not sleep between requests (the host enforces timeouts and budgets)`);
  }
  const id = nextTimer++;
  deferred.set(id, true);
  queueMicrotask(() => {
    if (deferred.delete(id)) callback(...args);
  });
  return id;
};
globalThis.clearTimeout = (id) => {
  deferred.delete(id);
};
globalThis.setInterval = () => {
  throw new TypeError('setInterval() is not available in the konnector sandbox: it cannot wait');
};

// The engine's own fetch has no network under this world and would trap the
// whole instance; fail the call instead, with a way out.
globalThis.fetch = async () => {
  throw new TypeError('fetch() is not available in the konnector sandbox: use cozy-konnector-libs `requestFactory` (or the cozy:konnector/http interface)');
};
