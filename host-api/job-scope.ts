import { z } from 'zod';
import { databaseName } from './couchdb.ts';

/** A Cozy instance: a lower-case domain, with an optional port (the prefix of its database names). */
export const instanceDomainSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/, 'a Cozy instance domain such as alice.cozy.example, with an optional :port');

/**
 * What every CouchDB-backed capability knows of its job: where the database
 * is, whose Cozy, which konnector and which account. Validated once here.
 */
export const jobScopeSchema = z.object({
  couchUrl: z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be an http:// or https:// URL'),
  instance: instanceDomainSchema,
  slug: z.string().min(1),
  accountId: z.string().min(1),
  appVersion: z.string().min(1).optional(),
  /** Per-request timeout towards CouchDB. */
  requestTimeoutMs: z.number().int().positive().optional(),
});

/** The runner's own doctype for vendor sessions (sessions.ts); `documents` never serves it to a konnector. */
export const SESSIONS_DOCTYPE = 'io.cozy.konnector-runner.sessions';

/** Doctypes whose per-instance databases belong to the runner itself (docs/security.md). */
const RUNNER_DOCTYPES = [SESSIONS_DOCTYPE];

/**
 * Whether `doctype` of `instance` lands in one of the runner's own databases. Compared by database name, so
 * every spelling that reaches one (`io.cozy.konnector.runner.sessions`, upper case...) is caught.
 */
export function isRunnerDatabase(instance: string, doctype: string): boolean {
  const target = databaseName(instance, doctype);
  return RUNNER_DOCTYPES.some((own) => databaseName(instance, own) === target);
}
