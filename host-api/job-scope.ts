import { z } from 'zod';

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

/**
 * The name of the database holding `doctype` for `instance`, as it appears in a URL path. This is cozy-stack's
 * rule (pkg/couchdb makeDBName): lowercase(prefix + "/" + doctype) with every "." and ":" replaced by "-", then
 * Go's url.PathEscape. The prefix is the instance domain, so "alice.cozy.example" + "io.cozy.bills" gives
 * "alice-cozy-example%2Fio-cozy-bills"; the database's real name is "alice-cozy-example/io-cozy-bills".
 */
export function databaseName(instance: string, doctype: string): string {
  return goPathEscape(`${instance}/${doctype}`.toLowerCase().replace(/[.:]/g, '-'));
}

/** Go's url.PathEscape: keeps unreserved characters and "$&+:=@", escapes every other byte (including "/"). */
function goPathEscape(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~$&+:=@]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

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
