/**
 * Egress policy: which destinations a konnector may reach.
 *
 * Two layers, both enforced by the host:
 * - the destination (scheme, host, port), checked on every URL before anything
 *   is sent, redirect hops included (`EgressPolicy.check`);
 * - the address, checked where the connection is made (connector.ts): every
 *   resolved or literal address in an IANA special-purpose range is refused
 *   (`checkAddress`), so a konnector cannot reach the stack (localhost:6060),
 *   CouchDB, cloud metadata (169.254.169.254) or the operator's LAN.
 *
 * The operator's `connectTo` list is the one exception to the address rule.
 */
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { HttpConfigError, HttpError } from './errors.ts';

type IP = ipaddr.IPv4 | ipaddr.IPv6;
type Range = { cidr: string; net: [IP, number]; name: string };

function ranges(list: [cidr: string, name: string][]): Range[] {
  return list.map(([cidr, name]) => ({ cidr, net: ipaddr.parseCIDR(cidr), name }));
}

/** IANA IPv4 Special-Purpose Address Registry (plus 224/4 multicast and 240/4 reserved). */
const IPV4_SPECIAL = ranges([
  ['0.0.0.0/8', '"this network"'],
  ['10.0.0.0/8', 'private use'],
  ['100.64.0.0/10', 'shared address space (carrier-grade NAT)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local, where cloud metadata services answer'],
  ['172.16.0.0/12', 'private use'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation (TEST-NET-1)'],
  ['192.88.99.0/24', 'deprecated 6to4 relay anycast'],
  ['192.168.0.0/16', 'private use'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation (TEST-NET-2)'],
  ['203.0.113.0/24', 'documentation (TEST-NET-3)'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved, including the broadcast address 255.255.255.255'],
]);

/**
 * IANA IPv6 Special-Purpose Address Registry. ::ffff:0:0/96 (IPv4-mapped),
 * 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) are not listed: they embed an
 * IPv4 address, which is unwrapped and checked instead.
 */
const IPV6_SPECIAL = ranges([
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'local-use IPv4/IPv6 translation'],
  ['100::/64', 'discard-only'],
  ['2001::/23', 'IETF protocol assignments, including Teredo'],
  ['2001:db8::/32', 'documentation'],
  ['3fff::/20', 'documentation'],
  ['fc00::/7', 'unique local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'deprecated site-local'],
  ['ff00::/8', 'multicast'],
]);

/** The only IPv6 space IANA allocates for global unicast; anything outside is refused. */
const IPV6_GLOBAL_UNICAST = ipaddr.parseCIDR('2000::/3');
const IPV4_MAPPED = ipaddr.parseCIDR('::ffff:0:0/96');
const NAT64 = ipaddr.parseCIDR('64:ff9b::/96');
const SIX_TO_FOUR = ipaddr.parseCIDR('2002::/16');

export type AddressVerdict =
  /** `address` is what to connect to: an IPv4-mapped IPv6 address is unwrapped to its IPv4. */
  | { ok: true; address: string }
  | { ok: false; reason: string };

function ipv4FromWords(high: number, low: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
}

function specialRange(ip: IP): Range | undefined {
  const list = ip.kind() === 'ipv4' ? IPV4_SPECIAL : IPV6_SPECIAL;
  return list.find((r) => r.net[0].kind() === ip.kind() && ip.match(r.net));
}

function checkIPv4(ip: ipaddr.IPv4): string | undefined {
  const range = specialRange(ip);
  return range && `${ip.toString()} is in ${range.cidr} (${range.name})`;
}

/**
 * Decides whether the host may connect to `address`, a plain IP address
 * (IPv6 without brackets). Anything that is not a strictly valid IP fails closed.
 */
export function checkAddress(address: string): AddressVerdict {
  const family = net.isIP(address);
  if (family === 0) return { ok: false, reason: `"${address}" is not an IP address` };
  if (family === 4) {
    const reason = checkIPv4(ipaddr.IPv4.parse(address));
    return reason ? { ok: false, reason } : { ok: true, address };
  }
  const ip = ipaddr.IPv6.parse(address);
  if (ip.zoneId !== undefined) return { ok: false, reason: `${address} is a scoped (link-local) address` };
  const shown = ip.toString();
  const [, , , , , , w6, w7] = ip.parts as [number, number, number, number, number, number, number, number];
  let embedded: ipaddr.IPv4 | undefined;
  if (ip.match(IPV4_MAPPED)) embedded = ip.toIPv4Address();
  else if (ip.match(NAT64)) embedded = ipv4FromWords(w6, w7);
  else if (ip.match(SIX_TO_FOUR)) embedded = ipv4FromWords(ip.parts[1]!, ip.parts[2]!);
  if (embedded) {
    const reason = checkIPv4(embedded);
    if (reason) return { ok: false, reason: `${shown} embeds ${reason}` };
    // A mapped address is an IPv4 connection in disguise: connect to the IPv4 itself.
    return { ok: true, address: ip.match(IPV4_MAPPED) ? embedded.toString() : address };
  }
  const range = specialRange(ip);
  if (range) return { ok: false, reason: `${shown} is in ${range.cidr} (${range.name})` };
  if (!ip.match(IPV6_GLOBAL_UNICAST)) {
    return { ok: false, reason: `${shown} is outside the global unicast space 2000::/3` };
  }
  return { ok: true, address };
}

/** The WHATWG form of a host (what `new URL().hostname` gives), or undefined if it is not one. */
function normalizeHost(raw: string): string | undefined {
  if (raw === '' || /[\s/?#@\\%*]/.test(raw)) return undefined;
  try {
    const url = new URL(`http://${raw}/`);
    return url.port === '' && url.pathname === '/' ? url.hostname : undefined;
  } catch {
    return undefined;
  }
}

/** `example.com.` and `example.com` are the same host. */
function withoutRootDot(host: string): string {
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

function isIpHost(host: string): boolean {
  return net.isIP(host.startsWith('[') ? host.slice(1, -1) : host) !== 0;
}

function parsePort(text: string): number | undefined {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Ports allowed for a host unless an allowedHosts entry names another one. */
export const DEFAULT_PORTS: readonly number[] = [80, 443];

export interface AllowedHost {
  /** The entry as written, for messages. */
  spec: string;
  scheme?: 'http' | 'https';
  /** Normalized host; for a wildcard, the suffix after `*.`. */
  host: string;
  wildcard: boolean;
  port?: number;
}

/**
 * Parses one allowedHosts entry: `[http://|https://]HOST[:PORT]`, where HOST is
 * a name, `*.name` (any subdomain at any depth, not the name itself), an IPv4
 * address or a bracketed IPv6 address. Without a scheme both http and https
 * match; without a port, 80 and 443 do. Names are compared case-insensitively
 * after IDNA/WHATWG normalization, ignoring a trailing dot. An entry only
 * narrows what is allowed: addresses are still checked, so `127.0.0.1` or a
 * name resolving to a private address stays refused (see `connectTo`).
 */
export function parseAllowedHost(spec: string): AllowedHost {
  const fail = (why: string): never => {
    throw new HttpConfigError(
      'invalid-allowed-host',
      `allowedHosts entry "${spec}": ${why}. Expected [http://|https://]HOST[:PORT], ` +
        'e.g. "example.com", "https://*.example.com", "api.example.com:8443" or "[2001:db8::1]:443"',
    );
  };
  const m = /^(?:([a-z][a-z0-9+.-]*):\/\/)?(\*\.)?(\[[^\]]*\]|[^:/[\]]*)(?::([^/]*))?\/?$/i.exec(spec.trim());
  if (!m) return fail('not a host with an optional scheme and port (no path, user or query)');
  const [, rawScheme, star, rawHost = '', rawPort] = m;
  const scheme = rawScheme?.toLowerCase();
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    return fail(`scheme "${scheme}" is not allowed (only http and https)`);
  }
  const host = normalizeHost(rawHost);
  if (host === undefined) return fail(`"${rawHost}" is not a valid host name or IP address`);
  if (star && isIpHost(host)) return fail('a wildcard cannot apply to an IP address');
  let port: number | undefined;
  if (rawPort !== undefined) {
    port = parsePort(rawPort);
    if (port === undefined) return fail(`port "${rawPort}" is not a number from 1 to 65535`);
  }
  return { spec, scheme: scheme as AllowedHost['scheme'], host: withoutRootDot(host), wildcard: !!star, port };
}

function hostMatches(entry: AllowedHost, host: string): boolean {
  const h = withoutRootDot(host);
  return entry.wildcard ? h.endsWith(`.${entry.host}`) : h === entry.host;
}

/** `curl --connect-to`: requests to host:port go to toAddress:toPort instead. */
export interface ConnectTo {
  /** WHATWG-normalized host, as in `new URL().hostname` (IPv6 in brackets). */
  host: string;
  port: number;
  /** A literal IP address (IPv6 without brackets). */
  toAddress: string;
  toPort: number;
}

/**
 * Parses `HOST:PORT:ADDR:PORT` (curl's --connect-to syntax with every field
 * given). ADDR must be a literal IP address, IPv6 in brackets:
 * `vendor.test:80:127.0.0.1:8080`, `vendor.test:443:[::1]:8443`.
 */
export function parseConnectTo(spec: string): ConnectTo {
  const fail = (why: string): never => {
    throw new HttpConfigError(
      'invalid-connect-to',
      `connect-to "${spec}": ${why}. Expected HOST:PORT:ADDR:PORT with ADDR an IP address, ` +
        'e.g. "vendor.test:80:127.0.0.1:8080" or "vendor.test:443:[::1]:8443"',
    );
  };
  const m = /^(\[[^\]]*\]|[^:[\]]*):([^:]*):(\[[^\]]*\]|[^:[\]]*):([^:]*)$/.exec(spec.trim());
  if (!m) return fail('it does not have four colon-separated fields');
  const [, rawHost = '', rawPort = '', rawAddress = '', rawToPort = ''] = m;
  const host = normalizeHost(rawHost);
  if (host === undefined) return fail(`"${rawHost}" is not a valid host name or IP address`);
  const port = parsePort(rawPort);
  if (port === undefined) return fail(`port "${rawPort}" is not a number from 1 to 65535`);
  const toAddress = rawAddress.startsWith('[') ? rawAddress.slice(1, -1) : rawAddress;
  const family = net.isIP(toAddress);
  if (family === 0 || (family === 6) !== rawAddress.startsWith('[')) {
    return fail(`"${rawAddress}" is not an IP address (IPv4 like 127.0.0.1, IPv6 in brackets like [::1])`);
  }
  const toPort = parsePort(rawToPort);
  if (toPort === undefined) return fail(`port "${rawToPort}" is not a number from 1 to 65535`);
  return { host: withoutRootDot(host), port, toAddress, toPort };
}

export function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

/** A destination that passed `EgressPolicy.check`. */
export interface Destination {
  host: string;
  port: number;
  /** Set when the operator mapped this host:port: connect there, skipping the address check. */
  connectTo?: ConnectTo;
}

function denied(rule: string): HttpError {
  return new HttpError('denied', `egress policy: ${rule}`);
}

/**
 * The operator's allowed hosts (`--allow-host [slug=]spec`): hosts for every
 * konnector, and hosts for one konnector by its slug.
 */
export interface OperatorHosts {
  everyKonnector: string[];
  bySlug: Record<string, string[]>;
}

const SLUG_PREFIX = /^([a-z0-9][a-z0-9_-]*)=(.+)$/;

/** Parses `--allow-host` values: `spec` for every konnector, `slug=spec` for one. Throws on a bad spec. */
export function parseOperatorHosts(specs: readonly string[]): OperatorHosts {
  const hosts: OperatorHosts = { everyKonnector: [], bySlug: {} };
  for (const value of specs) {
    const [, slug, spec] = SLUG_PREFIX.exec(value) ?? [undefined, undefined, value];
    if (!slug && value.includes('=')) {
      throw new HttpConfigError('invalid-allowed-host',
        `"${value}": before "=" must be a konnector slug (lower-case letters, digits, "-" and "_"), e.g. "example-bills=energy.example"`);
    }
    parseAllowedHost(spec!);
    if (slug) (hosts.bySlug[slug] ??= []).push(spec!);
    else hosts.everyKonnector.push(spec!);
  }
  return hosts;
}

/**
 * What the operator lets the konnector `slug` reach: the hosts given for
 * every konnector and those given for it. Once the operator gives any, a
 * konnector none of them names reaches nothing. Undefined: no operator list.
 */
export function operatorHostsFor(hosts: OperatorHosts | undefined, slug: string): string[] | undefined {
  return hosts && [...hosts.everyKonnector, ...(hosts.bySlug[slug] ?? [])];
}

/** One list of allowed hosts and whose it is, for the refusal message. */
export interface HostList {
  whose: "the konnector's" | "the operator's";
  hosts: readonly AllowedHost[];
}

export class EgressPolicy {
  /**
   * Every list given must allow a destination: the manifest's and the
   * operator's narrow each other, and neither can widen the other.
   */
  constructor(
    private readonly hostLists: readonly HostList[],
    private readonly connectTo: readonly ConnectTo[],
  ) {}

  /**
   * Checks a destination before anything is sent. `host` is in WHATWG form (as
   * `URL.hostname`). Throws HttpError('denied') naming the rule and the host.
   * Literal IP hosts are address-checked here; names are checked by the
   * connector once resolved.
   */
  check(protocol: string, host: string, port: number): Destination {
    if (protocol !== 'http:' && protocol !== 'https:') {
      throw denied(`scheme "${protocol}" is refused (only http: and https: are allowed)`);
    }
    const scheme = protocol.slice(0, -1);
    const mapped = this.connectTo.find((c) => c.port === port && c.host === withoutRootDot(host));
    for (const { whose, hosts } of this.hostLists) {
      const forHost = hosts.filter((e) => (e.scheme === undefined || e.scheme === scheme) && hostMatches(e, host));
      if (forHost.length === 0) {
        const list = hosts.map((e) => e.spec).join(', ') || 'none';
        throw denied(`${scheme}://${host} is not in ${whose} allowedHosts (${list})`);
      }
      if (!mapped && !forHost.some((e) => (e.port === undefined ? DEFAULT_PORTS.includes(port) : e.port === port))) {
        const ports = [...new Set(forHost.flatMap((e) => (e.port === undefined ? DEFAULT_PORTS : [e.port])))];
        throw denied(`port ${port} of host ${host} is refused (${whose} allowedHosts permits ports ${ports.join(', ')})`);
      }
    }
    if (this.hostLists.length === 0 && !mapped && !DEFAULT_PORTS.includes(port)) {
      throw denied(`port ${port} of host ${host} is refused (only ports ${DEFAULT_PORTS.join(' and ')} are allowed)`);
    }
    if (mapped) return { host, port, connectTo: mapped };
    if (isIpHost(host)) {
      const verdict = checkAddress(host.startsWith('[') ? host.slice(1, -1) : host);
      if (!verdict.ok) throw denied(`address of host ${host} refused: ${verdict.reason}`);
    }
    return { host, port };
  }
}
