import { z } from 'zod';

/**
 * What every CouchDB-backed capability knows of its job: where the database
 * is, whose Cozy, which konnector and which account. Validated once here.
 */
export const jobScopeSchema = z.object({
  couchUrl: z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be an http:// or https:// URL'),
  instance: z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/i, 'must be a domain, with an optional :port'),
  slug: z.string().min(1),
  accountId: z.string().min(1),
  appVersion: z.string().min(1).optional(),
  /** Per-request timeout towards CouchDB. */
  requestTimeoutMs: z.number().int().positive().optional(),
});
