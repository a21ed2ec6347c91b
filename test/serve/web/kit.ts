/**
 * The test kit of My Accounts: a real `konnector serve` host (in this
 * process) running the example konnector against its vendor site, a real
 * SMTP server that keeps the mail it gets, a clock the tests move, and
 * chromium driven by playwright-core.
 */
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { SMTPServer } from 'smtp-server';
import { startVendorSite, type VendorSite } from '../../../konnectors/examples/example-bills/vendor-site.mts';
import type { ServeHost } from '../../../runner/serve/host.ts';
import { defaultMyAccountsOptions, type MyAccountsOptions } from '../../../runner/serve/web/index.ts';
import { buildOnce, exampleDir } from '../../support/artifacts.ts';
import { apiClient, startTestHost, TOKEN } from '../support.ts';

export { TOKEN };

export interface Mail {
  to: string[];
  /** The message as sent, with its quoted-printable body decoded. */
  text: string;
}

export interface SmtpSink {
  url: string;
  mails: Mail[];
  /** Holds every mail at its RCPT TO until the returned function is called. */
  hold(): () => void;
  /** The next mail to `to` (or one already there and not taken yet); fails after the deadline. */
  nextMail(to: string, timeoutMs?: number): Promise<Mail>;
  stop(): Promise<void>;
}

const decodeQuotedPrintable = (text: string) =>
  text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));

/** A real SMTP server (smtp-server) on a free loopback port, keeping every mail it accepts. */
export async function startSmtpSink(): Promise<SmtpSink> {
  const mails: Mail[] = [];
  const taken = new Set<Mail>();
  const waiters = new Set<() => void>();
  let gate: Promise<void> = Promise.resolve();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(_address, _session, callback) {
      void gate.then(() => callback());
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), text: decodeQuotedPrintable(Buffer.concat(chunks).toString('utf8')) });
        for (const wake of waiters) wake();
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    hold() {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return release;
    },
    nextMail(to, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const look = () => {
          const mail = mails.find((m) => !taken.has(m) && m.to.includes(to));
          if (!mail) return;
          taken.add(mail);
          done();
          resolve(mail);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no mail to ${to} within ${timeoutMs} ms (got ${mails.length} to ${mails.flatMap((m) => m.to).join(', ') || 'nobody'})`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(look);
        };
        waiters.add(look);
        look();
      });
    },
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The sign-in link a mail carries. */
export function linkIn(mail: Mail): string {
  const link = /(https?:\/\/\S+\/app\/signin\?token=[A-Za-z0-9_-]+)/.exec(mail.text)?.[1];
  if (!link) throw new Error(`no sign-in link in the mail:\n${mail.text}`);
  return link;
}

export interface Gate {
  port: number;
  /** Holds every new connection until the returned function is called. */
  hold(): () => void;
  stop(): Promise<void>;
}

/** A TCP relay to 127.0.0.1:`targetPort` that the test can hold shut (a vendor that does not answer yet). */
export async function startGate(targetPort: number): Promise<Gate> {
  let gate: Promise<void> = Promise.resolve();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    void gate.then(() => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      client.pipe(upstream).pipe(client);
      client.resume();
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hold() {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return release;
    },
    stop: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A clock the tests move forward (links and sessions expire by it). */
export function testClock() {
  let offset = 0;
  return { now: () => Date.now() + offset, advance: (ms: number) => void (offset += ms) };
}

export interface MyAccountsHost {
  host: ServeHost;
  url: string;
  site: VendorSite;
  /** The way from the konnectors to the vendor site: hold it to keep a run waiting on the vendor. */
  vendorGate: Gate;
  smtp: SmtpSink;
  clock: ReturnType<typeof testClock>;
  /** The web app's API with the operator's bearer token. */
  operator: ReturnType<typeof apiClient>;
  stop(): Promise<void>;
}

/** A host with the example konnector (built with the real build), its vendor site, and an SMTP sink for the links. */
export async function startMyAccountsHost(options: Partial<Pick<MyAccountsOptions, 'rateLimit' | 'publicUrl'>> = {}): Promise<MyAccountsHost> {
  const [artifact, site, smtp] = await Promise.all([buildOnce(exampleDir('example-bills')), startVendorSite(), startSmtpSink()]);
  const vendorGate = await startGate(site.port);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'my-accounts-'));
  const konnectors = path.join(dir, 'konnectors');
  await mkdir(konnectors);
  await copyFile(artifact, path.join(konnectors, 'example-bills.kwasm'));
  const clock = testClock();
  const defaults = defaultMyAccountsOptions();
  const host = await startTestHost({
    konnectorsDir: konnectors,
    dataDir: path.join(dir, 'data'),
    concurrency: 2,
    connectTo: [{ host: 'energy.example', port: 80, toAddress: '127.0.0.1', toPort: vendorGate.port }],
    retry: { maxAttempts: 1, baseDelayMs: 50 },
    myAccounts: { ...defaults, smtpUrl: smtp.url, mailFrom: 'My Accounts <accounts@serve.test>', now: clock.now, ...options },
  });
  return {
    host, url: host.url, site, vendorGate, smtp, clock,
    operator: apiClient(`${host.url}/app/api`),
    async stop() {
      await host.drain(0);
      await Promise.all([vendorGate.stop(), site.stop(), smtp.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Chromium started from its executable (no browser download), headless. */
export function launchChromium(executablePath: string): Promise<Browser> {
  // The tests run as root in CI containers, where chromium's sandbox cannot start.
  return chromium.launch({ executablePath, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
}

/** A fresh browser profile (its own cookies) at phone or desktop width. */
export async function newPage(browser: Browser, width = 1000): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  return { context, page };
}
