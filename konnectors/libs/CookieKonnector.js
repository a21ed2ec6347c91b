/**
 * `CookieKonnector`, as in cozy-konnector-libs: a BaseKonnector with a
 * `this.request` (requestFactory with the options given to the constructor)
 * and a required `testSession()` the konnector uses to skip logging in:
 *
 * ```js
 * class ShopKonnector extends CookieKonnector {
 *   async testSession() { return (await this.request(`${baseUrl}/account`)).statusCode === 200 }
 *   async fetch(fields) { if (!(await this.testSession())) await this.authenticate(fields) ... }
 * }
 * const connector = new ShopKonnector({ cheerio: true, json: false })
 * connector.run()
 * ```
 *
 * The difference that matters: cookies belong to the host, in a jar private
 * to the job, which the guest can neither read nor fill. A session therefore
 * lasts one job: `initSession()` finds none, `testSession()` answers false on
 * a job's first request and the konnector logs in, as it does after a session
 * expired. `saveSession()`/`resetSession()` keep their names and store nothing
 * (there is nothing the guest could replay); the account's RESET_SESSION state
 * is still honoured.
 */
import { BaseKonnector } from './BaseKonnector.js';
import { log as baseLog } from './log.js';
import { requestFactory } from './request.js';

const log = baseLog.namespace('CookieKonnector');

export class CookieKonnector extends BaseKonnector {
  /** @param {object} [requestFactoryOptions] the options of `this.request` (cheerio, json...) */
  constructor(requestFactoryOptions) {
    // The options are this class's, not a fetch function for BaseKonnector.
    super();
    if (!this.testSession) {
      throw new Error('Could not find a testSession method. CookieKonnector needs it to test if a session is valid. Please implement it');
    }
    this._jar = requestFactory().jar();
    this.request = this.requestFactory(requestFactoryOptions);
  }

  async initAttributes() {
    await super.initAttributes();
    await this.initSession();
  }

  async end() {
    await this.saveSession();
    return super.end();
  }

  /** A requestFactory whose requests share the job's cookies (the host's jar). */
  requestFactory(options = {}) {
    return requestFactory({ ...options, jar: true });
  }

  /** Clears the account's RESET_SESSION state; resolves with false: no session outlives a job here. */
  async initSession() {
    if (this._account && this._account.state === 'RESET_SESSION') {
      log('debug', 'RESET_SESSION state found');
      try {
        await this.resetSession();
        await this.updateAccountAttributes({ state: null });
      } catch (error) {
        log('warn', `Could not reset the session: ${error.message}`);
      }
    }
    log('debug', 'Found no session: the runner keeps cookies for one job only');
    return false;
  }

  /** Nothing to save: the cookies are in the host's jar, which ends with the job. */
  async saveSession() {
    log('debug', 'the session lives in the job\'s cookie jar and ends with the job');
  }

  async resetSession() {
    log('debug', 'Reset cookie session...');
    return this.saveSession();
  }

  /** `signin` with `this.request`, so that the konnector's later requests share the session. */
  signin(options) {
    return super.signin({ ...options, requestInstance: this.request });
  }

  saveFiles(entries, fields, options) {
    return super.saveFiles(entries, fields, { ...options, requestInstance: this.request });
  }

  saveBills(entries, fields, options) {
    return super.saveBills(entries, fields, { ...options, requestInstance: this.request });
  }
}
