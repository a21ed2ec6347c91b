/** Paths in the user's Cozy: the guest's, checked segment by segment, and the konnector's folder. */
import { z } from 'zod';
import { FilesError } from './errors.ts';

export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// cozy-stack refuses longer names; a deeper path than this is no real konnector's.
export const MAX_NAME_BYTES = 255;
const MAX_DEPTH = 32;

/** The segments of a guest path, relative to the konnector's folder; throws what is wrong with it. */
export function parseGuestPath(guestPath: unknown, operation: string): string[] {
  if (typeof guestPath !== 'string' || guestPath === '') {
    throw new FilesError('invalid', `${operation}: the path is empty: give a file name, e.g. "2024/bill.pdf"`);
  }
  if (LONE_SURROGATE.test(guestPath)) {
    throw new FilesError('invalid', `${operation}: the path is not valid Unicode (a lone surrogate)`);
  }
  if (/[\u0000-\u001f\u007f]/.test(guestPath)) {
    throw new FilesError('invalid', `${operation}: the path holds a NUL or control character: names are printable text`);
  }
  if (guestPath.startsWith('/')) {
    throw new FilesError('forbidden', `${operation}: absolute paths are refused: paths are relative to the ` +
      'konnector\'s folder, e.g. "2024/bill.pdf"');
  }
  const segments = guestPath.split('/');
  if (segments.includes('..')) {
    throw new FilesError('forbidden', `${operation}: ".." would leave the konnector's folder: paths stay inside it`);
  }
  if (segments.length > MAX_DEPTH) {
    throw new FilesError('invalid', `${operation}: the path is ${segments.length} levels deep, more than ${MAX_DEPTH}`);
  }
  for (const segment of segments) {
    if (segment === '' || segment === '.') {
      throw new FilesError('invalid', `${operation}: the path has an empty or "." segment (a doubled, leading or ` +
        'trailing "/"): write it like "2024/bill.pdf"');
    }
    const bytes = Buffer.byteLength(segment, 'utf8');
    if (bytes > MAX_NAME_BYTES) {
      throw new FilesError('invalid', `${operation}: the name ${JSON.stringify(segment.slice(0, 40))}... is ${bytes} ` +
        `bytes long, more than ${MAX_NAME_BYTES}: shorten it`);
    }
  }
  return segments;
}

/** The konnector's folder, as the host passes it: an absolute Cozy path. */
export const folderPathSchema = z
  .string()
  .refine((p) => p.startsWith('/') && p.length > 1, 'must be an absolute path such as "/Administrative/Energy"')
  .refine((p) => p.split('/').slice(1).every((s) => s !== '' && s !== '.' && s !== '..' && !/[\u0000-\u001f\u007f]/.test(s)),
    'must have no empty, ".", ".." or control-character segment');
