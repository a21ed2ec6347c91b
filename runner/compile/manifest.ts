import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { parseAllowedHost } from '../../host-api/http/policy.ts';
import { describeIssues } from '../../host-api/schema-issues.ts';
import { UsageError } from '../errors.ts';

/** One entry of `permissions`: which doctype, which verbs (all when absent). */
export const PermissionSchema = z.object({
  type: z.string().min(1),
  verbs: z.array(z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'ALL'])).optional(),
  description: z.string().optional(),
  selector: z.string().optional(),
  values: z.array(z.string()).optional(),
});

/**
 * The part of cozy's `manifest.konnector` the runner relies on. Other keys
 * (locales, categories, icon...) are kept as they are.
 */
export const ManifestSchema = z
  .object({
    slug: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/, 'lower-case letters, digits, "-" and "_" only'),
    name: z.string().min(1),
    version: z.string().regex(/^\d+\.\d+\.\d+([-+][\w.-]+)?$/, 'a semantic version like 1.2.3'),
    type: z.literal('konnector').optional(),
    fields: z.record(z.unknown()).default({}),
    permissions: z.record(PermissionSchema).default({}),
    folders: z.array(z.object({ defaultDir: z.string() }).passthrough()).optional(),
    frequency: z.string().optional(),
    data_types: z.array(z.string()).optional(),
    parameters: z.record(z.unknown()).optional(),
    /**
     * Where the konnector may connect; absent = any public host on ports 80
     * and 443. Syntax in host-api/http/README.md. It can only narrow what the
     * operator allows.
     */
    allowed_hosts: z
      .array(
        z.string().superRefine((spec, ctx) => {
          try {
            parseAllowedHost(spec);
          } catch (error) {
            ctx.addIssue({ code: z.ZodIssueCode.custom, message: (error as Error).message });
          }
        }),
      )
      .optional(),
  })
  .passthrough();

export type Manifest = z.infer<typeof ManifestSchema>;

export function parseManifest(json: unknown, where: string): Manifest {
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    throw new UsageError('manifest', `${where} is not a valid konnector manifest:\n${describeIssues(parsed.error)}`);
  }
  return parsed.data;
}

export async function readManifest(konnectorDir: string): Promise<Manifest> {
  const file = path.join(konnectorDir, 'manifest.konnector');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UsageError(
      'manifest',
      `no manifest.konnector in ${konnectorDir}: a konnector directory needs one (slug, name, version, fields, permissions)`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError('manifest', `${file} is not valid JSON: ${(error as Error).message}`);
  }
  return parseManifest(json, file);
}
