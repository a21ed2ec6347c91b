/** What a file holds, told from its first bytes and its name, as cozy-stack's mime type and class. */

/** Content types recognized by their first bytes; each names its class as cozy-stack would. */
const MAGIC: ReadonlyArray<{ mime: string; test: (b: Uint8Array) => boolean }> = [
  { mime: 'application/pdf', test: (b) => startsWith(b, '%PDF-') },
  { mime: 'image/png', test: (b) => startsWith(b, '\x89PNG\r\n\x1a\n') },
  { mime: 'image/jpeg', test: (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff },
  { mime: 'image/gif', test: (b) => startsWith(b, 'GIF87a') || startsWith(b, 'GIF89a') },
  { mime: 'image/webp', test: (b) => startsWith(b, 'RIFF') && startsWith(b, 'WEBP', 8) },
  { mime: 'image/tiff', test: (b) => startsWith(b, 'II*\x00') || startsWith(b, 'MM\x00*') },
  { mime: 'image/heic', test: (b) => startsWith(b, 'ftyp', 4) && ['heic', 'heix', 'mif1'].some((brand) => startsWith(b, brand, 8)) },
  { mime: 'video/mp4', test: (b) => startsWith(b, 'ftyp', 4) && ['isom', 'mp41', 'mp42', 'avc1'].some((brand) => startsWith(b, brand, 8)) },
  { mime: 'application/zip', test: (b) => startsWith(b, 'PK\x03\x04') },
  { mime: 'application/gzip', test: (b) => b[0] === 0x1f && b[1] === 0x8b },
  // The classic konnector bug: a vendor's HTML error or login page saved under a .pdf name.
  { mime: 'text/html', test: (b) => /^(\ufeff)?\s*<(!doctype html|html[\s>])/i.test(latin1Head(b)) },
];

/** By extension, for what has no magic number, and to name the zip-based formats. */
const BY_EXTENSION: Record<string, string> = {
  pdf: 'application/pdf', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif',
  webp: 'image/webp', tif: 'image/tiff', tiff: 'image/tiff', heic: 'image/heic', bmp: 'image/bmp',
  svg: 'image/svg+xml', mp4: 'video/mp4', mp3: 'audio/mpeg', txt: 'text/plain', csv: 'text/csv',
  html: 'text/html', htm: 'text/html', xml: 'text/xml', json: 'application/json', ics: 'text/calendar',
  vcf: 'text/vcard', eml: 'message/rfc822', zip: 'application/zip', gz: 'application/gzip',
  odt: 'application/vnd.oasis.opendocument.text', ods: 'application/vnd.oasis.opendocument.spreadsheet',
  odp: 'application/vnd.oasis.opendocument.presentation',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  doc: 'application/msword', xls: 'application/vnd.ms-excel', ppt: 'application/vnd.ms-powerpoint',
  epub: 'application/epub+zip',
};

const ZIP_BASED = new Set(['odt', 'ods', 'odp', 'docx', 'xlsx', 'pptx', 'epub']);
const OCTET_STREAM = 'application/octet-stream';

/** cozy-stack's classes for the types that do not take the part before "/" (vfs.ExtractMimeAndClass). */
const CLASSES: Record<string, string> = {
  [OCTET_STREAM]: 'files', 'application/pdf': 'pdf', 'text/html': 'code', 'text/css': 'code', 'text/xml': 'code',
  'application/zip': 'zip', 'application/gzip': 'zip', 'application/epub+zip': 'zip',
  'application/vnd.ms-powerpoint': 'slide', 'application/vnd.oasis.opendocument.presentation': 'slide',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'slide',
  'application/vnd.ms-excel': 'spreadsheet', 'application/vnd.oasis.opendocument.spreadsheet': 'spreadsheet',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'spreadsheet',
  'application/msword': 'text', 'application/vnd.oasis.opendocument.text': 'text',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'text',
};

function startsWith(bytes: Uint8Array, text: string, offset = 0): boolean {
  if (bytes.length < offset + text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[offset + i] !== text.charCodeAt(i)) return false;
  return true;
}

function latin1Head(bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, 256)).toString('latin1');
}

/**
 * The content type and cozy class of a file: from its first bytes when they are recognized (a zip archive is
 * named by its extension when that is a zip-based format), else from its extension, else octet-stream.
 */
export function contentTypeOf(name: string, content: Uint8Array): { mime: string; class: string } {
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
  const byExtension = Object.hasOwn(BY_EXTENSION, extension) ? BY_EXTENSION[extension] : undefined;
  let mime = MAGIC.find((signature) => signature.test(content))?.mime;
  if (mime === 'application/zip' && ZIP_BASED.has(extension)) mime = byExtension;
  mime ??= byExtension ?? OCTET_STREAM;
  return { mime, class: CLASSES[mime] ?? mime.slice(0, mime.indexOf('/')) };
}
