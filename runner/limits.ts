import { z } from 'zod';

const MiB = 1024 * 1024;

/**
 * What one job may consume. The operator sets these (defaults below, or a
 * JSON file given to the CLI); a konnector's manifest can never raise them.
 */
export const LimitsSchema = z
  .object({
    /** Linear memory of the guest, rounded down to 64 KiB pages. */
    memoryBytes: z.number().int().min(16 * MiB).default(256 * MiB),
    /**
     * WebAssembly instructions the guest may execute (plus what host calls
     * charge, docs/fuel.md): the CPU budget, counted the same on any machine.
     */
    fuel: z.number().int().positive().default(100_000_000_000),
    /** Wall-clock time of the whole job; cozy-stack's default is 300 s. */
    wallClockMs: z.number().int().positive().default(300_000),
    http: z
      .object({
        maxRequests: z.number().int().nonnegative().default(1000),
        maxBytesIn: z.number().int().nonnegative().default(512 * MiB),
        maxBytesOut: z.number().int().nonnegative().default(64 * MiB),
        maxResponseBytes: z.number().int().positive().default(64 * MiB),
        maxRequestBodyBytes: z.number().int().positive().default(16 * MiB),
        connectTimeoutMs: z.number().int().positive().default(10_000),
        headersTimeoutMs: z.number().int().positive().default(30_000),
        bodyTimeoutMs: z.number().int().positive().default(60_000),
        maxRedirects: z.number().int().nonnegative().default(10),
        maxConcurrent: z.number().int().positive().default(4),
        /** Header fields of one request (the konnector's) or one response (the vendor's). */
        maxHeaders: z.number().int().positive().default(256),
        /** `set-cookie` values the job's jar takes in the whole job; later ones are dropped with a warning. */
        maxCookies: z.number().int().nonnegative().default(3000),
        /** The vendor session kept for the account's next job (the serialized jar): cut to fit, with a warning. */
        maxSessionBytes: z.number().int().positive().default(1 * MiB),
      })
      .default({}),
    documents: z
      .object({
        maxDocuments: z.number().int().nonnegative().default(10_000),
        maxDocumentBytes: z.number().int().positive().default(1 * MiB),
        maxFindLimit: z.number().int().positive().default(1000),
        /** `documents.find` calls per job. */
        maxFinds: z.number().int().nonnegative().default(10_000),
      })
      .default({}),
    files: z
      .object({
        maxFileBytes: z.number().int().positive().default(64 * MiB),
        maxTotalBytes: z.number().int().nonnegative().default(512 * MiB),
        /** Files and folders created or replaced per job. */
        maxFiles: z.number().int().nonnegative().default(1000),
        /** `files.stat` calls per job. */
        maxStats: z.number().int().nonnegative().default(10_000),
      })
      .default({}),
    log: z
      .object({
        maxLines: z.number().int().positive().default(10_000),
        maxBytes: z.number().int().positive().default(4 * MiB),
        /** A longer line is cut, not refused. */
        maxLineBytes: z.number().int().positive().default(16 * 1024),
      })
      .default({}),
  })
  .strict();

export type Limits = z.infer<typeof LimitsSchema>;

export const defaultLimits: Limits = LimitsSchema.parse({});

export const WASM_PAGE_BYTES = 64 * 1024;
