/**
 * The job's cookie jar. One per `createHttp` (per job), in memory, never
 * shared: a konnector's vendor session cannot leak into another job. It may
 * start from the jar the same account's last job left (see sessions.ts). The guest
 * cannot send a `cookie` header itself; the jar applies RFC 6265 rules
 * (domain, path, Secure, expiry, public suffixes) on every request and hop.
 *
 * Every cookie costs the host parsing and matching work the job's fuel does not
 * see, so the jar is bounded: `maxCookies` set-cookie values taken per job, and
 * the kept session cut to `maxCookies` cookies and `maxSessionBytes` bytes. Each
 * cut is said once in the job's log.
 */
import { CookieJar } from 'tough-cookie';

export interface CookieLimits {
  maxCookies: number;
  maxSessionBytes: number;
}

/** A serialized jar: tough-cookie's `serializeSync()` shape, cookies oldest first. */
interface SerializedJar {
  cookies: unknown[];
  [key: string]: unknown;
}

export class CookieStore {
  private jar: CookieJar;
  private taken = 0;
  private dropping = false;

  /** `saved` is what `serialize` returned; an unreadable or oversized one starts an empty jar, with a warning. */
  constructor(
    saved: string | undefined,
    private readonly limits: CookieLimits,
    private readonly warn: (message: string) => void,
  ) {
    this.jar = new CookieJar();
    if (!saved) return;
    const bytes = Buffer.byteLength(saved, 'utf8');
    if (bytes > limits.maxSessionBytes) {
      warn(`the kept vendor session is ${bytes} bytes, more than maxSessionBytes ${limits.maxSessionBytes}: starting without it`);
      return;
    }
    try {
      this.jar = CookieJar.deserializeSync(saved);
    } catch (error) {
      warn(`the kept vendor session could not be read (${(error as Error).message}): starting without it`);
    }
  }

  /** The jar for the account's next job, cut to the newest cookies that fit the session limits. */
  serialize(): string {
    const whole = (this.jar.serializeSync() ?? { cookies: [] }) as unknown as SerializedJar;
    const all = whole.cookies;
    let kept = all.slice(-this.limits.maxCookies);
    let text = JSON.stringify({ ...whole, cookies: kept });
    while (Buffer.byteLength(text, 'utf8') > this.limits.maxSessionBytes && kept.length > 0) {
      // Drop the oldest half of what is over, rather than one at a time: a few passes at most.
      const over = Buffer.byteLength(text, 'utf8') - this.limits.maxSessionBytes;
      const average = Buffer.byteLength(text, 'utf8') / kept.length;
      kept = kept.slice(Math.max(1, Math.ceil(over / average)));
      text = JSON.stringify({ ...whole, cookies: kept });
    }
    if (kept.length < all.length) {
      this.warn(`the vendor session is cut to its ${kept.length} newest cookies of ${all.length} ` +
        `(limits: maxCookies ${this.limits.maxCookies}, maxSessionBytes ${this.limits.maxSessionBytes})`);
    }
    return text;
  }

  /** The `cookie` header value for a request to `url`, if any cookie applies. */
  async header(url: URL): Promise<string | undefined> {
    const value = await this.jar.getCookieString(url.href);
    return value === '' ? undefined : value;
  }

  /**
   * Stores a response's `set-cookie` values; malformed or foreign-domain cookies are ignored, as browsers do.
   * Past `maxCookies` values in this job, the rest are dropped (said once).
   */
  async store(url: URL, setCookies: readonly string[]): Promise<void> {
    for (const setCookie of setCookies) {
      if (this.taken >= this.limits.maxCookies) {
        if (!this.dropping) {
          this.dropping = true;
          this.warn(`the job's cookie jar took ${this.limits.maxCookies} set-cookie values (maxCookies): later ones are dropped`);
        }
        return;
      }
      this.taken += 1;
      await this.jar.setCookie(setCookie, url.href, { ignoreError: true });
    }
  }
}
