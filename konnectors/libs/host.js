/**
 * The SDK's only door to the host: thin wrappers around the WIT imports of the
 * `konnector` world (wit/konnector.wit). Every other module goes through here,
 * so the imports are listed once and their errors get one shape.
 *
 * Calls are awaited even though the component's imports are synchronous:
 * `await` of a plain value costs one microtask in the guest, and lets the same
 * code run in Node against asynchronous test doubles of the host.
 */
import * as http from 'cozy:konnector/http@0.1.0';
import * as documents from 'cozy:konnector/documents@0.1.0';
import * as files from 'cozy:konnector/files@0.1.0';
import * as log from 'cozy:konnector/log@0.1.0';
import { HostError } from './exceptions.js';

/** A WIT `err` reaches the guest as a thrown object whose `payload` is `{kind, message}`. */
function toHostError(interfaceName, error) {
  const payload = error && typeof error === 'object' && 'payload' in error ? error.payload : error;
  if (payload && typeof payload === 'object' && typeof payload.kind === 'string') {
    return new HostError(interfaceName, payload.kind, String(payload.message ?? ''));
  }
  if (error instanceof Error) return error;
  return new HostError(interfaceName, 'unknown', String(error));
}

async function call(interfaceName, fn) {
  try {
    return await fn();
  } catch (error) {
    throw toHostError(interfaceName, error);
  }
}

/**
 * @typedef {object} HostRequest
 * @property {string} method
 * @property {string} url
 * @property {Array<[string, string]>} headers
 * @property {Uint8Array | undefined} body
 * @property {boolean} followRedirects
 *
 * @typedef {object} HostResponse
 * @property {number} status
 * @property {string} url
 * @property {Array<[string, string]>} headers
 * @property {Uint8Array} body
 */

/** @param {HostRequest} request @returns {Promise<HostResponse>} */
export function send(request) {
  return call('http', () => http.send(request));
}

/** Keeps (true) or forgets (false) the job's cookies for the account's next job. */
export function keepSession(keep) {
  http.keepSession(keep);
}

/** Creates or updates one document; resolves with the stored document. */
export async function saveDocument(doctype, doc) {
  return JSON.parse(await call('documents', () => documents.save(doctype, JSON.stringify(doc))));
}

/** At most `limit` documents of `doctype` matching a Mango selector (the host may cap `limit`). */
export async function findDocuments(doctype, selector, limit) {
  return JSON.parse(await call('documents', () => documents.find(doctype, JSON.stringify(selector), limit)));
}

/**
 * Writes a file in the konnector's folder (`path` is relative to it; folders
 * are created); resolves with its io.cozy.files document.
 *
 * @param {string} path e.g. '2024/bill.pdf'
 * @param {Uint8Array} content
 * @param {boolean} replace overwrite an existing file (else the host answers `exists`)
 */
export async function saveFile(path, content, replace) {
  return JSON.parse(await call('files', () => files.save(path, content, replace)));
}

/** The io.cozy.files document of the file at `path` in the konnector's folder, or undefined. */
export async function statFile(path) {
  const doc = await call('files', () => files.stat(path));
  return doc === undefined || doc === null ? undefined : JSON.parse(doc);
}

/** @param {'debug'|'info'|'warning'|'error'|'critical'} level @param {string} message */
export function writeLog(level, message) {
  log.write(level, message);
}
