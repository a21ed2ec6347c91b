/**
 * Every code a job can end with (the konnector's Cozy codes, the sandbox's
 * LIMIT_EXCEEDED.* and crash, the host's HOST.*), said in words for the person
 * whose account it is: what happened, and what to do about it.
 */
import type { BudgetName } from '../../../host-api/budget.ts';
import type { CozyErrorCode, HostErrorCode } from '../../error-codes.ts';

export interface Explanation {
  /** What happened, in one sentence. */
  happened: string;
  /** What the person can do. */
  todo: string;
}

const LIMIT_WORDS: Record<BudgetName, string> = {
  FUEL: 'too much computing',
  MEMORY: 'too much memory',
  WALL_CLOCK: 'too much time',
  HTTP_REQUESTS: 'too many requests to the vendor',
  HTTP_BYTES_IN: 'too much data downloaded from the vendor',
  HTTP_BYTES_OUT: 'too much data sent to the vendor',
  DOCUMENTS: 'too many documents',
  DOCUMENTS_FINDS: 'too many searches in your documents',
  FILES: 'too many files',
  FILES_STATS: 'too many look-ups of your files',
  FILES_BYTES: 'too much file space',
  LOG_LINES: 'too many log lines',
  LOG_BYTES: 'too large a log',
};

const LIMIT_TODO = 'Nothing to do on your side: the host stops every konnector at its limits. If it happens at every run, tell the operator of this service.';
const VENDOR_TODO = 'Try again later: it usually works again within hours.';
const ON_VENDOR_SITE = 'Sign in to the vendor\'s website yourself and do what it asks, then run the konnector again.';

const COZY: Record<CozyErrorCode, Explanation> = {
  LOGIN_FAILED: { happened: 'The vendor refused the login or the password.', todo: 'Update your password (or login) in this account, then run it again.' },
  'LOGIN_FAILED.NEEDS_SECRET': { happened: 'The vendor asks for a secret the account does not have.', todo: 'Edit the account and fill in every field, then run it again.' },
  'LOGIN_FAILED.TOO_MANY_ATTEMPTS': { happened: 'The vendor blocked the sign-in after too many attempts.', todo: 'Wait until the vendor unblocks you (or unblock the account on its website), check your password, then run it again.' },
  NOT_EXISTING_DIRECTORY: { happened: 'The folder the konnector saves to does not exist any more.', todo: 'Run the konnector again: it makes the folder anew.' },
  FILE_DOWNLOAD_FAILED: { happened: 'A file could not be downloaded from the vendor.', todo: VENDOR_TODO },
  SAVE_FILE_FAILED: { happened: 'A file could not be saved in your Cozy.', todo: 'Run the konnector again; if it fails again, tell the operator of this service.' },
  DISK_QUOTA_EXCEEDED: { happened: 'Your Cozy is full.', todo: 'Free some space in your Cozy, then run the konnector again.' },
  CHALLENGE_ASKED: { happened: 'The vendor asked for an extra check (a code sent to you, a question).', todo: ON_VENDOR_SITE },
  CAPTCHA_RESOLUTION_FAILED: { happened: 'The vendor asked to solve a captcha and it failed.', todo: 'Run the konnector again later.' },
  USER_ACTION_NEEDED: { happened: 'The vendor needs you to do something on its website.', todo: ON_VENDOR_SITE },
  'USER_ACTION_NEEDED.OAUTH_OUTDATED': { happened: 'The access the vendor gave has expired.', todo: 'Connect the account again.' },
  'USER_ACTION_NEEDED.ACCOUNT_REMOVED': { happened: 'The vendor says this account does not exist any more.', todo: 'Delete this account here, or connect it again with the right login.' },
  'USER_ACTION_NEEDED.CHANGE_PASSWORD': { happened: 'The vendor asks you to change your password.', todo: 'Change it on the vendor\'s website, then update it in this account.' },
  'USER_ACTION_NEEDED.PERMISSIONS_CHANGED': { happened: 'The konnector needs new permissions.', todo: 'Connect the account again to accept them.' },
  'USER_ACTION_NEEDED.CGU_FORM': { happened: 'The vendor has new terms of use to accept.', todo: 'Accept them on the vendor\'s website, then run the konnector again.' },
  'USER_ACTION_NEEDED.SCA_REQUIRED': { happened: 'The vendor (a bank) asks for strong authentication.', todo: ON_VENDOR_SITE },
  'USER_ACTION_NEEDED.TWOFA_EXPIRED': { happened: 'The two-factor code expired before it was used.', todo: 'Run the konnector again and enter the code sooner.' },
  'USER_ACTION_NEEDED.WEBAUTH_REQUIRED': { happened: 'The vendor needs you to sign in through its website.', todo: ON_VENDOR_SITE },
  'USER_ACTION_NEEDED.WRONG_TWOFA_CODE': { happened: 'The two-factor code was wrong.', todo: 'Run the konnector again with the right code.' },
  MAINTENANCE: { happened: 'The vendor\'s website is under maintenance.', todo: VENDOR_TODO },
  TERMS_VERSION_MISMATCH: { happened: 'The konnector\'s terms changed.', todo: 'Connect the account again to accept them.' },
  UNKNOWN_ERROR: { happened: 'The konnector failed for a reason it did not name.', todo: 'Run it again; if it fails again, tell the operator of this service (the log below helps).' },
  'UNKNOWN_ERROR.PARTIAL_SYNC': { happened: 'Only part of your data could be fetched.', todo: 'Nothing to do: the next run fetches the rest.' },
  VENDOR_DOWN: { happened: 'The vendor\'s website does not answer.', todo: VENDOR_TODO },
  'VENDOR_DOWN.BANK_DOWN': { happened: 'The bank\'s website does not answer.', todo: VENDOR_TODO },
  'VENDOR_DOWN.LINXO_DOWN': { happened: 'The banking aggregator does not answer.', todo: VENDOR_TODO },
};

const HOST: Record<HostErrorCode, Explanation> = {
  'HOST.ACCOUNT_NOT_FOUND': { happened: 'The account was deleted before the run started.', todo: 'Nothing to do, unless you want to connect it again.' },
  'HOST.KONNECTOR_NOT_FOUND': { happened: 'This service does not have the konnector any more.', todo: 'Tell the operator of this service.' },
  'HOST.INTERRUPTED': { happened: 'The service restarted several times while the konnector ran.', todo: 'Run it again later.' },
  'HOST.FAILURE': { happened: 'The service failed around the run (its database did not answer...).', todo: 'Run it again later; tell the operator if it lasts.' },
};


export const LIMIT_NAMES = Object.keys(LIMIT_WORDS) as BudgetName[];

/** Any stored code: documents written by older hosts may hold one this union no longer has. */
export function explain(code: string): Explanation {
  if (code in COZY) return COZY[code as CozyErrorCode];
  if (code in HOST) return HOST[code as HostErrorCode];
  if (code === 'UNKNOWN_ERROR.CRASH') return { happened: 'The konnector crashed.', todo: COZY.UNKNOWN_ERROR.todo };
  const limit = /^LIMIT_EXCEEDED\.(.+)$/.exec(code)?.[1];
  if (limit && limit in LIMIT_WORDS) {
    return { happened: `The konnector was stopped for using ${LIMIT_WORDS[limit as BudgetName]}.`, todo: LIMIT_TODO };
  }
  // A konnector may throw a code of its own: say so plainly rather than guess.
  return { happened: `The konnector ended with the code ${code}.`, todo: COZY.UNKNOWN_ERROR.todo };
}
