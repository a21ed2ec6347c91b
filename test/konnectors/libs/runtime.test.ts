/**
 * How a konnector's outcome becomes the component's: runJob, BaseKonnector,
 * errors and log of the guest SDK, run as guest code (see guest-harness.ts).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../support/artifacts.ts';
import { createTestHost, loadGuest } from '../guest-harness.ts';

/** Runs one job of a konnector given as source; resolves with 'ok' or the failure, and the log. */
async function runKonnector(code: string, job: Parameters<Awaited<ReturnType<typeof loadGuest>>['run']>[0] = {}) {
  const host = createTestHost();
  const guest = await loadGuest({ code }, host);
  const outcome = await guest.run(job).then(() => 'ok' as const, (failure: unknown) => failure);
  return { outcome, logs: host.logs, messages: host.logs.map((line) => line.message) };
}

describe('errors and error codes', () => {
  it('maps every standard cozy code onto the WIT error-code enum, one to one', async () => {
    const wit = await readFile(path.join(repoRoot, 'wit/konnector.wit'), 'utf8');
    const enumBody = /enum error-code \{([^}]*)\}/.exec(wit)![1]!;
    const witCodes = [...enumBody.matchAll(/^\s*([a-z0-9-]+),/gm)].map((m) => m[1]);
    const guest = await loadGuest({
      code: `export { errors } from 'cozy-konnector-libs'; export { toErrorCode } from '${path.join(repoRoot, 'konnectors/libs/errors.js')}';`,
    }, createTestHost());
    const { errors, toErrorCode } = guest.exports as { errors: Record<string, string>; toErrorCode(code: string): string };
    expect(witCodes).toHaveLength(26);
    expect(Object.values(errors).map(toErrorCode).sort()).toEqual([...witCodes].sort());
    expect(errors.LOGIN_FAILED_NEEDS_SECRET).toBe('LOGIN_FAILED.NEEDS_SECRET');
    expect(toErrorCode('USER_ACTION_NEEDED.CGU_FORM')).toBe('user-action-needed-cgu-form');
    // An unknown sub-code keeps its parent; anything else is unknown-error.
    expect(toErrorCode('LOGIN_FAILED.WRONG_OTP')).toBe('login-failed');
    expect(toErrorCode('CANNOT_FIND_ACCOUNT')).toBe('unknown-error');
    expect(toErrorCode('Cannot read property x of undefined')).toBe('unknown-error');
  });
});

describe('runJob and BaseKonnector', () => {
  it('runs the start function with the job fields, parameters and account, and succeeds', async () => {
    const { outcome, messages } = await runKonnector(`
      const { BaseKonnector, log } = require('cozy-konnector-libs')
      module.exports = new BaseKonnector(async function start(fields, parameters) {
        log('info', JSON.stringify({ fields, parameters, accountId: this.accountId, same: fields === this.fields }))
      })`, { accountId: 'acc-42', fields: { login: 'jane' }, parameters: { since: '2024' } });
    expect(outcome).toBe('ok');
    expect(messages).toContain('{"fields":{"login":"jane"},"parameters":{"since":"2024"},"accountId":"acc-42","same":true}');
    expect(messages.at(-1)).toBe('BaseKonnector: The connector has been run');
  });

  it('fails with the WIT code of the cozy error the konnector throws', async () => {
    const { outcome, logs } = await runKonnector(`
      const { BaseKonnector, errors } = require('cozy-konnector-libs')
      module.exports = new BaseKonnector(async () => { throw new Error(errors.LOGIN_FAILED_NEEDS_SECRET) })`);
    expect(outcome).toEqual({ code: 'login-failed-needs-secret', message: 'LOGIN_FAILED.NEEDS_SECRET' });
    expect(logs.at(-1)).toEqual({ level: 'critical', message: 'BaseKonnector: LOGIN_FAILED.NEEDS_SECRET' });
  });

  it('fails with unknown-error and the message for any other error, thrown Error or string', async () => {
    const error = await runKonnector(`
      const { BaseKonnector } = require('cozy-konnector-libs')
      module.exports = new BaseKonnector(async () => { null.property })`);
    expect(error.outcome).toEqual({ code: 'unknown-error', message: expect.stringContaining('null') });
    const text = await runKonnector(`
      const { BaseKonnector } = require('cozy-konnector-libs')
      module.exports = new BaseKonnector(() => Promise.reject('VENDOR_DOWN'))`);
    expect(text.outcome).toEqual({ code: 'vendor-down', message: 'VENDOR_DOWN' });
  });

  it("names the host's error when a konnector does not catch a failed host call, not the engine's wrapper", async () => {
    // The shape componentize-js's bindings throw for an import's WIT `err`.
    const { outcome } = await runKonnector(`
      export async function run() {
        const error = new Error('[object Object] (see error.payload)');
        Object.defineProperty(error, 'payload', { value: { kind: 'timeout', message: 'no answer from shop.example in 30 s' } });
        throw error;
      }`);
    expect(outcome).toEqual({ code: 'unknown-error', message: 'a host call failed (timeout): no answer from shop.example in 30 s' });
    const plain = await runKonnector(`export async function run() { throw new Error('plain failure') }`);
    expect(plain.outcome).toEqual({ code: 'unknown-error', message: 'plain failure' });
  });

  it('ends the job at terminate(), even when the konnector catches it', async () => {
    const { outcome, messages } = await runKonnector(`
      const { BaseKonnector, errors, log } = require('cozy-konnector-libs')
      module.exports = new BaseKonnector(async function start() {
        try {
          this.terminate(errors.USER_ACTION_NEEDED_CGU_FORM)
          log('info', 'after terminate')
        } catch (swallowed) {}
        log('info', 'konnector went on')
      })`);
    expect(outcome).toEqual({ code: 'user-action-needed-cgu-form', message: 'USER_ACTION_NEEDED.CGU_FORM' });
    expect(messages).not.toContain('after terminate');
    expect(messages).toContain('BaseKonnector: USER_ACTION_NEEDED.CGU_FORM');
  });

  it('runs a subclass with a fetch method, whose run() at module load does nothing', async () => {
    const { outcome, messages } = await runKonnector(`
      const { BaseKonnector, log } = require('cozy-konnector-libs')
      class MyKonnector extends BaseKonnector {
        async fetch(fields) { log('info', 'fetching for ' + fields.login) }
      }
      const connector = new MyKonnector()
      connector.run()
      module.exports = connector`, { fields: { login: 'sam' } });
    expect(outcome).toBe('ok');
    expect(messages.filter((m) => m === 'fetching for sam')).toHaveLength(1);
  });

  it('lets a konnector that overrides fail() end successfully, as under Node', async () => {
    const { outcome, messages } = await runKonnector(`
      const { BaseKonnector, log } = require('cozy-konnector-libs')
      class Lenient extends BaseKonnector {
        fail(error) { log('warn', 'ignored: ' + error.message) }
      }
      module.exports = new Lenient(async () => { throw new Error('MAINTENANCE') })`);
    expect(outcome).toBe('ok');
    expect(messages).toContain('ignored: MAINTENANCE');
  });

  it('calls an ES module konnector own run(job) when it creates no BaseKonnector', async () => {
    const { outcome, messages } = await runKonnector(`
      import { log } from 'cozy-konnector-libs'
      export async function run(job) { log('info', 'own run for ' + job.accountId) }`, { accountId: 'acc-7' });
    expect(outcome).toBe('ok');
    expect(messages).toEqual(['own run for acc-7']);
  });

  it('explains a konnector without entry point, or with two BaseKonnectors', async () => {
    expect((await runKonnector('module.exports = { start() {} }')).outcome).toEqual({
      code: 'unknown-error', message: 'the konnector neither exports run() nor creates a BaseKonnector',
    });
    const two = await runKonnector(`
      const { BaseKonnector } = require('cozy-konnector-libs')
      new BaseKonnector(() => {})
      module.exports = new BaseKonnector(() => {})`);
    expect(two.outcome).toEqual({ code: 'unknown-error', message: 'the konnector created 2 BaseKonnector instances; create exactly one' });
  });

  it('refuses job fields that are not a JSON object, naming them', async () => {
    const code = `const { BaseKonnector } = require('cozy-konnector-libs'); module.exports = new BaseKonnector(() => {})`;
    expect((await runKonnector(code, { fields: '{"login": ' })).outcome).toEqual({
      code: 'unknown-error', message: expect.stringMatching(/^the job's fields are not valid JSON/),
    });
    expect((await runKonnector(code, { parameters: '[1]' })).outcome).toEqual({
      code: 'unknown-error', message: "the job's parameters must be a JSON object, got [1]",
    });
  });

  it('names the cozy-konnector-libs features this runner lacks instead of "not a function"', async () => {
    const { outcome } = await runKonnector(`
      const { BaseKonnector, utils } = require('cozy-konnector-libs')
      module.exports = new BaseKonnector(async () => { await utils.getPdfText('file-id') })`);
    expect(outcome).toEqual({
      code: 'unknown-error',
      message: 'utils.getPdfText is not supported by the WebAssembly konnector runner: files cannot be read back from the Cozy',
    });
    const client = await runKonnector(`
      const { BaseKonnector, cozyClient } = require('cozy-konnector-libs')
      module.exports = new BaseKonnector(async () => { await cozyClient.files.statByPath('/') })`);
    expect(client.outcome).toMatchObject({ message: expect.stringMatching(/^cozyClient\.files is not supported/) });
    const method = await runKonnector(`
      const { BaseKonnector } = require('cozy-konnector-libs')
      module.exports = new BaseKonnector(async function () { await this.waitForTwoFaCode() })`);
    expect(method.outcome).toMatchObject({ message: expect.stringMatching(/^BaseKonnector#waitForTwoFaCode is not supported/) });
  });
});

describe('log', () => {
  it("maps cozy-logger levels onto the host's, with namespace and label", async () => {
    const { outcome, logs } = await runKonnector(`
      import { log } from 'cozy-konnector-libs'
      export async function run() {
        log('debug', 'd'); log('info', { n: 1 }); log('ok', 'done'); log('warn', 'w', 'label')
        log('error', new TypeError('bad')); log('critical', 'c'); log('secret', 'never shown')
        log.namespace('mine')('info', 'namespaced')
      }`);
    expect(outcome).toBe('ok');
    expect(logs).toEqual([
      { level: 'debug', message: 'd' },
      { level: 'info', message: '{"n":1}' },
      { level: 'info', message: 'done' },
      { level: 'warning', message: 'w (label)' },
      { level: 'error', message: 'TypeError: bad' },
      { level: 'critical', message: 'c' },
      { level: 'info', message: 'mine: namespaced' },
    ]);
  });

  it('refuses an unknown level, listing the valid ones', async () => {
    const { outcome } = await runKonnector(`
      const { BaseKonnector, log } = require('cozy-konnector-libs')
      module.exports = new BaseKonnector(() => log('verbose', 'x'))`);
    expect(outcome).toEqual({
      code: 'unknown-error',
      message: 'log: unknown level "verbose": use one of debug, info, ok, warn, warning, error, critical, secret',
    });
  });
});
