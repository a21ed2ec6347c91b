import type { BudgetName } from '../host-api/budget.ts';
import type { ErrorCode as WitErrorCode } from '../wit/types/konnector.js';

/**
 * The standard Cozy error codes (cozy-konnector-libs `errors`). The WIT enum
 * spells each one in kebab case: LOGIN_FAILED.NEEDS_SECRET is
 * `login-failed-needs-secret`.
 */
export const COZY_ERROR_CODES = [
  'LOGIN_FAILED',
  'LOGIN_FAILED.NEEDS_SECRET',
  'LOGIN_FAILED.TOO_MANY_ATTEMPTS',
  'NOT_EXISTING_DIRECTORY',
  'FILE_DOWNLOAD_FAILED',
  'SAVE_FILE_FAILED',
  'DISK_QUOTA_EXCEEDED',
  'CHALLENGE_ASKED',
  'CAPTCHA_RESOLUTION_FAILED',
  'USER_ACTION_NEEDED',
  'USER_ACTION_NEEDED.OAUTH_OUTDATED',
  'USER_ACTION_NEEDED.ACCOUNT_REMOVED',
  'USER_ACTION_NEEDED.CHANGE_PASSWORD',
  'USER_ACTION_NEEDED.PERMISSIONS_CHANGED',
  'USER_ACTION_NEEDED.CGU_FORM',
  'USER_ACTION_NEEDED.SCA_REQUIRED',
  'USER_ACTION_NEEDED.TWOFA_EXPIRED',
  'USER_ACTION_NEEDED.WEBAUTH_REQUIRED',
  'USER_ACTION_NEEDED.WRONG_TWOFA_CODE',
  'MAINTENANCE',
  'TERMS_VERSION_MISMATCH',
  'UNKNOWN_ERROR',
  'UNKNOWN_ERROR.PARTIAL_SYNC',
  'VENDOR_DOWN',
  'VENDOR_DOWN.BANK_DOWN',
  'VENDOR_DOWN.LINXO_DOWN',
] as const;

export type CozyErrorCode = (typeof COZY_ERROR_CODES)[number];

/** A code as the WIT enum spells it: LOGIN_FAILED.NEEDS_SECRET is login-failed-needs-secret. */
type WitName<Code extends string> = Kebab<Code extends `${infer A}.${infer B}` ? `${A}_${B}` : Code>;
type Kebab<Name extends string> = Name extends `${infer A}_${infer B}` ? `${Lowercase<A>}-${Kebab<B>}` : Lowercase<Name>;

// The list above is the WIT's enum `error-code`, one for one: either side gaining a code fails to type-check.
const sameAsTheWit: [WitName<CozyErrorCode>, WitErrorCode] extends [WitErrorCode, WitName<CozyErrorCode>] ? true : never = true;
void sameAsTheWit;

export const witErrorName = (code: string): string => code.toLowerCase().replace(/[._]/g, '-');

const byWitName = new Map<string, CozyErrorCode>(COZY_ERROR_CODES.map((code) => [witErrorName(code), code]));

export function cozyErrorCode(witName: string): CozyErrorCode {
  return byWitName.get(witName) ?? 'UNKNOWN_ERROR';
}

/**
 * Codes the runner itself ends a job with, beside the konnector's own:
 * a budget it exceeded, or a crash of its code (a trap).
 */
export type SandboxErrorCode = `LIMIT_EXCEEDED.${BudgetName}` | 'UNKNOWN_ERROR.CRASH';

/**
 * Codes the host itself ends a job with, beside the konnector's own codes and
 * the sandbox's.
 */
export type HostErrorCode =
  /** The job's io.cozy.accounts document was deleted before the job ran. */
  | 'HOST.ACCOUNT_NOT_FOUND'
  /** No artifact in --konnectors has the account's konnector slug. */
  | 'HOST.KONNECTOR_NOT_FOUND'
  /** The job's host died (or was drained) too many times while running it. */
  | 'HOST.INTERRUPTED'
  /** The host failed around the job (CouchDB unreachable...): retried like a konnector error. */
  | 'HOST.FAILURE';

/** Every code a job can end with, in reports, job documents, the retry policy, metrics and the API. */
export type JobErrorCode = CozyErrorCode | SandboxErrorCode | HostErrorCode;

/** LOGIN_FAILED and USER_ACTION_NEEDED, with their sub-codes: the user has to act (the vendor refused the login). */
export function needsTheUser(code: JobErrorCode): boolean {
  return /^(LOGIN_FAILED|USER_ACTION_NEEDED)(\.|$)/.test(code);
}
