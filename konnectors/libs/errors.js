/**
 * The standard error codes of cozy-konnector-libs (`require('cozy-konnector-libs').errors`).
 * A konnector ends with one of them by throwing `new Error(errors.LOGIN_FAILED)`
 * or calling `this.terminate(errors.LOGIN_FAILED)`; the runtime turns it into
 * the WIT `error-code` of the same name (LOGIN_FAILED.NEEDS_SECRET is
 * login-failed-needs-secret).
 */
export const errors = Object.freeze({
  LOGIN_FAILED: 'LOGIN_FAILED',
  LOGIN_FAILED_NEEDS_SECRET: 'LOGIN_FAILED.NEEDS_SECRET',
  LOGIN_FAILED_TOO_MANY_ATTEMPTS: 'LOGIN_FAILED.TOO_MANY_ATTEMPTS',
  NOT_EXISTING_DIRECTORY: 'NOT_EXISTING_DIRECTORY',
  FILE_DOWNLOAD_FAILED: 'FILE_DOWNLOAD_FAILED',
  SAVE_FILE_FAILED: 'SAVE_FILE_FAILED',
  DISK_QUOTA_EXCEEDED: 'DISK_QUOTA_EXCEEDED',
  CHALLENGE_ASKED: 'CHALLENGE_ASKED',
  CAPTCHA_RESOLUTION_FAILED: 'CAPTCHA_RESOLUTION_FAILED',
  USER_ACTION_NEEDED: 'USER_ACTION_NEEDED',
  USER_ACTION_NEEDED_OAUTH_OUTDATED: 'USER_ACTION_NEEDED.OAUTH_OUTDATED',
  USER_ACTION_NEEDED_ACCOUNT_REMOVED: 'USER_ACTION_NEEDED.ACCOUNT_REMOVED',
  USER_ACTION_NEEDED_CHANGE_PASSWORD: 'USER_ACTION_NEEDED.CHANGE_PASSWORD',
  USER_ACTION_NEEDED_PERMISSIONS_CHANGED: 'USER_ACTION_NEEDED.PERMISSIONS_CHANGED',
  USER_ACTION_NEEDED_CGU_FORM: 'USER_ACTION_NEEDED.CGU_FORM',
  USER_ACTION_NEEDED_SCA_REQUIRED: 'USER_ACTION_NEEDED.SCA_REQUIRED',
  USER_ACTION_NEEDED_TWOFA_EXPIRED: 'USER_ACTION_NEEDED.TWOFA_EXPIRED',
  USER_ACTION_NEEDED_WEBAUTH_REQUIRED: 'USER_ACTION_NEEDED.WEBAUTH_REQUIRED',
  USER_ACTION_NEEDED_WRONG_TWOFA_CODE: 'USER_ACTION_NEEDED.WRONG_TWOFA_CODE',
  MAINTENANCE: 'MAINTENANCE',
  TERMS_VERSION_MISMATCH: 'TERMS_VERSION_MISMATCH',
  UNKNOWN_ERROR: 'UNKNOWN_ERROR',
  UNKNOWN_ERROR_PARTIAL_SYNC: 'UNKNOWN_ERROR.PARTIAL_SYNC',
  VENDOR_DOWN: 'VENDOR_DOWN',
  VENDOR_DOWN_BANK_DOWN: 'VENDOR_DOWN.BANK_DOWN',
  VENDOR_DOWN_LINXO_DOWN: 'VENDOR_DOWN.LINXO_DOWN',
});

const UNKNOWN = 'unknown-error';

/** 'LOGIN_FAILED.NEEDS_SECRET' -> 'login-failed-needs-secret' (the WIT enum's spelling). */
function witName(cozyCode) {
  return cozyCode.toLowerCase().replace(/[._]/g, '-');
}

const WIT_CODES = new Set(Object.values(errors).map(witName));

/** Whether `code` is a WIT `error-code` name, like 'login-failed'. */
export function isErrorCode(code) {
  return WIT_CODES.has(code);
}

/**
 * The WIT `error-code` for what a konnector failed with. An unknown sub-code of
 * a known code (e.g. 'LOGIN_FAILED.WRONG_OTP') keeps its parent, as cozy-home
 * shows it; anything else is 'unknown-error'.
 *
 * @param {string} cozyCode e.g. 'LOGIN_FAILED' or an error message
 * @returns {string}
 */
export function toErrorCode(cozyCode) {
  const code = String(cozyCode).trim();
  if (!/^[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)*$/.test(code)) return UNKNOWN;
  const parts = code.split('.');
  for (let n = parts.length; n > 0; n--) {
    const candidate = witName(parts.slice(0, n).join('.'));
    if (WIT_CODES.has(candidate)) return candidate;
  }
  return UNKNOWN;
}
