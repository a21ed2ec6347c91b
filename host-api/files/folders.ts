/**
 * The konnector's folder in the user's Cozy, named as cozy-client names it from the manifest and the account.
 */
import { LONE_SURROGATE, MAX_NAME_BYTES } from './paths.ts';

/** Where cozy-client's `buildFolderPath` puts konnector folders ($administrative is localized by the stack). */
const BASE_DIRS: Record<string, string> = { $administrative: 'Administrative', $photos: 'Photos' };
const DEFAULT_DEFAULT_DIR = '$administrative/$konnector/$account';

/**
 * The account's name as cozy-client's `getAccountName` picks it (the job's fields are the account's `auth`):
 * accountName, login, identifier or email, else the account id.
 */
export function accountName(fields: Record<string, unknown>, accountId: string): string {
  for (const key of ['accountName', 'login', 'identifier', 'email']) {
    const value = fields[key];
    if (typeof value === 'string' && value.trim() !== '') return value;
  }
  return accountId;
}

/**
 * The konnector's folder, rendered from the manifest's first `folders[].defaultDir` as cozy-client's
 * `buildFolderPath` does: a leading `$administrative` or `$photos` names the base folder (`$administrative` is
 * added when neither is there), a segment that is exactly `$konnector` or `$account` becomes the konnector's
 * name or the account's name, and an empty rest means `$konnector/$account`. Undefined without `folders`.
 * Characters a folder name may not hold are replaced, so a login cannot move the folder elsewhere.
 *
 * In cozy-stack the user picks the folder, not the konnector; here the manifest only suggests one inside the
 * konnector's own: after the base, a rest that does not start with `$konnector` is replaced by
 * `$konnector/$account`, so a manifest cannot name another konnector's folder (docs/security.md).
 */
export function konnectorFolderPath(
  folders: ReadonlyArray<{ defaultDir?: unknown }> | undefined,
  names: { konnector: string; account: string },
  fields: Record<string, unknown> = {},
): string | undefined {
  // As cozy-harvest-lib's needsFolder: a `folders` key (even empty) or, in older manifests, the legacy
  // `fields.advancedFields.folderPath` asks for a folder; with neither the konnector has none.
  if (folders === undefined && !hasLegacyFolderField(fields)) return undefined;
  const declared = folders?.[0]?.defaultDir;
  const defaultDir = typeof declared === 'string' && declared ? declared : DEFAULT_DEFAULT_DIR;
  const segments = defaultDir.split('/').filter((segment) => segment !== '');
  const base = segments[0] !== undefined && Object.hasOwn(BASE_DIRS, segments[0]) ? BASE_DIRS[segments.shift()!]! : BASE_DIRS.$administrative!;
  const rest = segments[0] === '$konnector' ? segments : ['$konnector', '$account'];
  const rendered = rest.map((segment) =>
    segment === '$konnector' ? names.konnector : segment === '$account' ? names.account.replace(/\//g, '-') : segment);
  return `/${[base, ...rendered].map(safeFolderName).join('/')}`;
}

function hasLegacyFolderField(fields: Record<string, unknown>): boolean {
  const advanced = fields.advancedFields;
  return typeof advanced === 'object' && advanced !== null && 'folderPath' in advanced;
}

/** A name from the manifest or the account made acceptable as one folder name. */
function safeFolderName(name: string): string {
  const cleaned = truncateUtf8(name.replace(new RegExp(LONE_SURROGATE.source, 'g'), '\ufffd').replace(/[\u0000-\u001f\u007f/]/g, '-').trim(), MAX_NAME_BYTES);
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? '_' : cleaned;
}

function truncateUtf8(text: string, maxBytes: number): string {
  let out = text;
  while (Buffer.byteLength(out, 'utf8') > maxBytes) out = [...out].slice(0, -1).join('');
  return out;
}
