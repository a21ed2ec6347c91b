/**
 * The job's cookie jar. One per `createHttp` (per job), in memory, never
 * shared: a konnector's vendor session cannot leak into another job. It may
 * start from the jar the same account's last job left (see sessions.ts). The guest
 * cannot send a `cookie` header itself; the jar applies RFC 6265 rules
 * (domain, path, Secure, expiry, public suffixes) on every request and hop.
 */
import { CookieJar } from 'tough-cookie';

export class CookieStore {
  private readonly jar: CookieJar;

  /** `saved` is what `serialize` returned; an unreadable one starts an empty jar. */
  constructor(saved?: string) {
    let jar: CookieJar | undefined;
    try {
      jar = saved ? CookieJar.deserializeSync(saved) : undefined;
    } catch {
      jar = undefined;
    }
    this.jar = jar ?? new CookieJar();
  }

  serialize(): string {
    return JSON.stringify(this.jar.serializeSync());
  }

  /** The `cookie` header value for a request to `url`, if any cookie applies. */
  async header(url: URL): Promise<string | undefined> {
    const value = await this.jar.getCookieString(url.href);
    return value === '' ? undefined : value;
  }

  /** Stores a response's `set-cookie` values; malformed or foreign-domain cookies are ignored, as browsers do. */
  async store(url: URL, setCookies: readonly string[]): Promise<void> {
    for (const setCookie of setCookies) {
      await this.jar.setCookie(setCookie, url.href, { ignoreError: true });
    }
  }
}
