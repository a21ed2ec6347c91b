/**
 * `addData(entries, doctype, options)`: saves each entry as is, one after the
 * other (an entry with `_id` and `_rev` updates that document). The host adds
 * the cozyMetadata it owns (createdAt, createdByApp, sourceAccount...); the
 * SDK adds `sourceAccountIdentifier`, which only the konnector knows.
 *
 * Needs POST (and PUT to update) on the doctype in the manifest.
 */
import { saveDocument } from './host.js';
import { InvalidArgumentError } from './exceptions.js';
import { log as baseLog } from './log.js';

const log = baseLog.namespace('addData');

/**
 * @param {object[]} entries
 * @param {string} doctype
 * @param {{ sourceAccount?: string, sourceAccountIdentifier?: string }} [options]
 * @returns {Promise<object[]>} the stored documents, with `_id` and `_rev`
 */
export async function addData(entries, doctype, options = {}) {
  if (!doctype) throw new InvalidArgumentError('addData: the doctype is mandatory, e.g. "io.cozy.bills"');
  if (!Array.isArray(entries)) throw new InvalidArgumentError('addData: entries must be an array');
  const stored = [];
  for (const entry of entries) {
    const cozyMetadata = { ...entry.cozyMetadata };
    if (options.sourceAccountIdentifier !== undefined) cozyMetadata.sourceAccountIdentifier = options.sourceAccountIdentifier;
    const dbEntry = await saveDocument(doctype, { ...entry, cozyMetadata });
    log('debug', `${entry._id ? 'Updated' : 'Created'} ${doctype} ${dbEntry._id}`);
    // As cozy-konnector-libs: the caller's entry learns its id.
    entry._id = dbEntry._id;
    stored.push(dbEntry);
  }
  return stored;
}
