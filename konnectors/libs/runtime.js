/**
 * The bridge between the component's `run` export and a konnector written
 * against cozy-konnector-libs: the generated entry module calls `runJob(job)`
 * when the konnector created a `BaseKonnector`.
 *
 * `runJob` resolves when the konnector succeeded and throws the WIT `failure`
 * record `{ code, message }` otherwise (never an Error: that would trap).
 */
import { beginJob, endJob, registeredKonnectors, setResponseLimit, termination } from './context.js';
import { isErrorCode, toErrorCode } from './errors.js';

/**
 * What the SDK keeps of every job, whichever way its konnector runs: the
 * response-size limit its decoded bodies are held to.
 * @param {{ maxResponseBytes: bigint | number }} job the WIT `job` record
 */
export function startJob(job) {
  setResponseLimit(job.maxResponseBytes);
}

/** Whether the konnector's module created a BaseKonnector. */
export function hasKonnector() {
  return registeredKonnectors().length > 0;
}

function failure(code, message) {
  return { code, message: String(message) };
}

/**
 * The `failure` a thrown value stands for: a failure record as is, else the
 * cozy code in its message (a host error's), else unknown-error.
 */
export function toFailure(error) {
  // A host call's WIT error the konnector did not catch: the engine throws an Error whose
  // message is "[object Object] (see error.payload)" and whose payload is the host's {kind, message}.
  const payload = error?.payload;
  if (payload && typeof payload === 'object' && typeof payload.message === 'string') {
    return failure(toErrorCode(payload.message), `a host call failed (${payload.kind}): ${payload.message}`);
  }
  if (error instanceof Error) return failure(toErrorCode(error.message), error.message || error.name);
  if (typeof error === 'string') return failure(toErrorCode(error), error);
  if (error && typeof error === 'object' && typeof error.message === 'string') {
    const known = typeof error.code === 'string' && isErrorCode(error.code);
    return failure(known ? error.code : toErrorCode(error.message), error.message);
  }
  return failure('unknown-error', `the konnector threw ${String(error)}`);
}

/** @param {string} json @param {'fields'|'parameters'|'manifest'} what */
function parseObject(json, what) {
  const are = what === 'manifest' ? 'is' : 'are';
  let value;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw failure('unknown-error', `the job's ${what} ${are} not valid JSON (${error.message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw failure('unknown-error', `the job's ${what} must be a JSON object, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * @param {{ jobId: string, accountId: string, fields: string, parameters: string, manifest: string }} job the WIT `job` record
 * @returns {Promise<void>}
 */
export async function runJob(job) {
  const konnectors = registeredKonnectors();
  if (konnectors.length !== 1) {
    throw failure('unknown-error', konnectors.length === 0
      ? 'the konnector created no BaseKonnector: end its module with `module.exports = new BaseKonnector(start)`'
      : `the konnector created ${konnectors.length} BaseKonnector instances; create exactly one`);
  }
  beginJob({
    jobId: job.jobId,
    accountId: job.accountId,
    fields: parseObject(job.fields, 'fields'),
    parameters: parseObject(job.parameters, 'parameters'),
    manifest: parseObject(job.manifest, 'manifest'),
  });
  try {
    await konnectors[0].run();
  } catch (error) {
    throw toFailure(termination() ?? error);
  } finally {
    endJob();
  }
  // terminate() was called, and its JobTermination swallowed by the konnector.
  const ended = termination();
  if (ended) throw toFailure(ended);
}

