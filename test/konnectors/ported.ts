/**
 * Runs a ported konnector as the runner does: built once per engine (test/support/engines.ts `loadOn`: the real
 * `konnector build`'s component, or the konnector compiled for QuickJS), one job per run in the sandbox, against the embedded CouchDB and a files directory in a temporary folder, its vendor site reached
 * under the vendor's host name through connect-to.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nano from 'nano';
import { databaseName } from '../../host-api/documents.ts';
import type { LogLine } from '../../host-api/log.ts';
import { runJob, type JobReport } from '../../runner/sandbox/job.ts';
import { defaultLimits, type Limits } from '../../runner/limits.ts';
import type { EngineName } from '../../runner/sandbox/pool.ts';
import { startTestCouch, storedDocs } from '../support/couch.ts';
import { loadOn } from '../support/engines.ts';

export interface PortedEnv {
  couchUrl: string;
  filesDir: string;
  stop(): Promise<void>;
}

export async function startPortedEnv(): Promise<PortedEnv> {
  const [couch, filesDir] = await Promise.all([startTestCouch(), mkdtemp(path.join(os.tmpdir(), 'ported-files-'))]);
  return {
    couchUrl: couch.url,
    filesDir,
    async stop() {
      await couch.stop();
      await rm(filesDir, { recursive: true, force: true });
    },
  };
}

export interface PortedRun {
  report: JobReport;
  logs: LogLine[];
  messages: string[];
}

/**
 * One job on `engine` of the konnector in `konnectorDir`, its vendor `host` mapped to 127.0.0.1:`port`: port 80, or 443 when
 * `ca` is given (an https site; `ca`, when not empty, is a CA the job trusts beside Node's roots).
 */
export async function runPorted(
  env: PortedEnv,
  engine: EngineName,
  konnectorDir: string,
  job: {
    instance: string; accountId: string; fields: Record<string, unknown>; vendor: { host: string; port: number; ca?: string }; limits?: Limits;
  },
): Promise<PortedRun> {
  const logs: LogLine[] = [];
  const limits = job.limits ?? defaultLimits;
  const report = await runJob(
    await loadOn(engine, konnectorDir, limits),
    { accountId: job.accountId, instance: job.instance, fields: job.fields },
    {
      couchUrl: env.couchUrl,
      limits,
      filesDir: env.filesDir,
      connectTo: [{ host: job.vendor.host, port: job.vendor.ca === undefined ? 80 : 443, toAddress: '127.0.0.1', toPort: job.vendor.port }],
      extraCaCertificates: job.vendor.ca ? [job.vendor.ca] : undefined,
      onLog: (line) => logs.push(line),
    },
  );
  return { report, logs, messages: logs.map((line) => line.message) };
}

/** Creates the io.cozy.accounts document the stack would hold for the job's account. */
export async function createAccount(env: PortedEnv, instance: string, account: Record<string, unknown>): Promise<void> {
  const name = decodeURIComponent(databaseName(instance, 'io.cozy.accounts'));
  await nano(env.couchUrl).db.create(name).catch(() => undefined);
  await nano(env.couchUrl).use(name).insert(account);
}

/** The io.cozy.files documents of files (folders aside), by their path in the Cozy. */
export async function storedFiles(env: PortedEnv, instance: string): Promise<Map<string, Record<string, any>>> {
  const docs = await storedDocs(env.couchUrl, instance, 'io.cozy.files');
  const dirs = new Map(docs.filter((d) => d.type === 'directory').map((d) => [d._id, d.path as string]));
  return new Map(docs.filter((d) => d.type === 'file').map((d) => [`${dirs.get(d.dir_id)}/${d.name}`, d]));
}

/** A file's content on disk, where the runner keeps it: <filesDir>/<instance>/<path in the Cozy>. */
export function readStored(env: PortedEnv, instance: string, cozyPath: string): Promise<Buffer> {
  return readFile(path.join(env.filesDir, instance, ...cozyPath.split('/').slice(1)));
}

export const md5 = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('base64');
