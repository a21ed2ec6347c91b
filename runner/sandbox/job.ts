import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { BudgetUsage } from '../../host-api/capability.ts';
import { operatorHostsFor, type ConnectTo, type OperatorHosts } from '../../host-api/http/index.ts';
import { capabilityBudgets, createCapabilities, type CapabilityBudget } from '../../host-api/index.ts';
import { instanceDomainSchema } from '../../host-api/job-scope.ts';
import type { LogLine } from '../../host-api/log.ts';
import { describeIssues } from '../../host-api/schema-issues.ts';
import { openSessions, type SessionStore } from '../../host-api/sessions.ts';
import { needsTheUser } from '../error-codes.ts';
import { UsageError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import type { LoadedKonnector } from './loader.ts';
import type { EngineName, SandboxPool } from './pool.ts';
import { engineOf, runInSandbox, type JobOutcome } from './sandbox.ts';
import type { JobCapabilities } from '../../host-api/index.ts';

/** What a caller must say to run one job. Validated: it comes from operators and APIs. */
export const JobRequestSchema = z.object({
  jobId: z.string().min(1).default(() => randomUUID()),
  accountId: z.string().min(1),
  instance: instanceDomainSchema,
  fields: z.record(z.unknown()),
  parameters: z.record(z.unknown()).default({}),
  /** Launched by a person (run now, `konnector run`) rather than by a schedule: the konnector may then ask for a second factor. */
  manual: z.boolean().default(false),
  /** The instance's locale, as cozy-stack passes it. */
  locale: z.string().min(2).max(35).default('en'),
});

export type JobRequest = z.input<typeof JobRequestSchema>;

export interface JobReport extends JobOutcome {
  jobId: string;
  slug: string;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  saved: Record<string, number>;
  logLines: number;
  /** The fuel budget; null when the component is not metered. */
  fuelLimit: number | null;
  /** Every budget of the job: what it used against its limit, the sandbox's then each capability's. */
  budgets: Record<'fuel' | 'wallClockMs' | 'memoryBytes' | CapabilityBudget, BudgetUsage>;
}

export interface JobEnvironment {
  couchUrl: string;
  limits: Limits;
  connectTo?: ConnectTo[];
  /** The operator's allowed hosts: a konnector reaches only hosts the operator allows it and its manifest lists. */
  allowHosts?: OperatorHosts;
  /** DNS for the job's http capability; default the system resolver. Tests inject a fake one. */
  resolve?: (host: string) => Promise<string[]>;
  /** CA certificates (PEM) the job's https trusts beside Node's roots: an operator's private CA, or a test vendor's. */
  extraCaCertificates?: string[];
  onLog?: (line: LogLine) => void;
  /** Where file contents are stored (`<filesDir>/<instance>/<path>`); without it the konnector cannot save files. */
  filesDir?: string;
  /** The worker threads to run on, by engine; an engine without one runs on its process-wide pool. */
  pools?: Partial<Record<EngineName, SandboxPool>>;
  /**
   * What each of the job's capabilities goes through as runJob makes it, before
   * anything uses it (the worker host's claim on the job: runner/serve/job-gate.ts).
   * Default: as made.
   */
  guard?: Guard;
  /** Stops the job: its konnector is stopped and runJob rejects with JobStopped; the job has no outcome. */
  signal?: AbortSignal;
}

/** What runJob makes for a job: the guest's capabilities, and the store of the account's vendor session. */
export interface JobResources extends JobCapabilities {
  sessions: SessionStore;
}

type Guard = <K extends keyof JobResources>(name: K, capability: JobResources[K]) => JobResources[K];

const asMade: Guard = (_name, capability) => capability;

/** Every capability made for the job, through the guard. */
function guardEach(made: JobCapabilities, guard: Guard): JobCapabilities {
  const guarded: Partial<Record<keyof JobCapabilities, unknown>> = {};
  for (const name of Object.keys(made) as (keyof JobCapabilities)[]) guarded[name] = guard(name, made[name]);
  return guarded as JobCapabilities;
}

export function parseJobRequest(input: unknown): z.output<typeof JobRequestSchema> {
  const parsed = JobRequestSchema.safeParse(input);
  if (!parsed.success) throw new UsageError('job-input', `invalid job input:\n${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** One job: fresh capabilities (cookie jar, budgets, log), a fresh sandbox, a report. */
export async function runJob(konnector: LoadedKonnector, request: JobRequest, env: JobEnvironment): Promise<JobReport> {
  const job = parseJobRequest(request);
  const { manifest } = konnector.header;
  const guard = env.guard ?? asMade;
  const sessions = guard('sessions', openSessions({ couchUrl: env.couchUrl, instance: job.instance, slug: manifest.slug, accountId: job.accountId }));
  // Read while the konnector starts: only its first request needs it.
  const session = sessions.load().catch((error: Error) => {
    log.write('warning', `the account's vendor session could not be read, starting without it: ${error.message}`, 'runner');
    return undefined;
  });
  const caps = guardEach(createCapabilities({
    couchUrl: env.couchUrl,
    instance: job.instance,
    accountId: job.accountId,
    fields: job.fields,
    manifest,
    filesDir: env.filesDir,
    session,
    network: {
      operatorAllowedHosts: operatorHostsFor(env.allowHosts, manifest.slug),
      connectTo: env.connectTo,
      resolve: env.resolve,
      extraCaCertificates: env.extraCaCertificates,
    },
    // Called once the capabilities exist, never while they are made.
    note: (level, message) => log.write(level, message, 'runner'),
    onLog: env.onLog,
  }, env.limits), guard);
  const { http, documents, log } = caps;
  let outcome: JobOutcome;
  try {
    // Made while the konnector starts; its account calls wait for it.
    void documents.ensureAccount().catch((error: Error) => {
      log.write('warning', `the job's account document could not be made: ${error.message}`, 'runner');
    });
    outcome = await runInSandbox(
      konnector,
      {
        jobId: job.jobId,
        accountId: job.accountId,
        fields: JSON.stringify(job.fields),
        parameters: JSON.stringify(job.parameters),
        manifest: JSON.stringify(manifest),
        environment: [
          // As cozy-stack sets them: the job's message (which account, which konnector; never its credentials) and parameters.
          ['COZY_FIELDS', JSON.stringify({ account: job.accountId, konnector: manifest.slug })],
          ['COZY_PARAMETERS', JSON.stringify(job.parameters)],
          ['COZY_JOB_ID', job.jobId],
          ['COZY_JOB_MANUAL_EXECUTION', String(job.manual)],
          ['COZY_LOCALE', job.locale],
          ['COZY_TIME_LIMIT', String(Math.ceil(env.limits.wallClockMs / 1000))],
        ],
        maxResponseBytes: BigInt(env.limits.http.maxResponseBytes),
      },
      caps,
      env.limits,
      env.pools?.[engineOf(konnector)],
      env.signal,
    );
  } finally {
    await http.close();
    // A job that made no request did not wait for its session: a read failure still belongs in its log.
    await session;
  }
  // The session is kept only when the konnector asked to (CookieKonnector), and dropped when the vendor refused the login.
  const loginRejected = outcome.error !== null && needsTheUser(outcome.error);
  const keep = loginRejected ? false : http.sessionWanted;
  if (keep !== undefined) {
    await (keep ? sessions.save(await http.session()) : sessions.drop()).catch((error: Error) =>
      log.write('warning', `the account's vendor session could not be ${keep ? 'kept' : 'forgotten'}: ${error.message}`, 'runner'),
    );
  }
  const { limits } = env;
  return {
    jobId: job.jobId,
    slug: manifest.slug,
    ...outcome,
    requests: http.stats.requests,
    bytesIn: http.stats.bytesIn,
    bytesOut: http.stats.bytesOut,
    saved: { ...documents.saved },
    logLines: log.lines.length,
    fuelLimit: konnector.metered ? limits.fuel : null,
    budgets: {
      fuel: { used: outcome.fuelUsed ?? 0, limit: konnector.metered ? limits.fuel : 0 },
      wallClockMs: { used: outcome.durationMs, limit: limits.wallClockMs },
      memoryBytes: { used: outcome.memoryPeakBytes, limit: limits.memoryBytes },
      ...capabilityBudgets(caps, limits),
    },
  };
}
