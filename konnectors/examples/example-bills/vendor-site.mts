/**
 * "Example Energy", the vendor site the example konnector scrapes: a customer
 * area with a login form (hidden CSRF token, session cookie) and a table of
 * bills behind the session. Data is deterministic: six monthly bills.
 *
 * It listens on 127.0.0.1 and ignores the Host header, so the konnector can
 * reach it as http://energy.example/ through the runner's --connect-to.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { cookieValue, escapeHtml, readForm, redirect, sendHtml as send, simplePdf, VendorError } from '../vendor-kit.ts';

export interface VendorBill {
  /** ISO date, YYYY-MM-DD (shown as DD/MM/YYYY on the site). */
  date: string;
  /** In euros (shown as "54,20 €"). */
  amount: number;
  currency: 'EUR';
  vendorRef: string;
}

export interface VendorSite {
  url: string;
  port: number;
  stop(): Promise<void>;
  credentials: { login: string; password: string };
  bills: VendorBill[];
}

export interface VendorSiteOptions {
  /** Port on 127.0.0.1; a free one by default. */
  port?: number;
}

const CREDENTIALS = Object.freeze({ login: 'jane.doe@example.org', password: 'correct horse battery staple' });

const BILLS: readonly VendorBill[] = Object.freeze([
  { date: '2024-01-15', amount: 54.2, currency: 'EUR', vendorRef: 'EE-2024-0001' },
  { date: '2024-02-15', amount: 61.75, currency: 'EUR', vendorRef: 'EE-2024-0002' },
  { date: '2024-03-15', amount: 58.1, currency: 'EUR', vendorRef: 'EE-2024-0003' },
  { date: '2024-04-15', amount: 47.35, currency: 'EUR', vendorRef: 'EE-2024-0004' },
  { date: '2024-05-15', amount: 39.9, currency: 'EUR', vendorRef: 'EE-2024-0005' },
  { date: '2024-06-15', amount: 36.05, currency: 'EUR', vendorRef: 'EE-2024-0006' },
]);

const SESSION_COOKIE = 'ee_session';

const loginFormSchema = z.object({
  login: z.string().max(256),
  password: z.string().max(256),
  csrf: z.string().regex(/^[0-9a-f]{32}$/),
});

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)} - Example Energy</title></head>
<body>
<header><h1>Example Energy</h1></header>
<main>
${body}
</main>
</body>
</html>
`;
}

function displayDate(iso: string): string {
  const [year, month, day] = iso.split('-');
  return `${day}/${month}/${year}`;
}

function displayAmount(amount: number): string {
  return `${amount.toFixed(2).replace('.', ',')} €`;
}

export async function startVendorSite(opts: VendorSiteOptions = {}): Promise<VendorSite> {
  /** session id -> login */
  const sessions = new Map<string, string>();
  /** CSRF tokens handed out with the login form, each usable once. */
  const csrfTokens = new Set<string>();

  const token = () => randomBytes(16).toString('hex');

  function loginPage(res: ServerResponse, error?: string) {
    const csrf = token();
    csrfTokens.add(csrf);
    send(res, 200, page('Log in', `<h2>Customer area</h2>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>\n` : ''}<form id="login-form" method="post" action="/login">
  <input type="hidden" name="csrf" value="${csrf}">
  <label>Email <input type="email" name="login" autocomplete="username"></label>
  <label>Password <input type="password" name="password" autocomplete="current-password"></label>
  <label><input type="checkbox" name="remember" value="1"> Remember me</label>
  <button type="submit">Log in</button>
</form>`));
  }

  function sessionOf(req: IncomingMessage): string | undefined {
    const id = cookieValue(req, SESSION_COOKIE);
    return id === undefined ? undefined : sessions.get(id);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const { pathname } = new URL(req.url ?? '/', 'http://vendor.invalid');
    const method = req.method ?? 'GET';
    const login = sessionOf(req);

    if (pathname === '/login' && method === 'POST') {
      const parsed = loginFormSchema.safeParse(await readForm(req));
      if (!parsed.success) throw new VendorError(400, 'the login form needs login, password and csrf');
      const { csrf, login: user, password } = parsed.data;
      if (!csrfTokens.delete(csrf)) return loginPage(res, 'Your session has expired, please log in again.');
      if (user !== CREDENTIALS.login || password !== CREDENTIALS.password) {
        return loginPage(res, 'Wrong email or password.');
      }
      const id = token();
      sessions.set(id, user);
      return redirect(res, '/', { 'Set-Cookie': `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax` });
    }
    if (method !== 'GET' && method !== 'HEAD') throw new VendorError(405, `${method} is not allowed on ${pathname}`);

    if (pathname === '/login') return login ? redirect(res, '/') : loginPage(res);
    if (pathname === '/logout') {
      const id = cookieValue(req, SESSION_COOKIE);
      if (id !== undefined) sessions.delete(id);
      return redirect(res, '/login', { 'Set-Cookie': `${SESSION_COOKIE}=; Path=/; Max-Age=0` });
    }
    // Everything else is the customer area.
    if (!login) return redirect(res, '/login');
    if (pathname === '/') {
      return send(res, 200, page('My account', `<p class="welcome">Welcome, ${escapeHtml(login)}</p>
<nav><a href="/bills">My bills</a> <a href="/logout">Log out</a></nav>`));
    }
    if (pathname === '/bills') {
      const rows = BILLS.map((bill) => `    <tr>
      <td class="ref">${bill.vendorRef}</td>
      <td class="date">${displayDate(bill.date)}</td>
      <td class="amount">${displayAmount(bill.amount)}</td>
      <td class="download"><a href="/bills/${bill.vendorRef}.pdf">PDF</a></td>
    </tr>`);
      return send(res, 200, page('My bills', `<nav><a href="/">My account</a> <a href="/logout">Log out</a></nav>
<table id="bills">
  <thead><tr><th>Reference</th><th>Date</th><th>Amount</th><th>Bill</th></tr></thead>
${rows.join('\n')}
</table>`));
    }
    const pdf = /^\/bills\/([A-Z0-9-]+)\.pdf$/.exec(pathname);
    const bill = pdf && BILLS.find((b) => b.vendorRef === pdf[1]);
    if (bill) {
      res.writeHead(200, { 'Content-Type': 'application/pdf', 'Content-Disposition': `attachment; filename="${bill.vendorRef}.pdf"` });
      return res.end(simplePdf(`Example Energy bill ${bill.vendorRef}: ${displayAmount(bill.amount).replace(' €', ' EUR')}`));
    }
    return send(res, 404, page('Not found', '<p>This page does not exist.</p>'));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof VendorError ? error.status : 500;
      const message = error instanceof Error ? error.message : String(error);
      if (!res.headersSent) send(res, status, page('Error', `<p class="error">${escapeHtml(message)}</p>`));
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    credentials: { ...CREDENTIALS },
    bills: BILLS.map((bill) => ({ ...bill })),
    stop() {
      stopped ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
