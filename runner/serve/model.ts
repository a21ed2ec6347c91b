/**
 * The worker host's documents, shaped like cozy-stack's io.cozy.accounts,
 * io.cozy.triggers and io.cozy.jobs, and the API inputs that create them.
 * Inputs are validated here (zod) before anything is stored.
 */
import type { JobErrorCode } from '../error-codes.ts';
import { z } from 'zod';
import { instanceDomainSchema } from '../../host-api/job-scope.ts';
import type { LogLine } from '../../host-api/log.ts';
import type { JobReport } from '../sandbox/job.ts';
import { TRIGGER_TYPES } from './schedule.ts';

const SLUG = /^[a-z0-9][a-z0-9_-]*$/;
/** Ids the API accepts in paths and bodies: what CouchDB allows, minus the reserved leading "_". */
export const DOC_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$/;

const jsonObject = z.record(z.unknown());

export const AccountInputSchema = z
  .object({
    /** The konnector slug (cozy-stack: account_type). */
    account_type: z.string().regex(SLUG, 'a konnector slug: lower-case letters, digits, "-" and "_"'),
    /** The Cozy instance the konnector's documents go to. */
    instance: instanceDomainSchema,
    /** The konnector's fields: login, password... (cozy-stack: auth). */
    auth: jsonObject,
    label: z.string().max(200).optional(),
  })
  .strict();

export const AccountUpdateSchema = AccountInputSchema.pick({ auth: true, label: true }).strict();

export const TriggerInputSchema = z
  .object({
    type: z.enum(TRIGGER_TYPES),
    arguments: z.string().max(200).default(''),
    /** The io.cozy.accounts id the trigger runs the konnector for. */
    account: z.string().regex(DOC_ID, 'an account id as returned by POST /accounts'),
  })
  .strict();

export const TriggerUpdateSchema = TriggerInputSchema.pick({ type: true, arguments: true }).strict();

export const JobInputSchema = z
  .object({
    account: z.string().regex(DOC_ID, 'an account id as returned by POST /accounts'),
  })
  .strict();

export const JobListQuerySchema = z
  .object({
    account: z.string().regex(DOC_ID).optional(),
    trigger: z.string().regex(DOC_ID).optional(),
    state: z.enum(['queued', 'running', 'done', 'errored']).optional(),
    limit: z.coerce.number().int().min(1).max(10_000).default(100),
    skip: z.coerce.number().int().min(0).default(0),
  })
  .strict();

export interface Metadata {
  createdAt: string;
  updatedAt: string;
}

export interface AccountDoc {
  _id: string;
  _rev?: string;
  account_type: string;
  instance: string;
  auth: Record<string, unknown>;
  label?: string;
  cozyMetadata: Metadata;
}

export type JobState = 'queued' | 'running' | 'done' | 'errored';

export interface TriggerState {
  status: 'done' | 'errored' | 'never';
  last_execution?: string;
  last_executed_job_id?: string;
  last_success?: string;
  last_successful_job_id?: string;
  last_failure?: string;
  last_failed_job_id?: string;
  last_error?: JobErrorCode;
  /** The account revision the last job ran with: a stop lasts while the account stays at it. */
  last_account_rev?: string;
}

export interface TriggerDoc {
  _id: string;
  _rev?: string;
  type: z.infer<typeof TriggerInputSchema>['type'];
  arguments: string;
  worker: 'konnector';
  message: { account: string; konnector: string };
  current_state: TriggerState;
  cozyMetadata: Metadata;
}

export interface JobLogLine extends LogLine {
  attempt: number;
}

export interface JobAttempt {
  attempt: number;
  host: string;
  started_at: string;
  finished_at?: string;
  state: 'done' | 'errored' | 'interrupted';
  error?: JobErrorCode | null;
  message?: string | null;
}

export interface JobDoc {
  _id: string;
  _rev?: string;
  worker: 'konnector';
  instance: string;
  message: { account: string; konnector: string };
  trigger_id?: string;
  manual: boolean;
  state: JobState;
  queued_at: string;
  /** When the job may run (queued_at, or the end of a retry's back-off). */
  due_at: string;
  started_at?: string;
  finished_at?: string;
  /** Attempts started and not interrupted by the host's death or drain. */
  attempts: number;
  max_attempts: number;
  /** Times a host died or drained while running this job. */
  interruptions: number;
  /** Bumped each time the job is (re)queued: a queue message for an older one is stale. */
  seq: number;
  lease?: { host: string; expires_at: string };
  account_rev?: string;
  error?: JobErrorCode | null;
  /** The error's message (cozy-stack keeps only the code in `error`). */
  error_message?: string | null;
  report?: Omit<JobReport, 'jobId'>;
  history: JobAttempt[];
  logs: JobLogLine[];
}

/** Job documents without their log, for listings. */
export type JobSummary = Omit<JobDoc, 'logs'>;

/** Credentials never leave the host through the API: every value of `auth` reads "***". */
export function publicAccount(doc: AccountDoc) {
  const { _rev, auth, ...rest } = doc;
  return { ...rest, rev: _rev, auth: Object.fromEntries(Object.keys(auth).map((key) => [key, '***'])) };
}

export function publicTrigger(doc: TriggerDoc) {
  const { _rev, ...rest } = doc;
  return { ...rest, rev: _rev };
}

export function publicJob(doc: JobDoc | JobSummary) {
  const { _rev, lease, ...rest } = doc;
  return { ...rest, rev: _rev, ...(lease ? { lease } : {}) };
}
