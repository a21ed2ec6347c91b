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
 * to the job, which the guest can neither read nor fill. `saveSession()` asks
 * the host to keep that jar for the account's next job (WIT http.keep-session),
 * which then starts with it and `testSession()` finds the session alive;
 * `resetSession()` empties the jar and forgets the kept one. The account's
 * RESET_SESSION state is honoured; a LOGIN_FAILED ending forgets the session.
 */
import { BaseKonnector } from './BaseKonnector.js';
import { keepSession } from './host.js';
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

  /** A requestFactory whose requests share the job's cookies (the host's jar), mirrored in `this._jar` for reading. */
  requestFactory(options = {}) {
    return requestFactory({ ...options, jar: this._jar });
  }

  /**
   * Honours the account's RESET_SESSION state. Resolves with false: whether
   * the kept session is still alive is for `testSession()` to tell.
   */
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
    return false;
  }

  /** The host keeps the job's cookies for the account's next job. */
  async saveSession() {
    keepSession(true);
  }

  async resetSession() {
    log('debug', 'Reset cookie session...');
    keepSession(false);
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
