/**
 * State shared by the SDK for the job being run: which konnector the entry
 * module registered, the job's parsed input, and how the konnector asked to end.
 * The runtime sets it when the host calls `run`; it is empty while the module
 * is evaluated (at build time, when no host call is allowed).
 */

/** @typedef {{ jobId: string, accountId: string, fields: Record<string, unknown>, parameters: Record<string, unknown>, manifest: Record<string, unknown> }} Job */

/** Thrown by `terminate()` to unwind the konnector, as `process.exit` does under Node. */
export class JobTermination extends Error {
  /** @param {string} reason the cozy error code (or message) the job ends with */
  constructor(reason) {
    super(reason);
    this.name = 'JobTermination';
    this.kind = 'termination';
  }
}

const state = {
  /** @type {object[]} */
  konnectors: [],
  /** @type {Job | null} */
  job: null,
  /** @type {JobTermination | null} */
  termination: null,
  /** The konnector's manifest: the job's, or what `manifest.setManifest` was given. */
  manifest: {},
  /** The job's response-size limit (WIT `job.max-response-bytes`); no job yet, no body may be decoded. */
  maxResponseBytes: 0,
};

export function registerKonnector(konnector) {
  if (!state.konnectors.includes(konnector)) state.konnectors.push(konnector);
}

export function registeredKonnectors() {
  return state.konnectors;
}

/** @param {Job} job */
export function beginJob(job) {
  state.job = job;
  state.termination = null;
  state.manifest = job.manifest;
}

export function endJob() {
  state.job = null;
}

/** @returns {Job | null} */
export function currentJob() {
  return state.job;
}

/** The first termination wins: a konnector that catches it cannot turn it into a success. */
export function recordTermination(termination) {
  state.termination ??= termination;
}

export function termination() {
  return state.termination;
}

/** @returns {Record<string, unknown>} the konnector's manifest (`{}` before the first job) */
export function currentManifest() {
  return state.manifest;
}

/** @param {Record<string, unknown>} manifest */
export function replaceManifest(manifest) {
  state.manifest = manifest;
}

/** Set when a job starts, whether or not its konnector runs through a BaseKonnector. @param {bigint | number} bytes */
export function setResponseLimit(bytes) {
  state.maxResponseBytes = Number(bytes);
}

/** The most bytes a response body may have, decoded or not (past it, the host answers `too-large`). */
export function responseLimit() {
  return state.maxResponseBytes;
}
