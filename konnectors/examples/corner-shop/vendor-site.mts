/**
 * "Corner Shop", the online shop the corner-shop konnector reads: a login form protected by a CSRF token bound to
 * a pre-session cookie, a customer area listing the orders over pages (newest first), and an invoice PDF per
 * order that was not cancelled. Deterministic data.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { cookieValue, escapeHtml, readForm, redirect, sendHtml, serve, simplePdf, VendorError, type RunningSite } from '../vendor-kit.ts';

export interface Order {
  number: string;
  /** YYYY-MM-DD, shown as "12 Mar 2024". */
  date: string;
  /** In euros, shown as "€23.40". */
  total: number;
  status: 'Delivered' | 'Cancelled';
}

export interface ShopSite extends RunningSite {
  credentials: { login: string; password: string };
  orders: Order[];
  invoiceOf(number: string): Buffer;
  /** Log-in posts that passed the CSRF check. */
  readonly logins: number;
  /** Log-in posts refused for a missing or wrong CSRF token. */
  readonly csrfRejections: number;
}

const CREDENTIALS = Object.freeze({ login: 'jane@example.org', password: 'basket & bread' });
const PAGE_SIZE = 4;
const PRE_SESSION = 'cs_pre';
const SESSION = 'cs_session';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const ORDERS: readonly Order[] = [
  { number: 'CS-10240', date: '2024-06-02', total: 18.9, status: 'Delivered' },
  { number: 'CS-10239', date: '2024-05-26', total: 42.15, status: 'Delivered' },
  { number: 'CS-10238', date: '2024-05-19', total: 7.5, status: 'Cancelled' },
  { number: 'CS-10237', date: '2024-05-12', total: 23.4, status: 'Delivered' },
  { number: 'CS-10236', date: '2024-05-05', total: 23.4, status: 'Delivered' },
  { number: 'CS-10235', date: '2024-04-28', total: 61.02, status: 'Delivered' },
  { number: 'CS-10234', date: '2024-04-21', total: 12, status: 'Cancelled' },
  { number: 'CS-10233', date: '2024-04-14', total: 35.8, status: 'Delivered' },
  { number: 'CS-10232', date: '2024-04-07', total: 9.99, status: 'Delivered' },
  { number: 'CS-10231', date: '2024-03-12', total: 23.4, status: 'Delivered' },
];

function displayDate(iso: string): string {
  const [year, month, day] = iso.split('-').map(Number);
  return `${day} ${MONTHS[month! - 1]} ${year}`;
}

function invoicePdf(order: Order): Buffer {
  return simplePdf(`Corner Shop invoice for order ${order.number}: ${order.total.toFixed(2)} EUR`);
}

function page(title: string, body: string, loggedIn: boolean): string {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)} - Corner Shop</title></head>
<body>
<header><a href="/">Corner Shop</a>${loggedIn ? ' <a class="logout" href="/account/logout">Sign out</a>' : ''}</header>
<main>
${body}
</main>
</body>
</html>
`;
}

export async function startShopSite(opts: { port?: number } = {}): Promise<ShopSite> {
  const secret = randomBytes(32);
  const sessions = new Set<string>();
  let logins = 0;
  let csrfRejections = 0;

  const csrfFor = (preSession: string) => createHmac('sha256', secret).update(preSession).digest('hex');

  function csrfValid(preSession: string | undefined, token: string | undefined): boolean {
    if (!preSession || !token || !/^[0-9a-f]{64}$/.test(token)) return false;
    return timingSafeEqual(Buffer.from(csrfFor(preSession), 'hex'), Buffer.from(token, 'hex'));
  }

  function loginPage(req: IncomingMessage, res: ServerResponse, status: number, error?: string) {
    let preSession = cookieValue(req, PRE_SESSION);
    const headers: Record<string, string> = {};
    if (!preSession || !/^[0-9a-f]{32}$/.test(preSession)) {
      preSession = randomBytes(16).toString('hex');
      headers['Set-Cookie'] = `${PRE_SESSION}=${preSession}; Path=/account; HttpOnly; SameSite=Lax`;
    }
    sendHtml(res, status, page('Sign in', `<h1>Sign in to your account</h1>
${error ? `<p class="alert alert-error">${escapeHtml(error)}</p>\n` : ''}<form class="login" method="post" action="/account/login">
  <input type="hidden" name="_csrf" value="${csrfFor(preSession)}">
  <label>Email <input type="email" name="email"></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Sign in</button>
</form>`, false), headers);
  }

  function ordersPage(res: ServerResponse, number: number) {
    const pages = Math.ceil(ORDERS.length / PAGE_SIZE);
    if (!Number.isInteger(number) || number < 1 || number > pages) throw new VendorError(404, `there is no page ${number} of orders`);
    const rows = ORDERS.slice((number - 1) * PAGE_SIZE, number * PAGE_SIZE).map((order) => `    <tr class="order" data-order="${order.number}">
      <td class="number">${order.number}</td>
      <td class="date">${displayDate(order.date)}</td>
      <td class="total">€${order.total.toFixed(2)}</td>
      <td class="status">${order.status}</td>
      <td class="invoice">${order.status === 'Cancelled' ? '' : `<a href="/account/orders/${order.number}/invoice">Invoice</a>`}</td>
    </tr>`);
    sendHtml(res, 200, page('My orders', `<h1>My orders</h1>
<table id="orders">
  <thead><tr><th>Order</th><th>Date</th><th>Total</th><th>Status</th><th></th></tr></thead>
  <tbody>
${rows.join('\n')}
  </tbody>
</table>
<nav class="pagination">${number > 1 ? `<a rel="prev" href="/account/orders?page=${number - 1}">Previous</a> ` : ''}<span>Page ${number} of ${pages}</span>${number < pages ? ` <a rel="next" href="/account/orders?page=${number + 1}">Next</a>` : ''}</nav>`, true));
  }

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL) {
    const { pathname } = url;
    const method = req.method ?? 'GET';
    const customer = sessions.has(cookieValue(req, SESSION) ?? '');

    if (pathname === '/account/login' && method === 'POST') {
      const form = await readForm(req);
      if (!csrfValid(cookieValue(req, PRE_SESSION), form._csrf)) {
        csrfRejections += 1;
        return sendHtml(res, 403, page('Forbidden', '<p class="alert alert-error">Invalid CSRF token, please reload the page.</p>', false));
      }
      logins += 1;
      if (form.email !== CREDENTIALS.login || form.password !== CREDENTIALS.password) {
        return loginPage(req, res, 200, 'Invalid email or password.');
      }
      const id = randomBytes(16).toString('hex');
      sessions.add(id);
      res.writeHead(303, { Location: '/account/orders', 'Set-Cookie': `${SESSION}=${id}; Path=/; HttpOnly; SameSite=Lax` });
      return res.end();
    }
    if (method !== 'GET') throw new VendorError(405, `${method} is not allowed on ${pathname}`);
    if (pathname === '/account/login') return customer ? redirect(res, '/account') : loginPage(req, res, 200);
    if (!pathname.startsWith('/account')) return redirect(res, '/account');
    if (!customer) return redirect(res, '/account/login');

    if (pathname === '/account') {
      return sendHtml(res, 200, page('My account', '<h1>Hello Jane</h1><a href="/account/orders">My orders</a>', true));
    }
    if (pathname === '/account/orders') return ordersPage(res, Number(url.searchParams.get('page') ?? '1'));
    const invoice = /^\/account\/orders\/(CS-\d+)\/invoice$/.exec(pathname);
    const order = invoice && ORDERS.find((o) => o.number === invoice[1] && o.status !== 'Cancelled');
    if (order) {
      res.writeHead(200, { 'Content-Type': 'application/pdf', 'Content-Disposition': `attachment; filename="invoice-${order.number}.pdf"` });
      return res.end(invoicePdf(order));
    }
    throw new VendorError(404, `${pathname} does not exist`);
  }

  const site = await serve(handle, opts.port);
  return {
    ...site,
    credentials: { ...CREDENTIALS },
    orders: ORDERS.map((o) => ({ ...o })),
    invoiceOf(number) {
      const order = ORDERS.find((o) => o.number === number);
      if (!order) throw new Error(`no order ${number}`);
      return invoicePdf(order);
    },
    get logins() {
      return logins;
    },
    get csrfRejections() {
      return csrfRejections;
    },
  };
}
