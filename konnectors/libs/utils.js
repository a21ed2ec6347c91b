/**
 * `utils` of cozy-konnector-libs: the helpers konnectors use (`queryAll`,
 * `fetchAll`, `formatDate`), plus the small ones the SDK shares. The others
 * throw an UnsupportedError naming them.
 */
import { findDocuments } from './host.js';
import { InvalidArgumentError, UnsupportedError } from './exceptions.js';
import { log as baseLog } from './log.js';

const log = baseLog.namespace('utils');

// Documents read per documents.find call; the host may return fewer (its cap).
const PAGE_SIZE = 1000;

/** lodash.get for dotted paths: 'a.b.c'. */
export function get(object, path) {
  let value = object;
  for (const part of String(path).split('.')) {
    if (value === null || value === undefined) return undefined;
    value = value[part];
  }
  return value;
}

/**
 * Every stored document of `doctype` matching a Mango `selector`, read by
 * pages of increasing `_id` (the host's find has no bookmark; CouchDB answers
 * a selector without a better index in `_id` order). The `index` argument of
 * cozy-konnector-libs is accepted and ignored: the host chooses the index.
 *
 * @param {string} doctype e.g. 'io.cozy.bills'
 * @param {object} [selector] default: every document (`{}`)
 * @returns {Promise<object[]>}
 */
export async function queryAll(doctype, selector = {}) {
  if (!doctype) throw new InvalidArgumentError('queryAll: the doctype is mandatory, e.g. "io.cozy.bills"');
  const found = [];
  let after = null;
  for (;;) {
    const page = await findDocuments(doctype, after === null ? selector : { $and: [selector, { _id: { $gt: after } }] }, PAGE_SIZE);
    const ids = page.map((doc) => doc._id);
    if (ids.some((id, i) => i > 0 && id < ids[i - 1])) {
      log('warn', `${doctype}: the database did not answer in _id order; documents past the first ${found.length + page.length} are not read`);
      return [...found, ...page];
    }
    // A database that ignores the page condition answers the same page again: stop there.
    const fresh = after === null ? page : page.filter((doc) => doc._id > after);
    if (fresh.length === 0) {
      if (page.length > 0) log('warn', `${doctype}: the database ignored the paging condition; documents past the first ${found.length} are not read`);
      return found;
    }
    found.push(...fresh.filter((doc) => !String(doc._id).startsWith('_design/')));
    after = ids[ids.length - 1];
  }
}

/** Every document of `doctype` (needs GET on it in the manifest). */
export function fetchAll(doctype) {
  return queryAll(doctype);
}

/**
 * A date as `YYYY-MM-DD`, the way konnectors name their files. The sandbox
 * has no time zone: the date is the UTC one.
 *
 * @param {Date|string|number} date
 */
export function formatDate(date) {
  const value = date instanceof Date ? date : new Date(date);
  if (Number.isNaN(value.getTime())) throw new InvalidArgumentError(`formatDate: ${JSON.stringify(date)} is not a date`);
  return value.toISOString().slice(0, 10);
}

function unsupported(name, hint) {
  const fn = () => {
    throw new UnsupportedError(`utils.${name}`, hint);
  };
  Object.defineProperty(fn, 'name', { value: name });
  return fn;
}

const NO_BULK = 'the documents interface saves one document at a time: loop over addData or updateOrCreate';

export const utils = Object.freeze({
  queryAll,
  fetchAll,
  formatDate,
  findDuplicates: unsupported('findDuplicates', 'deleting documents is not part of the runner'),
  deleteDuplicates: unsupported('deleteDuplicates', 'deleting documents is not part of the runner'),
  batchUpdateAttributes: unsupported('batchUpdateAttributes', NO_BULK),
  batchDelete: unsupported('batchDelete', NO_BULK),
  getPdfText: unsupported('getPdfText', 'files cannot be read back from the Cozy'),
  sortBillsByLinkedOperationNumber: unsupported('sortBillsByLinkedOperationNumber', 'bills are not linked to bank operations'),
  keepOnlyCurrentDuplicates: unsupported('keepOnlyCurrentDuplicates'),
});
