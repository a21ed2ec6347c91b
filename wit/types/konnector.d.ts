// world cozy:konnector/konnector@0.1.0
/**
* The standard Cozy error codes a konnector may end with (cozy-konnector-libs
* `errors`): `login-failed-needs-secret` is LOGIN_FAILED.NEEDS_SECRET.
*/
/**
* The standard Cozy error codes a konnector may end with (cozy-konnector-libs
* `errors`): `login-failed-needs-secret` is LOGIN_FAILED.NEEDS_SECRET.
* # Variants
* 
* ## `"login-failed"`
* 
* ## `"login-failed-needs-secret"`
* 
* ## `"login-failed-too-many-attempts"`
* 
* ## `"not-existing-directory"`
* 
* ## `"file-download-failed"`
* 
* ## `"save-file-failed"`
* 
* ## `"disk-quota-exceeded"`
* 
* ## `"challenge-asked"`
* 
* ## `"captcha-resolution-failed"`
* 
* ## `"user-action-needed"`
* 
* ## `"user-action-needed-oauth-outdated"`
* 
* ## `"user-action-needed-account-removed"`
* 
* ## `"user-action-needed-change-password"`
* 
* ## `"user-action-needed-permissions-changed"`
* 
* ## `"user-action-needed-cgu-form"`
* 
* ## `"user-action-needed-sca-required"`
* 
* ## `"user-action-needed-twofa-expired"`
* 
* ## `"user-action-needed-webauth-required"`
* 
* ## `"user-action-needed-wrong-twofa-code"`
* 
* ## `"maintenance"`
* 
* ## `"terms-version-mismatch"`
* 
* ## `"unknown-error"`
* 
* ## `"unknown-error-partial-sync"`
* 
* ## `"vendor-down"`
* 
* ## `"vendor-down-bank-down"`
* 
* ## `"vendor-down-linxo-down"`
*/
export type ErrorCode = 'login-failed' | 'login-failed-needs-secret' | 'login-failed-too-many-attempts' | 'not-existing-directory' | 'file-download-failed' | 'save-file-failed' | 'disk-quota-exceeded' | 'challenge-asked' | 'captcha-resolution-failed' | 'user-action-needed' | 'user-action-needed-oauth-outdated' | 'user-action-needed-account-removed' | 'user-action-needed-change-password' | 'user-action-needed-permissions-changed' | 'user-action-needed-cgu-form' | 'user-action-needed-sca-required' | 'user-action-needed-twofa-expired' | 'user-action-needed-webauth-required' | 'user-action-needed-wrong-twofa-code' | 'maintenance' | 'terms-version-mismatch' | 'unknown-error' | 'unknown-error-partial-sync' | 'vendor-down' | 'vendor-down-bank-down' | 'vendor-down-linxo-down';
export interface Failure {
  code: ErrorCode,
  message: string,
}
/**
* One run of the konnector for one account.
*/
/**
* One run of the konnector for one account.
*/
export interface Job {
  /**
  * The job's identifier (for logs).
  */
  jobId: string,
  /**
  * The io.cozy.accounts identifier the job runs for.
  */
  accountId: string,
  /**
  * The account's fields (login, password...) as a JSON object.
  */
  fields: string,
  /**
  * The trigger's parameters as a JSON object.
  */
  parameters: string,
  /**
  * The konnector's manifest (manifest.konnector, as its artifact carries
  * it) as a JSON object: cozy-konnector-libs' `manifest.data`.
  */
  manifest: string,
  /**
  * The guest's `process.env` for this job: the non-secret values
  * cozy-stack gives a konnector (COZY_JOB_ID, COZY_JOB_MANUAL_EXECUTION,
  * COZY_LOCALE, COZY_TIME_LIMIT). Never a credential or a host address.
  */
  environment: Array<[string, string]>,
  /**
  * The job's response-size limit in bytes: `http.send` answers
  * `too-large` past it. A body the guest decompresses is held to it too,
  * so that a decompression bomb ends its request the same way.
  */
  maxResponseBytes: bigint,
}
import type * as CozyKonnectorClock from './interfaces/cozy-konnector-clock.js'; // cozy:konnector/clock@0.1.0
import type * as CozyKonnectorDocuments from './interfaces/cozy-konnector-documents.js'; // cozy:konnector/documents@0.1.0
import type * as CozyKonnectorFiles from './interfaces/cozy-konnector-files.js'; // cozy:konnector/files@0.1.0
import type * as CozyKonnectorHttp from './interfaces/cozy-konnector-http.js'; // cozy:konnector/http@0.1.0
import type * as CozyKonnectorLog from './interfaces/cozy-konnector-log.js'; // cozy:konnector/log@0.1.0
export interface ImportObject {
  'cozy:konnector/clock@0.1.0': typeof CozyKonnectorClock,
  'cozy:konnector/documents@0.1.0': typeof CozyKonnectorDocuments,
  'cozy:konnector/files@0.1.0': typeof CozyKonnectorFiles,
  'cozy:konnector/http@0.1.0': typeof CozyKonnectorHttp,
  'cozy:konnector/log@0.1.0': typeof CozyKonnectorLog,
}
export interface Konnector {
  /**
  * Runs the job to its end: ok when done, err with a standard code when the
  * konnector gives up. Limits: fuel, linear memory and wall clock per job.
  */
  run(job: Job): void,
}
export type Result<T, E> = { tag: 'ok', val: T } | { tag: 'err', val: E };

/**
* Instantiates this component with the provided imports and
* returns a map of all the exports of the component.
*
* This function is intended to be similar to the
* `WebAssembly.Instantiate` constructor. The second `imports`
* argument is the "import object" for wasm, except here it
* uses component-model-layer types instead of core wasm
* integers/numbers/etc.
*
* The first argument to this function, `getCoreModule`, is
* used to compile core wasm modules within the component.
* Components are composed of core wasm modules and this callback
* will be invoked per core wasm module. The caller of this
* function is responsible for reading the core wasm module
* identified by `path` and returning its compiled
* `WebAssembly.Module` object. This would use the
* `WebAssembly.Module` constructor on the web, for example.
*/
export function instantiate(
getCoreModule: (path: string) => WebAssembly.Module,
imports: ImportObject,
instantiateCore?: (module: WebAssembly.Module, imports: Record<string, any>) => WebAssembly.Instance
): Konnector;

