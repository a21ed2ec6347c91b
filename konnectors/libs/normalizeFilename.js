/**
 * `normalizeFilename(basename, ext)`: replaces what is unsafe in a file name
 * (`<>:"/\|?*`, NUL, whitespace) by `_`, trims `_` at both ends and adds the
 * extension (with or without its dot).
 *
 * ```js
 * normalizeFilename('*foo/bar: <baz> \\"qux"\t???', '.txt') // 'foo_bar_baz_qux.txt'
 * ```
 */
import { InvalidArgumentError } from './exceptions.js';

const FORBIDDEN = /[<>:"/\\|?*\0\s]+/g;

/** @param {string} basename @param {string} [ext] @returns {string} */
export function normalizeFilename(basename, ext) {
  const filename = String(basename).replace(FORBIDDEN, '_').replace(/^_|_$/g, '');
  if (filename === '') {
    throw new InvalidArgumentError(`normalizeFilename: no filename-compatible character in ${JSON.stringify(basename)}`);
  }
  if (ext === undefined || ext === null) return filename;
  return filename + (ext.startsWith('.') ? ext : `.${ext}`);
}
