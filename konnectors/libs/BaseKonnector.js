/**
 * The class every konnector starts from, as in cozy-konnector-libs:
 *
 * ```js
 * const { BaseKonnector } = require('cozy-konnector-libs')
 * module.exports = new BaseKonnector(async function start (fields) { ... })
 * ```
 *
 * Differences with Node: the constructor only registers the konnector (the
 * module is evaluated at build time, when nothing may run); the runtime calls
 * `run()` when the host starts a job. `fields` and `parameters` come from the
 * job, not from environment variables, and `terminate()` unwinds the konnector
 * instead of exiting the process.
 */
import { currentJob, JobTermination, recordTermination, registerKonnector } from './context.js';
import { findDocuments, saveDocument } from './host.js';
import { HostError, InvalidArgumentError, UnsupportedError } from './exceptions.js';
import { log as baseLog } from './log.js';
import { saveBills } from './saveBills.js';
import { saveFiles } from './saveFiles.js';
import { saveIdentity } from './saveIdentity.js';
import { signin } from './signin.js';
import { updateOrCreate } from './updateOrCreate.js';

const log = baseLog.namespace('BaseKonnector');
const ACCOUNTS = 'io.cozy.accounts';
// As cozy-konnector-libs: keep the critical line short enough for the stack's log reader.
const LOG_ERROR_MSG_LIMIT = 32 * 1024 - 1;

function notSupported(method, hint) {
  return function unsupported() {
    throw new UnsupportedError(`BaseKonnector#${method}`, hint);
  };
}

export class BaseKonnector {
  /**
   * @param {Function} [fetch] the konnector's main function, called with `(fields, parameters)`
   *   and `this` bound to the konnector; subclasses may define a `fetch` method instead
   */
  constructor(fetch) {
    if (fetch !== undefined && typeof fetch !== 'function') {
      throw new InvalidArgumentError('new BaseKonnector(fetch): fetch must be a function');
    }
    if (fetch) this.fetch = fetch.bind(this);
    registerKonnector(this);
  }

  /**
   * Runs the job: initializes the attributes, awaits `main`, then `end`; any
   * error goes to `fail`. Outside a job (while the module is evaluated) it does
   * nothing: the runtime calls it again when the job starts.
   */
  async run() {
    if (!currentJob()) return;
    try {
      log('info', 'Preparing konnector...');
      await this.initAttributes();
      log('info', 'Running konnector main...');
      await this.main(this.fields, this.parameters);
      await this.end();
    } catch (error) {
      if (error instanceof JobTermination) throw error;
      log('warn', 'Error from konnector');
      await this.fail(error);
    }
  }

  /** Sets `fields`, `parameters`, `accountId` and the cached account document. */
  async initAttributes() {
    const job = currentJob();
    this.fields = { ...job.fields };
    this.parameters = { ...job.parameters };
    this.accountId = job.accountId;
    this._account = await this.getAccount(job.accountId);
  }

  /**
   * The job's io.cozy.accounts document, or null when it cannot be read (the
   * manifest does not grant io.cozy.accounts, or the runner has no such
   * document): the fields come with the job, so the konnector can still run.
   */
  async getAccount(accountId) {
    try {
      const [account] = await findDocuments(ACCOUNTS, { _id: accountId }, 1);
      if (!account) log('debug', `No ${ACCOUNTS} document ${accountId}: account data is not available`);
      return account ?? null;
    } catch (error) {
      if (!(error instanceof HostError)) throw error;
      log(error.kind === 'forbidden' ? 'debug' : 'warn', `Cannot read the account ${accountId}: ${error.message}`);
      return null;
    }
  }

  /** The konnector's work; by default calls the function given to the constructor. */
  main(fields, parameters) {
    if (typeof this.fetch !== 'function') {
      throw new InvalidArgumentError('BaseKonnector: give a function to the constructor or define a `fetch` method');
    }
    return this.fetch(fields, parameters);
  }

  /** Hook called when `main` succeeded. */
  end() {
    log('info', 'The connector has been run');
  }

  /** Hook called with what `main` threw; by default ends the job with its message as error code. */
  fail(error) {
    log('info', 'Error caught by BaseKonnector');
    this.terminate(error && error.message ? error.message : error);
  }

  /**
   * Ends the job now with an error code (see `errors`), like the Node version's
   * `process.exit`: it throws, so nothing after it runs.
   *
   * @param {string} reason e.g. errors.LOGIN_FAILED
   * @returns {never}
   */
  terminate(reason) {
    const message = String(reason).slice(0, LOG_ERROR_MSG_LIMIT);
    log('critical', message);
    const termination = new JobTermination(message);
    recordTermination(termination);
    throw termination;
  }

  /** `saveBills` with the job's account as `sourceAccount` and `fields.login` as `sourceAccountIdentifier`. */
  saveBills(entries, fields, options = {}) {
    return saveBills(entries, fields, {
      sourceAccount: this.accountId,
      sourceAccountIdentifier: fields && fields.login,
      ...options,
    });
  }

  /** `saveFiles` with the job's account as `sourceAccount` and `fields.login` as `sourceAccountIdentifier`. */
  saveFiles(entries, fields, options = {}) {
    return saveFiles(entries, fields, {
      sourceAccount: this.accountId,
      sourceAccountIdentifier: fields && fields.login,
      ...options,
    });
  }

  /** `updateOrCreate` with the job's account as `sourceAccount` (and `options.fields.login` as identifier). */
  updateOrCreate(entries, doctype, matchingAttributes, options = {}) {
    return updateOrCreate(entries, doctype, matchingAttributes, {
      sourceAccount: this.accountId,
      sourceAccountIdentifier: options.fields && options.fields.login,
      ...options,
    });
  }

  /** `saveIdentity` with `accountIdentifier` as `sourceAccountIdentifier`. */
  saveIdentity(contact, accountIdentifier, options = {}) {
    return saveIdentity(contact, accountIdentifier, {
      sourceAccount: this.accountId,
      sourceAccountIdentifier: accountIdentifier,
      ...options,
    });
  }

  /**
   * `signin`, whose errors reject as upstream's async method's do (the account's login state is not written:
   * cozy-home does not watch this runner's jobs).
   */
  async signin(options) {
    return signin(options);
  }

  /** The `data` saved by `saveAccountData` on a previous run (a copy). */
  getAccountData() {
    return { ...(this._account && this._account.data) };
  }

  /**
   * Saves `data` in the account document, to read it back on the next runs.
   * Needs io.cozy.accounts write permission in the manifest.
   *
   * @param {object} data
   * @param {{ merge?: boolean }} [options] merge with the saved data (default) or replace it
   */
  async saveAccountData(data, options = {}) {
    const merge = options.merge === undefined ? true : options.merge;
    const account = await this.updateAccountAttributes({ data: { ...(merge ? this.getAccountData() : {}), ...data } });
    return account.data;
  }

  /** Merges `attributes` into the account document and saves it. */
  async updateAccountAttributes(attributes) {
    if (!this._account) {
      throw new InvalidArgumentError(`updateAccountAttributes: the ${ACCOUNTS} document ${this.accountId} could not be read ` +
        '(see the log): the manifest must grant io.cozy.accounts and the account must exist');
    }
    this._account = await saveDocument(ACCOUNTS, { ...this._account, ...attributes });
    return this._account;
  }

  /** Tells cozy-home the login succeeded (account state LOGIN_SUCCESS). */
  async notifySuccessfulLogin() {
    log('info', 'Notify Cozy-Home of successful login');
    await this.updateAccountAttributes({ state: 'LOGIN_SUCCESS' });
  }

  /** Tells cozy-home to wait for `notifySuccessfulLogin` (account state HANDLE_LOGIN_SUCCESS). */
  async deactivateAutoSuccessfulLogin() {
    if (this._autoSuccessDeactivated) return;
    this._autoSuccessDeactivated = true;
    log('info', 'Deactivating auto success for Cozy-Home');
    await this.updateAccountAttributes({ state: 'HANDLE_LOGIN_SUCCESS' });
  }
}

Object.assign(BaseKonnector.prototype, {
  waitForTwoFaCode: notSupported('waitForTwoFaCode', 'two-factor codes need a user interface this runner does not have'),
  getCozyMetadata: notSupported('getCozyMetadata', 'the host adds cozyMetadata to every document it saves'),
});
