/**
 * cozy-konnector-libs' `Document`: a small model class for the documents a
 * konnector saves. `new Document(attrs)` copies `attrs` (after the subclass's
 * `validate(attrs)` when it has one) and sets `metadata.version` from the
 * subclass's static `version`; `isEqual(other)` compares two documents deeply,
 * ignoring `_id` and `_rev`, and dates loosely (a Date equals its ISO string,
 * as a document just scraped and the same one read back from CouchDB).
 */

const ISO_OR_DATE = (value) => (value instanceof Date ? value.toISOString() : value);

/** Own and inherited enumerable properties, as lodash's `omit` copies them. */
function withoutKeys(object, ignored) {
  const copy = {};
  for (const key in object) if (!ignored.includes(key)) copy[key] = object[key];
  return copy;
}

function isPlainComparable(value) {
  return value !== null && typeof value === 'object';
}

/** Deep equality of JSON-like values (objects, arrays, Dates), `looseDates` comparing a Date to what stands for it. */
function deepEqual(a, b, looseDates) {
  if (looseDates && a instanceof Date) {
    try {
      return ISO_OR_DATE(a) === ISO_OR_DATE(b);
    } catch {
      return a === b; // an invalid Date has no ISO form
    }
  }
  if (Object.is(a, b)) return true;
  if (!isPlainComparable(a) || !isPlainComparable(b)) return false;
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  if (keysA.length !== keysB.length) return false;
  return keysA.every((key) => Object.hasOwn(b, key) && deepEqual(a[key], b[key], looseDates));
}

export class Document {
  /** @param {object} attrs the document's attributes */
  constructor(attrs) {
    if (this.validate) this.validate(attrs);
    Object.assign(this, attrs, {
      metadata: { version: (attrs.metadata && attrs.metadata.version) || this.constructor.version },
    });
  }

  toJSON() {
    return this;
  }

  /**
   * @param {object} other the document to compare with
   * @param {string[]} [ignoreAttrs] attributes left out of the comparison
   * @param {boolean} [strict] compare dates strictly (a Date never equals a string)
   * @returns {boolean}
   */
  isEqual(other, ignoreAttrs = ['_id', '_rev'], strict = false) {
    return deepEqual(withoutKeys(this, ignoreAttrs), withoutKeys(other, ignoreAttrs), !strict);
  }
}
