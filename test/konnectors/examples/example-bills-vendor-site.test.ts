import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { load } from 'cheerio';
import { startVendorSite, type VendorSite } from '../../../konnectors/examples/example-bills/vendor-site.mts';

let site: VendorSite;

beforeAll(async () => {
  site = await startVendorSite();
});

afterAll(async () => {
  await site.stop();
});

async function get(path: string, cookie?: string) {
  return fetch(new URL(path, site.url), { redirect: 'manual', headers: cookie ? { cookie } : {} });
}

/** Loads the login form and posts it; returns the answer. */
async function logIn(login: string, password: string, csrf?: string) {
  const form = load(await (await get('/login')).text());
  const body = new URLSearchParams({ csrf: csrf ?? form('input[name=csrf]').val() as string, login, password });
  return fetch(new URL('/login', site.url), { method: 'POST', body, redirect: 'manual' });
}

function sessionCookie(res: Response): string | undefined {
  return res.headers.getSetCookie().find((c) => c.startsWith('ee_session='))?.split(';')[0];
}

describe('Example Energy vendor site', () => {
  it('serves a login form with a hidden CSRF token', async () => {
    const res = await get('/login');
    expect(res.status).toBe(200);
    const $ = load(await res.text());
    expect($('form#login-form').attr('method')).toBe('post');
    expect($('form#login-form').attr('action')).toBe('/login');
    expect($('input[name=csrf]').attr('type')).toBe('hidden');
    expect($('input[name=csrf]').val()).toMatch(/^[0-9a-f]{32}$/);
  });

  it('logs in with the right credentials: session cookie and redirect to the customer area', async () => {
    const res = await logIn(site.credentials.login, site.credentials.password);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/');
    const cookie = sessionCookie(res);
    expect(cookie).toMatch(/^ee_session=[0-9a-f]{32}$/);
    const home = load(await (await get('/', cookie)).text());
    expect(home('.welcome').text()).toBe(`Welcome, ${site.credentials.login}`);
    expect(home('a[href="/logout"]')).toHaveLength(1);
  });

  it('answers a wrong password with the login page again, an error and no session', async () => {
    const res = await logIn(site.credentials.login, 'wrong password');
    expect(res.status).toBe(200);
    expect(sessionCookie(res)).toBeUndefined();
    const $ = load(await res.text());
    expect($('.error').text()).toBe('Wrong email or password.');
    expect($('form#login-form')).toHaveLength(1);
    expect($('a[href="/logout"]')).toHaveLength(0);
  });

  it('refuses a login whose CSRF token it did not hand out, even with the right password', async () => {
    const res = await logIn(site.credentials.login, site.credentials.password, 'f'.repeat(32));
    expect(sessionCookie(res)).toBeUndefined();
    expect(load(await res.text())('.error').text()).toContain('session has expired');
  });

  it('keeps the bills behind the session: no cookie or an unknown one redirects to the login page', async () => {
    for (const cookie of [undefined, `ee_session=${'0'.repeat(32)}`]) {
      const res = await get('/bills', cookie);
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/login');
    }
    const pdf = await get(`/bills/${site.bills[0]!.vendorRef}.pdf`);
    expect(pdf.status).toBe(302);
  });

  it('lists the six deterministic bills in an HTML table for a logged-in customer', async () => {
    const cookie = sessionCookie(await logIn(site.credentials.login, site.credentials.password));
    const res = await get('/bills', cookie);
    expect(res.status).toBe(200);
    const $ = load(await res.text());
    const rows = $('table#bills tbody tr').toArray().map((tr) => ({
      vendorRef: $(tr).find('td.ref').text(),
      date: $(tr).find('td.date').text(),
      amount: $(tr).find('td.amount').text(),
      href: $(tr).find('td.download a').attr('href'),
    }));
    expect(site.bills).toHaveLength(6);
    expect(rows).toEqual(site.bills.map((bill) => ({
      vendorRef: bill.vendorRef,
      date: bill.date.split('-').reverse().join('/'),
      amount: `${bill.amount.toFixed(2).replace('.', ',')} €`,
      href: `/bills/${bill.vendorRef}.pdf`,
    })));
    expect(rows[0]).toEqual({ vendorRef: 'EE-2024-0001', date: '15/01/2024', amount: '54,20 €', href: '/bills/EE-2024-0001.pdf' });

    const pdf = await get(rows[0]!.href!, cookie);
    expect(pdf.headers.get('content-type')).toBe('application/pdf');
    const bytes = Buffer.from(await pdf.arrayBuffer());
    expect(bytes.subarray(0, 8).toString('latin1')).toBe('%PDF-1.4');
    expect(bytes.toString('latin1')).toContain('EE-2024-0001');
  });

  it('does not care about the Host header (the runner reaches it as energy.example)', async () => {
    // fetch() cannot set Host; node:http can.
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: site.port, path: '/login', headers: { Host: 'energy.example' } }, (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (chunk: string) => (body += chunk));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(res.status).toBe(200);
    expect(load(res.body)('form#login-form')).toHaveLength(1);
  });

  it('ends the session on logout', async () => {
    const cookie = sessionCookie(await logIn(site.credentials.login, site.credentials.password));
    expect((await get('/bills', cookie)).status).toBe(200);
    expect((await get('/logout', cookie)).headers.get('location')).toBe('/login');
    expect((await get('/bills', cookie)).status).toBe(302);
  });

  it('rejects a login form that is not urlencoded or lacks fields', async () => {
    const json = await fetch(new URL('/login', site.url), {
      method: 'POST', body: JSON.stringify(site.credentials), headers: { 'content-type': 'application/json' },
    });
    expect(json.status).toBe(415);
    const partial = await fetch(new URL('/login', site.url), { method: 'POST', body: new URLSearchParams({ login: 'x' }) });
    expect(partial.status).toBe(400);
  });
});
