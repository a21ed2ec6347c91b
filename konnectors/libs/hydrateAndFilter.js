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
import { findDocuments } from './host.js';
import { InvalidArgumentError } from './exceptions.js';
import { log as baseLog } from './log.js';

const log = baseLog.namespace('hydrateAndFilter');

// Documents read per documents.find call; the host may return fewer (its cap).
const PAGE_SIZE = 1000;

/** lodash.get for dotted paths: 'a.b.c'. */
function get(object, path) {
  let value = object;
  for (const part of path.split('.')) {
    if (value === null || value === undefined) return undefined;
    value = value[part];
  }
  return value;
}

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
 * Every stored document matching `selector`, read by pages of increasing `_id`
 * (the host's find has no bookmark; CouchDB answers a selector without a
 * better index in `_id` order).
 */
async function findAll(doctype, selector) {
  const found = [];
  let after = null;
  for (;;) {
    const page = await findDocuments(doctype, after === null ? selector : { $and: [selector, { _id: { $gt: after } }] }, PAGE_SIZE);
    if (page.length === 0) return found;
    found.push(...page);
    const ids = page.map((doc) => doc._id);
    const last = ids.reduce((max, id) => (id > max ? id : max));
    if (ids.some((id, i) => i > 0 && id < ids[i - 1])) {
      log('warn', `${doctype}: the database did not answer in _id order; documents past the first ${found.length} are not compared`);
      return found;
    }
    after = last;
  }
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
  for (const existing of await findAll(doctype, options.selector ?? defaultSelector(documents, keys))) {
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
