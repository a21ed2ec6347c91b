/**
 * My Accounts in a real browser (chromium through playwright-core) against a
 * real host running the example konnector on its vendor site, with sign-in
 * links going through a real SMTP server. SCREENSHOTS_DIR=docs saves the
 * screens docs/my-accounts.md shows.
 */
import path from 'node:path';
import nano from 'nano';
import * as OTPAuth from 'otpauth';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { databaseName } from '../../../host-api/documents.ts';
import { LINK_SENT } from '../../../runner/serve/web/index.ts';
import { LINK_MS } from '../../../runner/serve/web/auth.ts';
import { CHROMIUM, describeWithService } from '../../support/services.ts';
import { launchChromium, linkIn, newPage, startMyAccountsHost, TOKEN, type MyAccountsHost } from './kit.ts';

const screenshotsDir = process.env.SCREENSHOTS_DIR;
async function screenshot(page: Page, name: string): Promise<void> {
  if (screenshotsDir) await page.screenshot({ path: path.resolve(screenshotsDir, `my-accounts-${name}.png`), fullPage: true });
}

const RUN_DEADLINE = 60_000;

describeWithService(CHROMIUM, 'My Accounts in chromium', (executable) => {
  let env: MyAccountsHost;
  let browser: Browser;

  beforeAll(async () => {
    [env, browser] = await Promise.all([startMyAccountsHost(), launchChromium(executable)]);
  });

  afterAll(async () => {
    await browser?.close();
    await env?.stop();
  });

  /** Waits until the run page shows the job ended in `state`. */
  async function runEnds(page: Page, state: 'Done' | 'Failed'): Promise<void> {
    await expect.poll(() => page.getByRole('status').first().textContent(), { timeout: RUN_DEADLINE }).toMatch(new RegExp(`^${state}`));
  }

  /** The run page shows every line of the job's log, once each, in order. */
  async function logShownWhole(page: Page): Promise<void> {
    const jobId = decodeURIComponent(/#\/jobs\/(.+)$/.exec(page.url())![1]!);
    const { body: job } = await env.operator('GET', `/jobs/${jobId}`);
    const shown = await page.getByRole('list', { name: 'Log of the run' }).locator('li').allTextContents();
    expect(shown).toEqual(job.logs.map((line: { level: string; message: string }) => `${line.level} ${line.message}`));
  }

  /** Every form control of the page has a label a screen reader says. */
  async function everyControlLabelled(page: Page): Promise<void> {
    const unlabelled = await page.evaluate(() => Array.from(document.querySelectorAll('input, select, textarea'))
      .filter((control) => (control as HTMLInputElement).labels?.length === 0 && !control.getAttribute('aria-label'))
      .map((control) => control.outerHTML));
    expect(unlabelled).toEqual([]);
  }

  async function signInAsOperator(page: Page): Promise<void> {
    await page.goto(`${env.url}/app/`);
    await page.getByText('Operator of this host').click();
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in as the operator' }).click();
    await page.getByRole('heading', { name: 'Your accounts' }).waitFor();
  }

  it('the operator connects an account, follows the run live, sees the bills saved, provokes LOGIN_FAILED and fixes the password, pauses and resumes the schedule, deletes the account', async () => {
    const { context, page } = await newPage(browser);
    await page.goto(`${env.url}/app/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await everyControlLabelled(page);
    await screenshot(page, 'sign-in');
    await signInAsOperator(page);

    await page.getByRole('navigation').getByRole('link', { name: 'Connect an account' }).click();
    const card = page.getByRole('listitem').filter({ hasText: 'Example Energy' });
    await expect.poll(() => card.textContent()).toContain('energy.example');
    expect(await card.textContent()).toContain('bills');
    expect(await card.textContent()).toContain('$administrative/$konnector/$account');
    await screenshot(page, 'catalog');
    await page.getByRole('link', { name: 'Connect Example Energy' }).click();

    await page.getByLabel('Login').fill(env.site.credentials.login);
    await page.getByLabel('Password').fill(env.site.credentials.password);
    await page.getByLabel('Cozy instance').fill('alice.cozy.example');
    // The manifest says weekly: the form proposes it.
    expect(await page.getByLabel('Runs').inputValue()).toBe('weekly');
    await everyControlLabelled(page);
    await screenshot(page, 'connect');
    // The vendor does not answer yet: the lines the konnector wrote before it must show while the run goes on.
    const releaseVendor = env.vendorGate.hold();
    await page.getByRole('button', { name: 'Connect and run now' }).click();
    await page.getByRole('list', { name: 'Log of the run' }).getByText('Authenticating ...').waitFor({ timeout: RUN_DEADLINE });
    await expect.poll(() => page.getByRole('status').first().textContent()).toBe('Running');
    releaseVendor();
    await page.getByRole('list', { name: 'Log of the run' }).getByText('Successfully logged in').waitFor({ timeout: RUN_DEADLINE });
    await runEnds(page, 'Done');
    await logShownWhole(page);
    expect(await page.locator('[data-saved]').textContent()).toMatch(/\b6 bills\b/);
    await screenshot(page, 'run-done');

    // A wrong password: the run fails LOGIN_FAILED, explained, with the way to fix it.
    await page.getByRole('link', { name: 'The account' }).click();
    await page.getByRole('heading', { name: 'Login' }).waitFor();
    expect(await page.getByLabel('Login').inputValue()).toBe(env.site.credentials.login);
    expect(await page.getByLabel('Password').inputValue()).toBe('');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Save and run' }).click();
    await runEnds(page, 'Failed');
    await logShownWhole(page);
    const explanation = page.getByRole('alert');
    expect(await explanation.textContent()).toContain('The vendor refused the login or the password.');
    expect(await explanation.textContent()).toContain('Update your password');
    expect(await explanation.textContent()).toContain('LOGIN_FAILED');
    await screenshot(page, 'run-login-failed');

    await page.getByRole('link', { name: 'Update the login of this account' }).click();
    await page.getByLabel('Password').fill(env.site.credentials.password);
    await page.getByRole('button', { name: 'Save and run' }).click();
    await runEnds(page, 'Done');
    await page.getByRole('link', { name: 'The account' }).click();
    const history = page.getByRole('table', { name: 'Last runs' });
    await history.waitFor();
    const outcomes = await history.locator('tbody tr td:nth-child(2)').allTextContents();
    expect(outcomes).toEqual(['Done', 'Failed: The vendor refused the login or the password.', 'Done']);
    expect(await page.locator('body').textContent()).not.toMatch(/\b(null|undefined|NaN)\b/);
    await everyControlLabelled(page);
    await screenshot(page, 'account');

    // The password never comes back, from the app's API nor the host's.
    const accounts = await env.operator('GET', '/accounts');
    expect(JSON.stringify(accounts.body)).not.toContain(env.site.credentials.password);
    const [account] = accounts.body.accounts;

    // Pause, then resume daily.
    const schedule = async (choice: string, words: string) => {
      await page.getByLabel('Runs').selectOption(choice);
      await page.getByRole('button', { name: 'Save the schedule' }).click();
      await page.getByRole('status').filter({ hasText: `Schedule: ${words}.` }).waitFor();
    };
    await schedule('paused', 'Paused');
    expect((await env.host.store.triggers.find({ 'message.account': account.id })).map((t) => t.type)).toEqual(['@manual']);
    await schedule('daily', 'Every day');
    expect((await env.host.store.triggers.find({ 'message.account': account.id })).map((t) => t.type)).toEqual(['@daily']);

    // Delete: the account and its trigger go, the bills it saved stay.
    await page.getByRole('button', { name: 'Delete this account' }).click();
    await page.getByRole('button', { name: 'Yes, delete it' }).click();
    await page.getByRole('heading', { name: 'Your accounts' }).waitFor();
    expect(await page.getByText('No account yet.').count()).toBe(1);
    expect(await env.host.store.triggers.find({ 'message.account': account.id })).toEqual([]);
    const bills = nano(env.host.couchUrl).use(decodeURIComponent(databaseName('alice.cozy.example', 'io.cozy.bills')));
    expect((await bills.find({ selector: { vendor: 'Example Energy' } })).docs).toHaveLength(6);
    await context.close();
  });

  it('can be used with the keyboard alone, and shows what a konnector or a person typed as text, never as markup', async () => {
    const { context, page } = await newPage(browser, 390);
    await page.goto(`${env.url}/app/`);
    const email = page.getByLabel('Your e-mail address');
    await email.waitFor();
    for (let tabs = 0; tabs < 6 && !(await email.evaluate((input) => input === document.activeElement)); tabs++) await page.keyboard.press('Tab');
    await page.keyboard.type('someone@mail.test');
    await page.keyboard.press('Enter');
    expect(await page.getByRole('status').textContent()).toBe(LINK_SENT);

    const label = '<img src=x onerror="window.pwned=1">Home <b>bills</b>';
    await env.operator('PUT', '/instances/kim.cozy.example', { email: 'kim@mail.test' });
    const connect = await env.operator('POST', '/accounts', { konnector: 'example-bills', instance: 'kim.cozy.example', frequency: 'weekly', label,
      fields: { login: env.site.credentials.login, password: env.site.credentials.password } });
    expect(connect.status).toBe(201);
    await page.goto(`${env.url}/app/`);
    await page.getByLabel('Your e-mail address').fill('kim@mail.test');
    await page.getByRole('button', { name: 'Send me a sign-in link' }).click();
    await page.goto(linkIn(await env.smtp.nextMail('kim@mail.test')));
    await page.getByRole('link', { name: label }).click();
    await page.getByRole('heading', { name: label }).waitFor();
    expect(await page.locator('main img, main b').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    await context.close();
  });

  /** Asks for a link on a fresh page and returns the words the page answered. */
  async function askForLink(email: string): Promise<string> {
    const { context, page } = await newPage(browser, 390);
    await page.goto(`${env.url}/app/`);
    await page.getByLabel('Your e-mail address').fill(email);
    await page.getByRole('button', { name: 'Send me a sign-in link' }).click();
    const words = await page.getByRole('status').textContent();
    if (email === 'alice@mail.test') await screenshot(page, 'link-sent');
    await context.close();
    return words ?? '';
  }

  it('an owner signs in with a link sent by e-mail: once, within 10 minutes, and an unknown address reads the same', async () => {
    expect((await env.operator('PUT', '/instances/alice.cozy.example', { email: 'alice@mail.test' })).status).toBe(200);
    expect((await env.operator('POST', '/accounts', { konnector: 'example-bills', instance: 'alice.cozy.example', frequency: 'weekly',
      label: 'Home energy', fields: env.site.credentials })).status).toBe(201);
    expect(await askForLink('nobody@mail.test')).toBe(LINK_SENT);
    expect(await askForLink('alice@mail.test')).toBe(LINK_SENT);
    const link = linkIn(await env.smtp.nextMail('alice@mail.test'));
    expect(new URL(link).searchParams.get('token')).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 bits
    expect(env.smtp.mails.flatMap((m) => m.to)).not.toContain('nobody@mail.test');

    // Alice clicks the link in her webmail: a page of another site.
    const alice = await newPage(browser, 390);
    const opened = alice.page.waitForRequest((request) => request.url() === link);
    await alice.page.setContent(`<a href="${link}">Sign in to My Accounts</a>`);
    await alice.page.getByRole('link', { name: 'Sign in to My Accounts' }).click();
    expect((await (await opened).allHeaders())['sec-fetch-site']).toBe('cross-site');
    await alice.page.getByRole('heading', { name: 'Your accounts' }).waitFor();
    expect(alice.page.url()).toBe(`${env.url}/app/#/`); // the token left the address bar
    expect(await alice.page.getByRole('navigation').textContent()).toContain('alice.cozy.example');
    await alice.page.getByRole('link', { name: 'Home energy' }).waitFor();
    expect(await alice.page.locator('body').textContent()).not.toMatch(/\b(null|undefined|NaN)\b/);
    await screenshot(alice.page, 'accounts-phone');
    const cookies = await alice.context.cookies();
    expect(cookies.find((c) => c.name === 'ma_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });

    // The same link a second time: refused.
    const again = await newPage(browser);
    await again.page.goto(link);
    await again.page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(await again.page.getByRole('alert').textContent()).toContain('already used, has expired');
    await again.context.close();

    // A link used after 10 minutes: refused; the benign twin, a fresh link, works.
    await askForLink('alice@mail.test');
    const late = linkIn(await env.smtp.nextMail('alice@mail.test'));
    env.clock.advance(LINK_MS + 1000);
    const expired = await newPage(browser);
    await expired.page.goto(late);
    expect(await expired.page.getByRole('alert').textContent()).toContain('already used, has expired');
    await askForLink('alice@mail.test');
    await expired.page.goto(linkIn(await env.smtp.nextMail('alice@mail.test')));
    await expired.page.getByRole('heading', { name: 'Your accounts' }).waitFor();
    await expired.context.close();
    await alice.context.close();
  });

  it('when the instance has 2FA on, the link leads to a TOTP step before the session exists', async () => {
    // The operator records the owner on the Owners page, and gets the TOTP key once.
    const operator = await newPage(browser);
    await signInAsOperator(operator.page);
    await operator.page.getByRole('link', { name: 'Owners' }).click();
    await operator.page.getByLabel('Cozy instance').fill('bob.cozy.example');
    await operator.page.getByLabel('Owner\'s e-mail address').fill('bob@mail.test');
    await operator.page.getByLabel('Two-factor sign-in').check();
    await operator.page.getByRole('button', { name: 'Save' }).click();
    const uri = await operator.page.locator('.secret').textContent();
    const totp = OTPAuth.URI.parse(uri!) as OTPAuth.TOTP;
    await operator.page.reload();
    await operator.page.getByRole('cell', { name: 'bob@mail.test' }).waitFor();
    expect(await operator.page.locator('.secret').count()).toBe(0);
    await screenshot(operator.page, 'owners');
    await operator.context.close();
    await askForLink('bob@mail.test');
    const bob = await newPage(browser);
    await bob.page.goto(linkIn(await env.smtp.nextMail('bob@mail.test')));
    await bob.page.getByRole('heading', { name: 'Second step' }).waitFor();
    expect((await bob.context.cookies()).map((c) => c.name)).not.toContain('ma_session');
    await screenshot(bob.page, 'second-step');
    await bob.page.getByLabel('Six-digit code').fill(String((Number(totp.generate({ timestamp: env.clock.now() })) + 1) % 1_000_000).padStart(6, '0'));
    await bob.page.getByRole('button', { name: 'Sign in' }).click();
    expect(await bob.page.getByRole('alert').textContent()).toContain('not the right one');
    await bob.page.getByLabel('Six-digit code').fill(totp.generate({ timestamp: env.clock.now() }));
    await bob.page.getByRole('button', { name: 'Sign in' }).click();
    await bob.page.getByRole('heading', { name: 'Your accounts' }).waitFor();
    expect(await bob.page.getByRole('navigation').textContent()).toContain('bob.cozy.example');
    await bob.context.close();
  });

  it('an owner cannot reach another instance\'s account or run by changing an id; their own they can', async () => {
    const connect = (instance: string) => env.operator('POST', '/accounts', {
      konnector: 'example-bills', instance, frequency: 'daily', fields: { login: 'x@example.org', password: 'wrong' },
    });
    const [own, others] = [(await connect('carol.cozy.example')).body, (await connect('dave.cozy.example')).body];
    await env.operator('PUT', '/instances/carol.cozy.example', { email: 'carol@mail.test' });
    await askForLink('carol@mail.test');
    const carol = await newPage(browser);
    await carol.page.goto(linkIn(await env.smtp.nextMail('carol@mail.test')));
    await carol.page.getByRole('heading', { name: 'Your accounts' }).waitFor();

    await carol.page.goto(`${env.url}/app/#/accounts/${others.account.id}`);
    await carol.page.getByRole('heading', { name: 'Not found' }).waitFor();
    await carol.page.goto(`${env.url}/app/#/accounts/${own.account.id}`);
    await carol.page.getByRole('heading', { name: 'Login' }).waitFor();

    const answers = await carol.page.evaluate(async ({ own, others }) => {
      const csrf = (await (await fetch('/app/api/me')).json()).csrf as string;
      const status = async (method: string, path: string) =>
        (await fetch(`/app/api${path}`, { method, headers: { 'x-csrf-token': csrf, 'content-type': 'application/json' },
          body: method === 'GET' ? undefined : JSON.stringify(method === 'PUT' ? { fields: { login: 'x@example.org', password: 'x' } } : {}) })).status;
      const listed = (await (await fetch('/app/api/accounts')).json()).accounts.map((a: { id: string }) => a.id);
      return {
        listed,
        others: [await status('GET', `/accounts/${others.account}`), await status('PUT', `/accounts/${others.account}`),
          await status('POST', `/accounts/${others.account}/run`), await status('GET', `/jobs/${others.job}`),
          await status('GET', `/jobs/${others.job}/events`), await status('DELETE', `/accounts/${others.account}`)],
        own: [await status('GET', `/accounts/${own.account}`), await status('PUT', `/accounts/${own.account}`),
          await status('POST', `/accounts/${own.account}/run`), await status('GET', `/jobs/${own.job}`)],
      };
    }, { own: { account: own.account.id, job: own.job.id }, others: { account: others.account.id, job: others.job.id } });
    expect(answers.listed).toEqual([own.account.id]);
    expect(answers.others).toEqual([404, 404, 404, 404, 404, 404]);
    expect(answers.own).toEqual([200, 200, 201, 200]);
    expect((await env.operator('GET', `/accounts/${others.account.id}`)).status).toBe(200); // still there

    // The account deleted meanwhile (another tab, the operator): Run now says so on the page.
    await carol.page.goto(`${env.url}/app/#/accounts/${own.account.id}`);
    await carol.page.getByRole('button', { name: 'Run now' }).waitFor();
    expect((await env.operator('DELETE', `/accounts/${own.account.id}`)).status).toBe(204);
    await carol.page.getByRole('button', { name: 'Run now' }).click();
    expect(await carol.page.getByRole('alert').textContent()).toContain(`there is no io.cozy.accounts document "${own.account.id}"`);
    await carol.context.close();
  });
});
