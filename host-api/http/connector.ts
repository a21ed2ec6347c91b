/**
 * The undici `connect` function of a job's Agent: the one place where sockets
 * are opened, so the address check cannot be bypassed by keep-alive, redirects
 * or a second code path.
 *
 * For each new connection: re-check the destination, resolve the name ONCE,
 * drop every special-purpose address, and hand Node a `lookup` that returns
 * only the addresses that passed. Node connects to those (Happy Eyeballs
 * across them) and never asks DNS again, so an answer that changes between
 * the check and the connection (DNS rebinding) cannot redirect the socket.
 * The TLS server name and certificate check stay on the requested host name.
 */
import type { LookupFunction } from 'node:net';
import net from 'node:net';
import tls from 'node:tls';
import { buildConnector } from 'undici';
import { HttpError } from './errors.ts';
import { checkAddress, defaultPort, type EgressPolicy } from './policy.ts';

export type Resolver = (host: string) => Promise<string[]>;

export interface CheckedConnectorOptions {
  policy: EgressPolicy;
  resolve: Resolver;
  /** Bounds name resolution and the TCP/TLS handshake together. */
  connectTimeoutMs: number;
  /** Extra trusted CA certificates (PEM), on top of Node's bundled roots. */
  extraCaCertificates?: string[];
}

/** A `lookup` that answers the pre-checked addresses and nothing else. */
function pinnedLookup(addresses: string[]): LookupFunction {
  const entries = addresses.map((address) => ({ address, family: net.isIPv6(address) ? 6 : 4 }));
  return ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options.all) callback(null, entries);
    else callback(null, entries[0]!.address, entries[0]!.family);
  }) as LookupFunction;
}

async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HttpError('timeout', `${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves `host` and keeps the addresses the policy allows; refuses if none is left. */
async function allowedAddresses(host: string, resolve: Resolver, timeoutMs: number): Promise<string[]> {
  let answers: string[];
  try {
    answers = await withDeadline(resolve(host), timeoutMs, `resolving ${host}`);
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError('network', `could not resolve ${host}: ${(err as Error).message}`);
  }
  if (answers.length === 0) throw new HttpError('network', `could not resolve ${host}: no address`);
  const allowed: string[] = [];
  const refused: string[] = [];
  for (const answer of new Set(answers)) {
    const verdict = checkAddress(answer);
    if (verdict.ok) allowed.push(verdict.address);
    else refused.push(verdict.reason);
  }
  if (allowed.length === 0) {
    throw new HttpError('denied', `egress policy: host ${host} resolves only to refused addresses: ${refused.join('; ')}`);
  }
  return allowed;
}

export function createCheckedConnector(opts: CheckedConnectorOptions): buildConnector.connector {
  const ca = opts.extraCaCertificates?.length ? [...tls.rootCertificates, ...opts.extraCaCertificates] : undefined;

  async function open(options: buildConnector.Options): Promise<net.Socket> {
    const deadline = Date.now() + opts.connectTimeoutMs;
    // undici passes IPv6 hosts without brackets; the policy speaks WHATWG hostnames.
    const host = net.isIPv6(options.hostname) ? `[${options.hostname}]` : options.hostname;
    const port = options.port ? Number(options.port) : defaultPort(options.protocol);
    const dest = opts.policy.check(options.protocol, host, port);

    let hostname: string;
    let lookup: LookupFunction | undefined;
    let toPort = port;
    if (dest.connectTo) {
      hostname = dest.connectTo.toAddress;
      toPort = dest.connectTo.toPort;
    } else if (net.isIP(options.hostname)) {
      const verdict = checkAddress(options.hostname);
      if (!verdict.ok) throw new HttpError('denied', `egress policy: address of host ${host} refused: ${verdict.reason}`);
      hostname = verdict.address;
    } else {
      hostname = options.hostname;
      lookup = pinnedLookup(await allowedAddresses(options.hostname, opts.resolve, opts.connectTimeoutMs));
    }

    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new HttpError('timeout', `connecting to ${host} took longer than ${opts.connectTimeoutMs} ms`);
    // A connector per connection: `lookup` is per destination. `host` is kept
    // as requested, so undici derives the TLS server name (SNI and certificate
    // check) from the name, never from the address.
    const connect = buildConnector({ timeout: remaining, lookup, ca });
    return new Promise((resolve, reject) => {
      connect({ ...options, hostname, port: String(toPort) }, (err, socket) => {
        if (err) reject(err);
        else resolve(socket);
      });
    });
  }

  return (options, callback) => {
    open(options).then(
      (socket) => callback(null, socket),
      (err: Error) => callback(err, null),
    );
  };
}
