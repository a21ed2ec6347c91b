/**
 * "Riverside Water", the utility the riverside-water konnector reads: a JSON API behind a bearer token (POST the
 * credentials to /api/v1/auth/token), the customer's profile, two contracts with their invoices, and each
 * invoice's PDF behind the same token. Deterministic data.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJson, sendJson, serve, simplePdf, VendorError, type RunningSite } from '../vendor-kit.ts';

export interface Invoice {
  number: string;
  contractId: string;
  /** YYYY-MM-DD */
  issuedOn: string;
  amountCents: number;
  status: 'paid' | 'due' | 'cancelled';
}

export interface Contract {
  id: string;
  label: string;
}

export interface WaterSite extends RunningSite {
  credentials: { login: string; password: string };
  customer: typeof CUSTOMER;
  contracts: Contract[];
  invoices: Invoice[];
  pdfOf(number: string): Buffer;
  /** Token requests, successful or not. */
  readonly tokenRequests: number;
  /** Forgets every token handed out, as a restarted API does. */
  revokeTokens(): void;
}

const CREDENTIALS = Object.freeze({ login: 'jane.doe@example.org', password: 'w4ter-fl0w' });
const TOKEN_LIFETIME_S = 3600;

const CUSTOMER = Object.freeze({
  customer_id: 'RW-778812',
  first_name: 'Jane',
  last_name: 'Doe',
  email: 'jane.doe@example.org',
  phone: '+33 6 12 34 56 78',
  address: Object.freeze({ street: '12 quai des Tanneurs', postcode: '69001', city: 'Lyon', country: 'France' }),
});

const CONTRACTS: readonly Contract[] = [
  { id: 'W-1001', label: 'Main home' },
  { id: 'W-2002', label: 'Garden plot' },
];

const INVOICES: readonly Invoice[] = [
  { number: 'RW-2024-0101', contractId: 'W-1001', issuedOn: '2024-01-31', amountCents: 4230, status: 'paid' },
  { number: 'RW-2024-0201', contractId: 'W-1001', issuedOn: '2024-02-29', amountCents: 3915, status: 'paid' },
  { number: 'RW-2024-0301', contractId: 'W-1001', issuedOn: '2024-03-31', amountCents: 4470, status: 'due' },
  { number: 'RW-2024-0302', contractId: 'W-1001', issuedOn: '2024-03-31', amountCents: 4470, status: 'cancelled' },
  { number: 'RW-2024-0150', contractId: 'W-2002', issuedOn: '2024-01-31', amountCents: 1280, status: 'paid' },
  { number: 'RW-2024-0250', contractId: 'W-2002', issuedOn: '2024-02-29', amountCents: 1280, status: 'paid' },
];

function pdfFor(invoice: Invoice): Buffer {
  return simplePdf(`Riverside Water invoice ${invoice.number}: ${(invoice.amountCents / 100).toFixed(2)} EUR`);
}

export async function startWaterSite(opts: { port?: number } = {}): Promise<WaterSite> {
  /** token -> expiry (ms since epoch) */
  const tokens = new Map<string, number>();
  let tokenRequests = 0;

  function authorized(req: IncomingMessage): boolean {
    const token = /^Bearer ([0-9a-f]{48})$/.exec(req.headers.authorization ?? '')?.[1];
    const expiry = token === undefined ? undefined : tokens.get(token);
    return expiry !== undefined && expiry >= Date.now();
  }

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL) {
    const { pathname } = url;
    const method = req.method ?? 'GET';
    if (pathname === '/api/v1/auth/token') {
      if (method !== 'POST') throw new VendorError(405, 'POST the credentials');
      tokenRequests += 1;
      const body = (await readJson(req)) as { email?: unknown; password?: unknown };
      if (typeof body.email !== 'string' || typeof body.password !== 'string') {
        return sendJson(res, 400, { error: 'invalid_request', error_description: 'email and password are required' });
      }
      if (body.email !== CREDENTIALS.login || body.password !== CREDENTIALS.password) {
        return sendJson(res, 401, { error: 'invalid_grant', error_description: 'Invalid email or password' });
      }
      const token = randomBytes(24).toString('hex');
      tokens.set(token, Date.now() + TOKEN_LIFETIME_S * 1000);
      return sendJson(res, 200, { access_token: token, token_type: 'Bearer', expires_in: TOKEN_LIFETIME_S });
    }
    if (method !== 'GET') throw new VendorError(405, `${method} is not allowed on ${pathname}`);
    if (!authorized(req)) {
      return sendJson(res, 401, { error: 'invalid_token', error_description: 'The access token is missing, invalid or expired' });
    }
    if (pathname === '/api/v1/me') return sendJson(res, 200, CUSTOMER);
    if (pathname === '/api/v1/contracts') return sendJson(res, 200, { contracts: CONTRACTS });
    const list = /^\/api\/v1\/contracts\/([A-Z0-9-]+)\/invoices$/.exec(pathname);
    if (list && CONTRACTS.some((c) => c.id === list[1])) {
      return sendJson(res, 200, {
        invoices: INVOICES.filter((i) => i.contractId === list[1]).map((i) => ({
          number: i.number,
          issued_on: i.issuedOn,
          amount_cents: i.amountCents,
          currency: 'EUR',
          status: i.status,
          pdf_url: `/api/v1/invoices/${i.number}.pdf`,
        })),
      });
    }
    const pdf = /^\/api\/v1\/invoices\/([A-Z0-9-]+)\.pdf$/.exec(pathname);
    const invoice = pdf && INVOICES.find((i) => i.number === pdf[1]);
    if (invoice) {
      res.writeHead(200, { 'Content-Type': 'application/pdf' });
      return res.end(pdfFor(invoice));
    }
    return sendJson(res, 404, { error: 'not_found' });
  }

  const site = await serve(handle, opts.port);
  return {
    ...site,
    credentials: { ...CREDENTIALS },
    customer: CUSTOMER,
    contracts: CONTRACTS.map((c) => ({ ...c })),
    invoices: INVOICES.map((i) => ({ ...i })),
    pdfOf(number) {
      const invoice = INVOICES.find((i) => i.number === number);
      if (!invoice) throw new Error(`no invoice ${number}`);
      return pdfFor(invoice);
    },
    get tokenRequests() {
      return tokenRequests;
    },
    revokeTokens() {
      tokens.clear();
    },
  };
}
