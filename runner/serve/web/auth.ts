/**
 * Who uses My Accounts: the operator (signed in with the API token) or an
 * instance's owner (signed in by a one-time link sent to their e-mail address,
 * then a TOTP code when their instance's record says 2FA is on). Sessions,
 * links and pending second steps live in this host's memory: a restart signs
 * everyone out, and nothing secret is stored in CouchDB but TOTP secrets.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import * as OTPAuth from 'otpauth';

export type Principal = { kind: 'operator' } | { kind: 'owner'; instance: string; email: string };

export interface Session {
  id: string;
  csrf: string;
  principal: Principal;
}

export const SESSION_MS = 8 * 60 * 60 * 1000;
export const LINK_MS = 10 * 60 * 1000;
/** How long the second step (TOTP) may take after the link was used. */
export const SECOND_STEP_MS = 5 * 60 * 1000;
const SECOND_STEP_TRIES = 5;

/** 256 bits, URL-safe. */
const randomToken = () => randomBytes(32).toString('base64url');
const digest = (text: string) => createHash('sha256').update(text).digest();

/** Compares secrets in constant time (their digests, so lengths do not show). */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** The bearer token an API client sent, if any. */
export function bearerToken(req: IncomingMessage): string | undefined {
  return /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
}

/** Entries kept before expired ones are swept. */
const SWEEP_ABOVE = 10_000;

/** Fixed-window counters: `limit` attempts per key and window. */
export class RateLimiter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();

  constructor(private readonly limit: number, private readonly windowMs: number, private readonly now: () => number) {}

  /** Counts an attempt; false once the key used its attempts for this window. */
  take(key: string): boolean {
    const at = this.now();
    if (this.windows.size >= SWEEP_ABOVE) for (const [k, w] of this.windows) if (w.resetAt <= at) this.windows.delete(k);
    const window = this.windows.get(key);
    if (!window || window.resetAt <= at) {
      this.windows.set(key, { count: 1, resetAt: at + this.windowMs });
      return true;
    }
    window.count++;
    return window.count <= this.limit;
  }
}

/** Entries kept by the sha256 of their secret, each until its deadline. */
class Expiring<T> {
  private readonly entries = new Map<string, { value: T; expiresAt: number }>();

  constructor(private readonly now: () => number) {}

  put(secret: string, value: T, ttlMs: number): void {
    // Entries nobody asks for again (links never opened, sessions never closed) go once they expired.
    if (this.entries.size >= SWEEP_ABOVE) for (const [key, entry] of this.entries) if (entry.expiresAt <= this.now()) this.entries.delete(key);
    this.entries.set(digest(secret).toString('hex'), { value, expiresAt: this.now() + ttlMs });
  }

  get(secret: string): T | undefined {
    const key = digest(secret).toString('hex');
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > this.now()) return entry.value;
    this.entries.delete(key);
    return undefined;
  }

  /** The entry, removed: a second take of the same secret finds nothing. */
  take(secret: string): T | undefined {
    const value = this.get(secret);
    this.entries.delete(digest(secret).toString('hex'));
    return value;
  }

  delete(secret: string): void {
    this.entries.delete(digest(secret).toString('hex'));
  }
}

export interface Owner {
  instance: string;
  email: string;
  /** Base32 TOTP secret when the instance's 2FA is on. */
  totpSecret?: string;
}

interface SecondStep {
  owner: Owner;
  tries: number;
}

export class Sessions {
  private readonly sessions: Expiring<Session>;
  private readonly links: Expiring<Owner>;
  private readonly secondSteps: Expiring<SecondStep>;
  /** Per instance, the TOTP time step of the last code that signed someone in. */
  private readonly usedTotpCounters = new Map<string, number>();

  constructor(private readonly now: () => number) {
    this.sessions = new Expiring(now);
    this.links = new Expiring(now);
    this.secondSteps = new Expiring(now);
  }

  open(principal: Principal): Session {
    const session = { id: randomToken(), csrf: randomToken(), principal };
    this.sessions.put(session.id, session, SESSION_MS);
    return session;
  }

  find(id: string | undefined): Session | undefined {
    return id ? this.sessions.get(id) : undefined;
  }

  close(id: string): void {
    this.sessions.delete(id);
  }

  /** A one-time sign-in link's token for the owner. */
  issueLink(owner: Owner): string {
    const token = randomToken();
    this.links.put(token, owner, LINK_MS);
    return token;
  }

  /**
   * Uses a link (once): a session, or, when the owner's instance has 2FA on,
   * the token of the second step; undefined for a used, expired or unknown link.
   */
  useLink(token: string): { session: Session } | { secondStep: string } | undefined {
    const owner = this.links.take(token);
    if (!owner) return undefined;
    if (owner.totpSecret) {
      const secondStep = randomToken();
      this.secondSteps.put(secondStep, { owner, tries: 0 }, SECOND_STEP_MS);
      return { secondStep };
    }
    return { session: this.open({ kind: 'owner', instance: owner.instance, email: owner.email }) };
  }

  /** Checks a TOTP code of a second step; a few wrong codes end the step. */
  verifySecondStep(token: string, code: string): Session | 'wrong-code' | undefined {
    const step = this.secondSteps.get(token);
    if (!step) return undefined;
    const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(step.owner.totpSecret!) });
    const now = this.now();
    const delta = totp.validate({ token: code, timestamp: now, window: 1 });
    // A code works once (RFC 6238, 5.2): one seen over someone's shoulder cannot open a second session.
    const counter = delta === null ? null : totp.counter({ timestamp: now }) + delta;
    const lastUsed = this.usedTotpCounters.get(step.owner.instance) ?? -1;
    if (counter === null || counter <= lastUsed) {
      step.tries++;
      if (step.tries >= SECOND_STEP_TRIES) this.secondSteps.delete(token);
      return 'wrong-code';
    }
    this.usedTotpCounters.set(step.owner.instance, counter);
    this.secondSteps.delete(token);
    return this.open({ kind: 'owner', instance: step.owner.instance, email: step.owner.email });
  }
}

/** A new TOTP secret and the otpauth:// URI an authenticator app reads. */
export function newTotp(instance: string): { secret: string; uri: string } {
  const secret = new OTPAuth.Secret({ size: 20 });
  const totp = new OTPAuth.TOTP({ issuer: 'My Accounts', label: instance, secret });
  return { secret: secret.base32, uri: totp.toString() };
}
