/**
 * `scrape($, specs, childSelector)`: declarative scraping with cheerio, as in
 * cozy-konnector-libs.
 *
 * ```js
 * const bills = scrape($, {
 *   date: { sel: 'td.date', parse: text => new Date(text) },
 *   amount: { sel: 'td.amount', parse: parseFloat },
 *   url: { sel: 'a', attr: 'href' },
 * }, 'table tbody tr')
 * ```
 *
 * A spec is a selector string or `{ sel, attr, fn, parse, index }`: the text
 * (trimmed) of what `sel` matches, or its attribute `attr`, or `fn($node)`,
 * then passed through `parse`. A spec that throws is logged and skipped.
 */
import { log as baseLog } from './log.js';

const log = baseLog.namespace('scrape');

function mkSpec(spec) {
  return typeof spec === 'string' ? { sel: spec } : spec;
}

function scrapeOne($node, specs) {
  const result = {};
  for (const name of Object.keys(specs)) {
    try {
      const spec = mkSpec(specs[name]);
      let data = spec.sel ? $node.find(spec.sel) : $node;
      if (spec.index !== undefined) data = data.eq(spec.index);
      let value;
      if (spec.fn) value = spec.fn(data);
      else if (spec.attr) value = data.attr(spec.attr);
      else value = data.text().trim();
      result[name] = spec.parse ? spec.parse(value) : value;
    } catch (error) {
      log('warn', `Could not parse for ${name}: ${error && error.message ? error.message : error}`);
    }
  }
  return result;
}

/**
 * @param {Function|object} $ a cheerio root (`cheerio.load(...)`) or selection
 * @param {object|string} specs what to extract (one spec gives one value)
 * @param {string} [childSelector] scrape every match of it and return an array
 * @returns {object|object[]|unknown}
 */
export function scrape($, specs, childSelector) {
  if (typeof specs === 'string' || (specs && typeof specs.sel === 'string')) {
    return scrape($, { val: specs }).val;
  }
  // A root `$` is a function without `find`; a selection has `find`.
  const root = typeof $.find === 'function' ? $ : $.root();
  if (childSelector !== undefined) {
    const items = root.find(childSelector);
    return Array.from({ length: items.length }, (_, i) => scrapeOne(items.eq(i), specs));
  }
  return scrapeOne(root, specs);
}
