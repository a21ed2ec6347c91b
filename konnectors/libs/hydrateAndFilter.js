/**
 * `hydrateAndFilter(documents, doctype, options)`: drops the documents already
 * in the Cozy, as cozy-konnector-libs does. Two documents are the same when
 * their `options.keys` (default `['_id']`) are equal (`date` compared as a
 * date). Documents found in the database get its `_id` and `_rev`; whether
 * they are kept is decided by `shouldUpdate(entry, existing)` (default: no),
 * and new ones by `shouldSave(entry)` (default: yes).
 *
 * Needs GET on the doctype in the manifest.
 */
import { InvalidArgumentError } from './exceptions.js';
import { log as baseLog } from './log.js';
import { get, queryAll } from './utils.js';

const log = baseLog.namespace('hydrateAndFilter');

function hashOf(keys) {
  return (item) => keys.map((key) => {
    const value = get(item, key);
    if (key !== 'date') return String(value);
    const time = new Date(value).getTime();
    return Number.isNaN(time) ? 'Invalid Date' : String(time);
  }).join('####');
}

/**
 * cozy-konnector-libs reads every document having the keys. When all the
 * documents hold strings at a key, only stored documents with one of those
 * strings are read: the others cannot be duplicates (unless a stored value is
 * a non-string that prints the same, like 42 for '42').
 */
function defaultSelector(documents, keys) {
  const selector = {};
  for (const key of keys) {
    const values = documents.map((doc) => get(doc, key));
    const distinct = [...new Set(values)];
    const allStrings = values.length > 0 && values.every((value) => typeof value === 'string');
    selector[key] = allStrings && distinct.length <= 100 ? { $in: distinct } : { $gt: null };
  }
  return selector;
}

/**
 * A function with more parameters than given is called as a method on its
 * first argument, as cozy-konnector-libs does (`suitableCall`).
 */
function suitableCall(fn, ...args) {
  return fn.length < args.length ? fn.apply(args[0], args.slice(1)) : fn.apply(null, args);
}

/**
 * @param {object[]} documents
 * @param {string} doctype e.g. 'io.cozy.bills'
 * @param {{ keys?: string[], selector?: object, shouldSave?: Function, shouldUpdate?: Function }} [options]
 * @returns {Promise<object[]>} the documents to save (existing ones with `_id` and `_rev`)
 */
export async function hydrateAndFilter(documents, doctype, options = {}) {
  if (!doctype) throw new InvalidArgumentError('hydrateAndFilter: the doctype is mandatory, e.g. "io.cozy.bills"');
  if (!Array.isArray(documents)) throw new InvalidArgumentError('hydrateAndFilter: documents must be an array');
  if (options.index !== undefined) log('debug', 'the index option is ignored: the host chooses the index');
  const keys = options.keys ?? ['_id'];
  log('debug', `${documents.length} items before hydrateAndFilter, keys ${keys.join(', ')}`);

  const hash = hashOf(keys);
  const store = new Map();
  for (const existing of await queryAll(doctype, options.selector ?? defaultSelector(documents, keys))) {
    store.set(hash(existing), existing);
  }

  const kept = [];
  const seenIds = new Set();
  for (const entry of documents) {
    if (!entry) continue;
    const existing = store.get(hash(entry));
    if (existing) {
      entry._id = existing._id;
      entry._rev = existing._rev;
    }
    const keep = existing
      ? await suitableCall(entry.shouldUpdate || options.shouldUpdate || (() => false), entry, existing)
      : await suitableCall(entry.shouldSave || options.shouldSave || (() => true), entry);
    if (!keep) continue;
    // Like lodash's uniqBy(entry => entry._id || entry): one copy per stored document.
    if (entry._id !== undefined) {
      if (seenIds.has(entry._id)) continue;
      seenIds.add(entry._id);
    }
    kept.push(entry);
  }
  log('debug', `${kept.length} items after hydrateAndFilter`);
  return kept;
}
