// Runs first in every konnector, inside the sandbox. The component has no WASI
// clock, so `Date` would be frozen at build time: route it to the host's
// `clock.now`. Host calls are forbidden while the snapshot is taken at build
// time, so the host clock is only switched on when a job starts.
import { now, sleep } from 'cozy:konnector/clock@0.1.0';
import { fetch } from './guest-fetch.js';

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

// Libraries call Math.random while they load (redux names its action types so), which here runs at build
// time, where the engine's generator would ask the host for a seed it cannot give. Until the job starts,
// numbers come from a fixed sequence (builds stay reproducible; what a module computes while loading is the
// same in every job); the engine's own generator is first seeded, from wasi:random, by the job.
const engineRandom = Math.random;
let buildTimeState = 0x2545f491;
Math.random = function random() {
  if (hostClockOn) return engineRandom();
  // xorshift32: enough for names and shuffles made while loading, never used once a job runs.
  buildTimeState ^= buildTimeState << 13;
  buildTimeState ^= buildTimeState >>> 17;
  buildTimeState ^= buildTimeState << 5;
  return (buildTimeState >>> 0) / 2 ** 32;
};

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

// Timers. The engine's own wait on a WASI clock this world does not import
// (they would trap the instance). These fire in order of due time on the host
// clock, the guest sleeping (clock.sleep) until the next one is due. A timer
// is a task: it fires after the microtasks pending when its turn comes (the
// pump yields MICROTASK_TURNS times first; all host calls being synchronous,
// the guest has no other kind of pending work). Timers set while the build
// evaluates the konnector wait for its first job.
const MICROTASK_TURNS = 64;
const timers = new Map();
let nextTimer = 1;
let pumping = false;

function earliestTimer() {
  let found;
  for (const entry of timers) if (!found || entry[1].due < found[1].due) found = entry;
  return found;
}

async function pumpTimers() {
  pumping = true;
  try {
    while (timers.size > 0) {
      for (let turn = 0; turn < MICROTASK_TURNS; turn++) await undefined;
      const next = earliestTimer();
      if (!next) break;
      const [id, timer] = next;
      const wait = timer.due - currentMillis();
      if (wait > 0) sleep(Math.min(wait, 0xffffffff));
      if (timer.every === undefined) timers.delete(id);
      else timer.due += timer.every;
      try {
        timer.callback(...timer.args);
      } catch (error) {
        // As in a browser: the error is reported (an unhandled rejection), later timers still fire.
        Promise.reject(error);
      }
    }
  } finally {
    pumping = false;
  }
}

function addTimer(callback, delay, args, repeat) {
  if (typeof callback !== 'function') throw new TypeError('timers take a function (a string is not evaluated)');
  const ms = Math.max(0, Math.floor(Number(delay) || 0));
  const id = nextTimer++;
  timers.set(id, { ms, due: currentMillis() + ms, every: repeat ? Math.max(1, ms) : undefined, callback, args });
  if (hostClockOn && !pumping) void pumpTimers();
  return id;
}

globalThis.setTimeout = (callback, delay, ...args) => addTimer(callback, delay, args, false);
globalThis.setInterval = (callback, delay, ...args) => addTimer(callback, delay, args, true);
globalThis.clearTimeout = (id) => void timers.delete(id);
globalThis.clearInterval = globalThis.clearTimeout;

/** The job ends when its konnector's run settles: timers still pending never fire (an interval would hold the job to its wall clock). */
export function dropTimers() {
  timers.clear();
}

export function enableHostClock() {
  hostClockOn = true;
  timeOrigin = currentMillis();
  // Timers set at build time count from the job's start.
  for (const timer of timers.values()) timer.due = timeOrigin + timer.ms;
  if (timers.size > 0 && !pumping) void pumpTimers();
}

// The engine's own fetch has no network under this world and would trap the
// whole instance: the guest's goes through the host's http.send instead.
globalThis.fetch = fetch;

/** The job's `process.env` entries (the WIT job's `environment`): set on the process stand-in before the konnector runs. */
export function setJobEnvironment(entries) {
  for (const [name, value] of entries ?? []) process.env[name] = value;
}
