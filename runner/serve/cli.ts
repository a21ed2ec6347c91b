/**
 * `konnector serve`: parses the options, starts the host, and drains it on
 * SIGTERM or SIGINT (a second signal stops at once: the leases of the jobs
 * still running expire and another host, or the next start, runs them again).
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { allowHostArgs, connectToArgs, limitsArg } from '../cli/cli-args.ts';
import { UsageError } from '../errors.ts';
import { ServeError } from './errors.ts';
import { defaultServeOptions, startServeHost, type ServeOptions } from './host.ts';
import { parseGoDuration } from './schedule.ts';

export const SERVE_HELP = `Usage: konnector serve [options]

A long-running worker host: runs konnector jobs for the accounts and triggers stored in
CouchDB, with an HTTP API (docs/openapi.yaml, docs/serve.md).
  --konnectors <dir>      the *.kwasm artifacts it runs (default build/)
  --couchdb <url>         CouchDB for accounts, triggers, jobs and the konnectors' documents
                          (default $COUCHDB_URL, else an embedded one under --data-dir)
  --redis <url>           share the job queue with every host on this Redis (BullMQ);
                          without it the queue lives in this process
  --concurrency <n>       jobs run at once (default 2 x CPUs)
  --host <address>        address the API listens on (default 127.0.0.1)
  --port <port>           API port (default 8088; 0 picks a free one)
  --data-dir <dir>        embedded CouchDB data, the files konnectors save, the generated token
                          (default .data/serve)
  --limits <file>         JSON limits of each job (as for run; see docs/limits.md)
  --connect-to <H:P:A:P>  send the jobs' requests for H:P to A:P (repeatable)
  --allow-host [slug=]<spec>  the jobs reach only hosts in this list too (repeatable; slug= gives a
                          host to one konnector only; a konnector no entry names reaches nothing;
                          narrows each manifest's allowed_hosts, never widens it)
  --lease <duration>      how long a running job stays claimed without its host (default 30s)
  --grace <duration>      how long SIGTERM lets running jobs finish (default 300s)
  --max-attempts <n>      executions of a job at most (default 2, as cozy-stack)
  --retry-delay <d>       back-off before the first retry, doubled after (default 60ms, as cozy-stack)
  --db-prefix <name>      prefix of the host's databases (default konnector-serve)
  --public-url <url>      the address people open My Accounts at (sign-in links point there;
                          https makes its cookies Secure); default the address it listens on
  --smtp <url>            SMTP server for the e-mail sign-in links (smtp://user:pass@host:587,
                          smtps://...); without it owners cannot sign in by e-mail
  --mail-from <address>   the links' sender (default "My Accounts <no-reply@localhost>")
The API token is $KONNECTOR_SERVE_TOKEN, else the content of <data-dir>/token (made at the
first start, mode 0600). Durations are Go-style: 500ms, 30s, 5m, 1h30m.`;

function duration(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseGoDuration(value);
  if (ms === null) throw new UsageError('bad-arguments', `${flag} ${value}: not a duration; write it like 500ms, 30s or 5m`);
  return ms;
}

function positiveInt(flag: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError('bad-arguments', `${flag} ${value}: expected an integer >= ${min}`);
  return n;
}

/** The token from the environment, or the one kept in the data directory (made once). */
async function apiToken(dataDir: string): Promise<{ token: string; source: string }> {
  const fromEnv = process.env.KONNECTOR_SERVE_TOKEN;
  if (fromEnv) {
    if (fromEnv.length < 16) throw new UsageError('bad-arguments', 'KONNECTOR_SERVE_TOKEN must be at least 16 characters long');
    return { token: fromEnv, source: '$KONNECTOR_SERVE_TOKEN' };
  }
  const file = path.join(dataDir, 'token');
  try {
    return { token: (await readFile(file, 'utf8')).trim(), source: file };
  } catch {
    await mkdir(dataDir, { recursive: true });
    const token = randomBytes(32).toString('base64url');
    await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(file, 0o600);
    return { token, source: file };
  }
}

export async function parseServeArgs(argv: string[]): Promise<ServeOptions | 'help'> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        konnectors: { type: 'string' }, couchdb: { type: 'string' }, redis: { type: 'string' },
        concurrency: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, 'data-dir': { type: 'string' },
        limits: { type: 'string' }, 'connect-to': { type: 'string', multiple: true }, 'allow-host': { type: 'string', multiple: true }, lease: { type: 'string' },
        grace: { type: 'string' }, 'max-attempts': { type: 'string' }, 'retry-delay': { type: 'string' },
        'db-prefix': { type: 'string' }, 'public-url': { type: 'string' }, smtp: { type: 'string' }, 'mail-from': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new UsageError('bad-arguments', `${(error as Error).message}\n\n${SERVE_HELP}`);
  }
  if (values.help) return 'help';
  const defaults = defaultServeOptions();
  const dataDir = path.resolve(values['data-dir'] ?? defaults.dataDir);
  const port = positiveInt('--port', values.port, defaults.port, 0);
  if (port > 65535) throw new UsageError('bad-arguments', `--port ${port}: a port is at most 65535`);
  const prefix = values['db-prefix'] ?? defaults.dbPrefix;
  if (!/^[a-z][a-z0-9_-]*$/.test(prefix)) throw new UsageError('bad-arguments', `--db-prefix ${prefix}: lower-case letters, digits, "-" and "_", starting with a letter`);
  const connectTo = connectToArgs(values['connect-to']);
  for (const [flag, url] of [['--couchdb', values.couchdb], ['--redis', values.redis]] as const) {
    if (url !== undefined && !URL.canParse(url)) throw new UsageError('bad-arguments', `${flag} ${url}: not a URL`);
  }
  for (const [flag, url, schemes] of [['--public-url', values['public-url'], ['http:', 'https:']], ['--smtp', values.smtp, ['smtp:', 'smtps:']]] as const) {
    if (url !== undefined && !(URL.canParse(url) && (schemes as readonly string[]).includes(new URL(url).protocol))) {
      throw new UsageError('bad-arguments', `${flag} ${url}: expected a URL starting with ${schemes.map((s) => `${s}//`).join(' or ')}`);
    }
  }
  const { token, source } = await apiToken(dataDir);
  const options: ServeOptions = {
    ...defaults,
    konnectorsDir: path.resolve(values.konnectors ?? 'build'),
    couchUrl: values.couchdb || process.env.COUCHDB_URL || undefined,
    redisUrl: values.redis,
    dataDir,
    concurrency: positiveInt('--concurrency', values.concurrency, defaults.concurrency),
    listenHost: values.host ?? defaults.listenHost,
    port,
    token,
    limits: await limitsArg(values.limits),
    allowHosts: allowHostArgs(values['allow-host']),
    connectTo,
    dbPrefix: prefix,
    leaseMs: duration('--lease', values.lease, defaults.leaseMs),
    graceMs: duration('--grace', values.grace, defaults.graceMs),
    retry: {
      maxAttempts: positiveInt('--max-attempts', values['max-attempts'], defaults.retry.maxAttempts),
      baseDelayMs: duration('--retry-delay', values['retry-delay'], defaults.retry.baseDelayMs),
    },
    myAccounts: { ...defaults.myAccounts, smtpUrl: values.smtp, publicUrl: values['public-url']?.replace(/\/+$/, ''),
      mailFrom: values['mail-from'] ?? defaults.myAccounts.mailFrom },
  };
  options.log('info', `API token: ${source}`);
  return options;
}

export async function serveCommand(argv: string[]): Promise<number> {
  const options = await parseServeArgs(argv);
  if (options === 'help') {
    process.stdout.write(`${SERVE_HELP}\n`);
    return 0;
  }
  let host;
  try {
    host = await startServeHost(options);
  } catch (error) {
    // Bad options and unreachable CouchDB or Redis at start: the operator's to fix, no stack.
    if (error instanceof ServeError) throw new UsageError('bad-arguments', error.message);
    throw error;
  }
  process.stdout.write(`konnector serve: listening on ${host.url} (host ${host.hostId}, ${options.redisUrl ? 'Redis' : 'embedded'} queue, ` +
    `concurrency ${options.concurrency}); My Accounts at ${options.myAccounts.publicUrl ?? host.url}/app/\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  const again = () => {
    options.log('warning', 'second signal: stopping now; the running jobs run again once their leases expire');
    process.exit(1);
  };
  process.once('SIGTERM', again);
  process.once('SIGINT', again);
  options.log('info', `${signal}: draining (no new jobs; running ones get ${options.graceMs} ms to finish)`);
  const { finished, requeued } = await host.drain();
  options.log('info', `drained: ${finished} job(s) finished, ${requeued} given back to the queue`);
  // Workers of the jobs given back may still run: they must not keep the process alive.
  setTimeout(() => process.exit(0), 100).unref();
  return 0;
}
