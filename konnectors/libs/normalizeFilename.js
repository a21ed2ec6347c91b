/**
 * `normalizeFilename(basename, ext)`: replaces what is unsafe in a file name
 * (`<>:"/\|?*`, NUL, CR, LF, runs of whitespace) by one space, trims spaces at
 * both ends and adds the extension (with or without its dot), as
 * cozy-konnector-libs does, so that a file gets the name it gets on cozy-stack.
 *
 * ```js
 * normalizeFilename('*foo/bar: <baz> \\"qux"\t???', '.txt') // 'foo bar baz qux.txt'
 * ```
 */
import { InvalidArgumentError } from './exceptions.js';

const FORBIDDEN = /[<>:"/\\|?*\0\s]+/g;

/** @param {string} basename @param {string} [ext] @returns {string} */
export function normalizeFilename(basename, ext) {
  if (typeof basename !== 'string') {
    throw new InvalidArgumentError(`normalizeFilename: the name must be a string, got ${typeof basename}`);
  }
  const filename = basename.replace(FORBIDDEN, ' ').trim();
  if (filename === '') {
    throw new InvalidArgumentError(`normalizeFilename: no filename-compatible character in ${JSON.stringify(basename)}`);
  }
  if (ext === undefined || ext === null) return filename;
  if (typeof ext !== 'string') throw new InvalidArgumentError(`normalizeFilename: the extension must be a string, got ${typeof ext}`);
  return filename + (ext.startsWith('.') ? ext : `.${ext}`);
}
