/**
 * `saveFiles(entries, fields, options)`: downloads each entry's file and saves
 * it in the konnector's folder, as cozy-konnector-libs 5.x does. Each saved
 * entry gets `fileDocument`, its io.cozy.files document.
 *
 * An entry's content comes from `fetchFile(entry)`, else `filestream`, else a
 * GET of `fileurl` (with `requestOptions`). Its name is `filename`, else the
 * last segment of the URL; `subPath` (on the entry or in the options) puts it
 * in a sub-folder. An existing file is kept unless `validateFile` rejects it
 * or `shouldReplaceFile(file, entry)` says to replace it.
 *
 * Differences with cozy-konnector-libs, because the host owns the folder:
 * - paths are relative to the konnector's folder (the manifest's `folders`);
 *   `fields.folderPath` is ignored;
 * - `fileAttributes.metadata` (a qualification, `carbonCopy`...) and the
 *   `fileIdAttributes` key are written on the io.cozy.files document after the
 *   file is saved, which needs io.cozy.files in the manifest's permissions;
 *   a missing metadata is added without downloading the file again;
 * - a file that fails validation stays where it is (the host cannot delete):
 *   its entry gets no `fileDocument`;
 * - `shouldReplaceName`, `contentType`, `concurrency` and `postProcessFile`
 *   are ignored (with a log line): the host names, types and orders files.
 */
import { currentJob } from './context.js';
import { errors } from './errors.js';
import { HostError, InvalidArgumentError, RequestError, StatusCodeError, UnsupportedError } from './exceptions.js';
import { findDocuments, saveDocument, saveFile, statFile } from './host.js';
import { log as baseLog } from './log.js';
import { requestFactory } from './request.js';
import { get } from './utils.js';

const log = baseLog.namespace('saveFiles');
const FILES = 'io.cozy.files';
// As cozy-konnector-libs: stop downloading after 4 minutes, the stack allows 5.
const DEFAULT_TIMEOUT_MS = 4 * 60 * 1000;
const BAD_DOWNLOADED_FILE = 'BAD_DOWNLOADED_FILE';

/**
 * The content types the host recognizes from a file's first bytes: a file
 * named with one of these extensions and sniffed otherwise (typically an HTML
 * error page saved as `bill.pdf`) is not what it claims to be.
 */
const SNIFFED_TYPES = {
  pdf: 'application/pdf', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif',
  webp: 'image/webp', tif: 'image/tiff', tiff: 'image/tiff', zip: 'application/zip',
};

const IGNORED_OPTIONS = {
  contentType: 'the host sniffs the content type',
  concurrency: 'files are saved one after the other',
  shouldReplaceName: 'the host cannot rename files',
};

/** Attributes that only saveFiles uses: they are not kept in the entry, as cozy-konnector-libs does. */
const SAVE_ONLY_ATTRIBUTES = ['requestOptions', 'filestream', 'fetchFile', 'shouldReplaceFile'];

/** cozy-konnector-libs' `getAttribute`: a JSON-API `attributes.x` or a plain `x`. */
function attribute(doc, name) {
  const nested = get(doc, `attributes.${name}`);
  return nested === undefined ? get(doc, name) : nested;
}

function valueOrCall(value, ...args) {
  return typeof value === 'function' ? value(...args) : value;
}

/**
 * cozy-konnector-libs' `sanitizeFileName`: a name without `/?<>\\:*|"`, without the control characters 0x00-0x0F,
 * and empty when it is only dots.
 */
function sanitizeFileName(name) {
  return String(name).replace(/^\.+$/, '').replace(/[/?<>\\:*|"]/g, '').replace(/[\x00-\x0F]/g, '');
}

/**
 * As cozy-konnector-libs: the entry's filename, else the last segment of its URL's path (a relative URL too, the
 * segment left percent-encoded as upstream leaves it), sanitized.
 */
function fileName(entry) {
  let name = entry.filename;
  if (!name && entry.fileurl) {
    try {
      name = new URL(String(entry.fileurl), 'http://relative.invalid/').pathname.replace(/\/+$/, '').split('/').pop();
    } catch {
      name = '';
    }
  }
  const cleaned = sanitizeFileName(name ?? '');
  if (!cleaned) throw new InvalidArgumentError(`saveFiles: no file name for ${entry.fileurl ?? 'an entry'}: give it a \`filename\``);
  return cleaned;
}

/** The file's path relative to the konnector's folder. */
function destination(entry, settings) {
  const subPath = String(entry.subPath || settings.subPath || '').replace(/^\/+|\/+$/g, '');
  const name = fileName(entry);
  return subPath ? `${subPath}/${name}` : name;
}

function fileIdKey(entry, fileIdAttributes) {
  return [...fileIdAttributes].sort().map((key) => get(entry, key)).join('####');
}

/** The default `validateFile`: not empty, and its content is of the type its extension says. */
function defaultValidateFile(fileDocument) {
  const name = String(attribute(fileDocument, 'name') ?? '');
  const size = attribute(fileDocument, 'size');
  if (size === 0 || size === '0') {
    log('warn', `${name} is empty`);
    log('warn', 'BAD_FILE_SIZE');
    return false;
  }
  const dot = name.lastIndexOf('.');
  const expected = dot > 0 ? SNIFFED_TYPES[name.slice(dot + 1).toLowerCase()] : undefined;
  const mime = attribute(fileDocument, 'mime');
  if (expected && mime && mime !== expected) {
    log('warn', `${name} and ${mime} do not correspond`);
    log('warn', 'BAD_MIME_TYPE');
    return false;
  }
  return true;
}

/** `validateFileContent: true`: the host recognized the content, and as what the name says. */
function defaultValidateFileContent(fileDocument) {
  if (attribute(fileDocument, 'mime') === 'application/octet-stream') {
    log('warn', 'Could not find mime type from file content');
    return false;
  }
  return defaultValidateFile(fileDocument);
}

/**
 * The bytes of what a konnector gives as a file. Checked without `instanceof`:
 * the response bodies the component's bindings make are Uint8Arrays of
 * another realm.
 */
async function toBytes(value, what) {
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  const type = Object.prototype.toString.call(value);
  if (type === '[object ArrayBuffer]') return new Uint8Array(value);
  if (typeof value === 'string') return new TextEncoder().encode(value);
  if (type === '[object Blob]') return new Uint8Array(await value.arrayBuffer());
  throw new InvalidArgumentError(`saveFiles: ${what} must give bytes (a Uint8Array, an ArrayBuffer, a Blob or a string), ` +
    `not ${type}; Node streams do not exist in the sandbox`);
}

async function download(entry, settings) {
  const rq = settings.requestInstance || requestFactory({ json: false, cheerio: false, userAgent: true });
  const response = await rq({
    uri: entry.fileurl,
    method: 'GET',
    ...entry.requestOptions,
    // Whatever the instance's defaults: the raw bytes, and the status to check.
    encoding: null,
    cheerio: false,
    json: false,
    transform: undefined,
    resolveWithFullResponse: true,
  });
  return response.body;
}

async function content(entry, settings) {
  if (typeof entry.fetchFile === 'function') return toBytes(await entry.fetchFile(entry), '`fetchFile`');
  if (entry.filestream !== undefined) return toBytes(await entry.filestream, '`filestream`');
  return toBytes(await download(entry, settings), `the download of ${entry.fileurl}`);
}

/** Downloads and saves the entry's file; resolves with its document, or throws BAD_DOWNLOADED_FILE. */
async function writeFile(entry, filePath, replace, settings) {
  const bytes = await content(entry, settings);
  if (bytes.length === 0) {
    log('warn', `${filePath} is empty`);
    log('warn', 'BAD_FILE_SIZE');
    throw new Error(BAD_DOWNLOADED_FILE);
  }
  let fileDocument;
  try {
    fileDocument = await saveFile(filePath, bytes, replace);
  } catch (error) {
    // Another job saved it meanwhile: use theirs.
    if (!(error instanceof HostError && error.kind === 'exists')) throw error;
    fileDocument = await statFile(filePath);
  }
  if (!(await settings.validateFile(fileDocument))) throw new Error(BAD_DOWNLOADED_FILE);
  if (settings.validateFileContent && !(await settings.validateFileContent(fileDocument, bytes))) {
    throw new Error(BAD_DOWNLOADED_FILE);
  }
  return fileDocument;
}

async function withRetries(tries, action) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await action();
    } catch (error) {
      if (attempt >= tries || !(error instanceof RequestError || error instanceof StatusCodeError)) throw error;
      log('info', `download failed (${error.message}), try ${attempt + 1} of ${tries}`);
    }
  }
}

/** One saveFiles call's state: whether file metadata can be written (the manifest may not allow it). */
function createFileSaver(options) {
  const job = currentJob();
  let metadataWritable = true;

  /** The file already saved for this entry: by its `fileIdAttributes` key when there is one, else by path. */
  async function existingFile(entry, filePath) {
    if (options.fileIdAttributes && metadataWritable) {
      const key = fileIdKey(entry, options.fileIdAttributes);
      try {
        const selector = { 'metadata.fileIdAttributes': key, trashed: false };
        if (job) selector['cozyMetadata.sourceAccount'] = job.accountId;
        const [found] = await findDocuments(FILES, selector, 1);
        if (found) return found;
      } catch (error) {
        if (!(error instanceof HostError && error.kind === 'forbidden')) throw error;
        noMetadata(error);
      }
    }
    return statFile(filePath);
  }

  function noMetadata(error) {
    metadataWritable = false;
    log('warn', `file metadata and fileIdAttributes need io.cozy.files in the manifest's permissions ` +
      `(${error.message}); files are saved without them and found by their path`);
  }

  /** Writes the entry's `fileAttributes.metadata` and `fileIdAttributes` key on the file's document if missing. */
  async function attachMetadata(fileDocument, entry) {
    const wanted = { ...get(entry, 'fileAttributes.metadata') };
    if (options.fileIdAttributes) wanted.fileIdAttributes = fileIdKey(entry, options.fileIdAttributes);
    const current = fileDocument.metadata ?? {};
    const missing = Object.keys(wanted).filter((key) => JSON.stringify(current[key]) !== JSON.stringify(wanted[key]));
    if (missing.length === 0 || !metadataWritable) return fileDocument;
    const cozyMetadata = { ...fileDocument.cozyMetadata };
    if (options.sourceAccountIdentifier !== undefined) cozyMetadata.sourceAccountIdentifier = options.sourceAccountIdentifier;
    try {
      return await saveDocument(FILES, { ...fileDocument, metadata: { ...current, ...wanted }, cozyMetadata });
    } catch (error) {
      if (!(error instanceof HostError && error.kind === 'forbidden')) throw error;
      noMetadata(error);
      return fileDocument;
    }
  }

  async function shouldReplace(fileDocument, entry) {
    if (!(await options.validateFile(fileDocument))) {
      log('warn', `${attribute(fileDocument, 'name')} is invalid`);
      return true;
    }
    const decide = entry.shouldReplaceFile || options.shouldReplaceFile;
    return decide ? Boolean(await decide(fileDocument, entry)) : false;
  }

  /** Saves one entry's file; resolves with whether a file was written. */
  return async function saveEntry(entry) {
    const filePath = destination(entry, options);
    let written = false;
    try {
      let fileDocument = await existingFile(entry, filePath);
      let replace = false;
      if (fileDocument) {
        try {
          replace = await shouldReplace(fileDocument, entry);
        } catch (error) {
          log('info', `Error in shouldReplace : ${error.message}`);
          replace = true;
        }
        if (replace) log('info', `Will replace ${filePath}...`);
      }
      if (!fileDocument || replace) {
        log('debug', `File ${filePath} does not exist yet or is not valid`);
        fileDocument = await withRetries(options.retry, () => writeFile(entry, filePath, replace, options));
        written = true;
      }
      entry.fileDocument = await attachMetadata(fileDocument, entry);
    } catch (error) {
      if (error instanceof HostError && error.interface === 'files' && error.kind !== 'invalid') {
        // Not this file's fault: the konnector has no folder, or the store is down.
        log('error', error.message);
        throw new Error(error.kind === 'forbidden' ? errors.NOT_EXISTING_DIRECTORY : errors.SAVE_FILE_FAILED);
      }
      if (!(error instanceof HostError || error instanceof RequestError || error instanceof StatusCodeError ||
        error?.message === BAD_DOWNLOADED_FILE)) throw error;
      log('warn', errors.SAVE_FILE_FAILED);
      log('warn', `${error.message} (Error caught while trying to save the file ${entry.fileurl ?? entry.filename})`);
      return false;
    }
    for (const key of SAVE_ONLY_ATTRIBUTES) delete entry[key];
    if (options.postProcess) await options.postProcess(entry);
    return written;
  };
}

/**
 * @param {object[]} entries each with `fileurl`, `fetchFile` or `filestream`, and `filename`...
 * @param {object|string} fields the konnector's fields (its `folderPath` is not used: the host owns the folder)
 * @param {object} [options] `subPath`, `validateFile`, `validateFileContent`, `shouldReplaceFile`,
 *   `fileIdAttributes`, `requestInstance`, `timeout` (a timestamp), `retry`, `postProcess`, `sourceAccountIdentifier`
 * @returns {Promise<object[]>} the entries handled, each saved one with its `fileDocument`
 */
export async function saveFiles(entries, fields, options = {}) {
  if (!Array.isArray(entries)) throw new InvalidArgumentError('saveFiles: entries must be an array');
  if (entries.length === 0) log('warn', 'No file to download');
  if (options.postProcessFile) {
    throw new UnsupportedError('the saveFiles option `postProcessFile`', 'give each entry a `fetchFile` function instead');
  }
  for (const [name, why] of Object.entries(IGNORED_OPTIONS)) {
    if (options[name] !== undefined) log('debug', `the option ${name} is ignored: ${why}`);
  }
  const validateFileContent = options.validateFileContent === true ? defaultValidateFileContent
    : typeof options.validateFileContent === 'function' ? options.validateFileContent : undefined;
  const saveEntry = createFileSaver({
    subPath: options.subPath,
    fileIdAttributes: options.fileIdAttributes,
    requestInstance: options.requestInstance,
    shouldReplaceFile: options.shouldReplaceFile,
    validateFile: options.validateFile || defaultValidateFile,
    validateFileContent,
    retry: Math.max(1, Number(options.retry) || 1),
    postProcess: options.postProcess,
    sourceAccountIdentifier: options.sourceAccountIdentifier,
  });
  const timeout = options.timeout ?? Date.now() + DEFAULT_TIMEOUT_MS;

  const handled = [];
  let written = 0;
  for (const entry of entries) {
    if (Date.now() > timeout) {
      log('warn', `saveFile timeout: still ${entries.length - handled.length} / ${entries.length} to download`);
      break;
    }
    for (const key of ['fileurl', 'filename', 'requestOptions']) {
      if (entry[key]) entry[key] = valueOrCall(entry[key], entry, options);
    }
    if (entry.shouldReplaceName) {
      log('warn', `shouldReplaceName is ignored: ${IGNORED_OPTIONS.shouldReplaceName}`);
      delete entry.shouldReplaceName;
    }
    if (entry.filestream !== undefined && !entry.filename) {
      log('warn', 'Missing filename property for for filestream entry, entry is ignored');
      continue;
    }
    if (entry.fetchFile || entry.fileurl || entry.requestOptions || entry.filestream !== undefined) {
      if (await saveEntry(entry)) written++;
    }
    handled.push(entry);
  }
  log('info', `saveFiles created ${written} files for ${handled.length} entries`);
  return handled;
}

// As upstream, for konnectors that name files as saveFiles does.
saveFiles.sanitizeFileName = sanitizeFileName;
