import { z } from 'zod';
import { capabilityLimits } from '../host-api/index.ts';

const MiB = 1024 * 1024;

/**
 * What one job may consume. The operator sets these (defaults below and in
 * each capability's module, or a JSON file given to the CLI); a konnector's
 * manifest can never raise them. The sandbox's own limits are here; each
 * capability's (http, documents, files, log) are its module's, composed below.
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
    ...capabilityLimits,
  })
  .strict();

export type Limits = z.infer<typeof LimitsSchema>;

export const defaultLimits: Limits = LimitsSchema.parse({});

export const WASM_PAGE_BYTES = 64 * 1024;
