/**
 * `updateOrCreate(entries, doctype, matchingAttributes, options)`: for each
 * entry, updates the stored document whose `matchingAttributes` are all equal
 * to the entry's (merging the entry into it), or creates one, as
 * cozy-konnector-libs does.
 *
 * Needs GET, POST and PUT on the doctype in the manifest.
 */
import { InvalidArgumentError } from './exceptions.js';
import { saveDocument } from './host.js';
import { log as baseLog } from './log.js';
import { get, queryAll } from './utils.js';

const log = baseLog.namespace('updateOrCreate');

/** Equal as stored: a Date and its ISO string are the same value. */
function sameValue(a, b) {
  return a === b || (a !== undefined && b !== undefined && JSON.stringify(a) === JSON.stringify(b));
}

/** Only the documents that may match: those whose first attribute is one of the entries' values. */
function selectorFor(entries, attribute) {
  const values = [...new Set(entries.map((entry) => get(entry, attribute)))];
  const simple = values.every((value) => typeof value === 'string' || typeof value === 'number');
  return simple && values.length <= 100 ? { [attribute]: { $in: values } } : { [attribute]: { $exists: true } };
}

/**
 * @param {object[]} entries
 * @param {string} doctype e.g. 'io.cozy.identities'
 * @param {string[]} matchingAttributes dotted paths, e.g. ['identifier', 'cozyMetadata.sourceAccount']
 * @param {{ sourceAccountIdentifier?: string }} [options]
 * @returns {Promise<object[]>} the stored documents
 */
export async function updateOrCreate(entries = [], doctype, matchingAttributes = [], options = {}) {
  if (!doctype) throw new InvalidArgumentError('updateOrCreate: the doctype is mandatory, e.g. "io.cozy.identities"');
  if (!Array.isArray(entries)) throw new InvalidArgumentError('updateOrCreate: entries must be an array');
  if (!Array.isArray(matchingAttributes) || matchingAttributes.length === 0) {
    throw new InvalidArgumentError('updateOrCreate: give the attributes that identify a document, e.g. [\'vendorRef\']');
  }
  if (entries.length === 0) return [];
  const existing = await queryAll(doctype, selectorFor(entries, matchingAttributes[0]));
  const results = [];
  for (const entry of entries) {
    const index = existing.findIndex((doc) => matchingAttributes.every((attribute) => sameValue(get(doc, attribute), get(entry, attribute))));
    const cozyMetadata = { ...(index >= 0 ? existing[index].cozyMetadata : {}), ...entry.cozyMetadata };
    if (options.sourceAccountIdentifier !== undefined) cozyMetadata.sourceAccountIdentifier = options.sourceAccountIdentifier;
    let stored;
    if (index >= 0) {
      log('debug', `updating ${doctype} ${existing[index]._id}`);
      stored = await saveDocument(doctype, { ...existing[index], ...entry, _id: existing[index]._id, _rev: existing[index]._rev, cozyMetadata });
      existing[index] = stored;
    } else {
      log('debug', `creating a ${doctype} document`);
      stored = await saveDocument(doctype, { ...entry, cozyMetadata });
      existing.push(stored);
    }
    results.push(stored);
  }
  return results;
}
