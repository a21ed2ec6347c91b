/**
 * The catalog: what a person needs to know of each konnector the host has,
 * read from its artifact's manifest (cached per sha256: an artifact is read
 * and verified once), and the connect form's fields as the manifest gives them.
 */
import { z } from 'zod';
import { readArtifactHeader } from '../../compile/artifact.ts';
import type { Manifest } from '../../compile/manifest.ts';
import { ServeError } from '../errors.ts';
import type { KonnectorRegistry } from '../konnectors.ts';

export type Frequency = 'daily' | 'weekly';

export interface CatalogField {
  name: string;
  label: string;
  /** An <input> type: text, email, password, date, number; or "select" with `options`. */
  type: string;
  required: boolean;
  options?: Array<{ value: string; label: string }>;
}

export interface CatalogEntry {
  slug: string;
  name: string;
  version: string;
  description: string;
  vendorLink?: string;
  /** The hosts the konnector may reach (its manifest's allowed_hosts), or the vendor link's host. */
  hosts: string[];
  doctypes: string[];
  folder?: string;
  dataTypes: string[];
  frequency: Frequency;
  fields: CatalogField[];
}

/** Labels cozy-harvest-lib gives the standard field names. */
const STANDARD_LABELS: Record<string, string> = {
  login: 'Login', password: 'Password', email: 'E-mail address', identifier: 'Identifier', secret: 'Secret', birthdate: 'Date of birth',
};
const INPUT_TYPES = new Set(['text', 'email', 'password', 'date', 'number']);

const FieldSchema = z.object({
  type: z.string().optional(),
  label: z.string().optional(),
  required: z.boolean().optional(),
  options: z.array(z.object({ value: z.string(), name: z.string().optional(), label: z.string().optional() })).optional(),
}).passthrough();

function fieldsOf(manifest: Manifest): CatalogField[] {
  return Object.entries(manifest.fields).flatMap(([name, raw]) => {
    const parsed = FieldSchema.safeParse(raw);
    if (!parsed.success || (raw as { advanced?: boolean }).advanced) return [];
    const field = parsed.data;
    const type = field.type === 'dropdown' ? 'select' : INPUT_TYPES.has(field.type ?? '') ? field.type! : 'text';
    // A field label the manifest gives may be a translation key ("loginLabel"): the standard words read better.
    const label = STANDARD_LABELS[name] ?? field.label ?? name.replace(/[_-]+/g, ' ').replace(/^./, (c) => c.toUpperCase());
    return [{
      name, label, type, required: field.required ?? true,
      ...(type === 'select' ? { options: (field.options ?? []).map((o) => ({ value: o.value, label: o.label ?? o.name ?? o.value })) } : {}),
    }];
  });
}

const englishLocale = (manifest: Manifest) =>
  ((manifest as { locales?: Record<string, { short_description?: string; long_description?: string }> }).locales ?? {}).en;

/** What the catalog and the connect form show of a konnector, from its manifest. */
export function catalogEntry(manifest: Manifest): CatalogEntry {
  const extra = manifest as { description?: string; vendor_link?: string };
  const vendorHost = extra.vendor_link && URL.canParse(extra.vendor_link) ? new URL(extra.vendor_link).host : undefined;
  return {
    slug: manifest.slug,
    name: manifest.name,
    version: manifest.version,
    description: englishLocale(manifest)?.long_description ?? extra.description ?? '',
    ...(extra.vendor_link ? { vendorLink: extra.vendor_link } : {}),
    hosts: manifest.allowed_hosts ?? (vendorHost ? [vendorHost] : []),
    doctypes: Object.values(manifest.permissions).map((p) => p.type).filter((type) => type !== 'io.cozy.accounts'),
    ...(manifest.folders?.[0] ? { folder: manifest.folders[0].defaultDir } : {}),
    dataTypes: manifest.data_types ?? [],
    // cozy-stack's manifests say "daily" or "weekly"; anything else runs weekly, cozy-stack's default.
    frequency: manifest.frequency === 'daily' ? 'daily' : 'weekly',
    fields: fieldsOf(manifest),
  };
}

export class Catalog {
  private readonly bySha = new Map<string, Promise<CatalogEntry>>();

  constructor(private readonly registry: KonnectorRegistry) {}

  async list(): Promise<CatalogEntry[]> {
    await this.registry.scan();
    return Promise.all(this.registry.list().map((info) => {
      let entry = this.bySha.get(info.sha256);
      if (!entry) {
        entry = readArtifactHeader(info.file).then((header) => catalogEntry(header.manifest));
        entry.catch(() => this.bySha.delete(info.sha256));
        this.bySha.set(info.sha256, entry);
      }
      return entry;
    }));
  }

  async get(slug: string): Promise<CatalogEntry> {
    const entry = (await this.list()).find((e) => e.slug === slug);
    if (!entry) throw new ServeError('not-found', `this host has no konnector "${slug}"`);
    return entry;
  }
}

/**
 * The schema of the connect form's values for one konnector: every field a
 * string, the required ones not empty. On an edit, an empty password keeps the old one.
 */
export function credentialsSchema(entry: CatalogEntry, editing: boolean) {
  const shape: Record<string, z.ZodTypeAny> = {};
  for (const field of entry.fields) {
    const choices = field.options?.map((option) => option.value) ?? [];
    const text = field.type === 'select'
      ? z.string().refine((value) => value === '' || choices.includes(value), `${field.label}: one of ${choices.join(', ')}`)
      : z.string().max(1000);
    const optional = !field.required || (editing && field.type === 'password');
    shape[field.name] = optional ? text.optional() : text.refine((value) => value !== '', `${field.label} is required`);
  }
  return z.object(shape).strict();
}

/** The account's values a person may see again: every field but the passwords. */
export function visibleFields(entry: CatalogEntry, auth: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(entry.fields
    .filter((field) => field.type !== 'password' && typeof auth[field.name] === 'string')
    .map((field) => [field.name, auth[field.name] as string]));
}
