/** @module Interface cozy:konnector/documents@0.1.0 **/
/**
 * Creates a document, or updates it when `doc` carries `_id` and `_rev`.
 * `doc` is one JSON object (at most the document-size limit). The host adds
 * `cozyMetadata` (createdByApp, sourceAccount, createdAt, updatedAt...).
 * Returns the stored document as JSON, with its `_id` and `_rev`.
 * Limits: documents written per job, document size.
 */
export function save(doctype: string, doc: string): string;
/**
 * Finds documents of a doctype with a CouchDB Mango selector (a JSON
 * object), at most `limit` of them (capped by the host).
 * Returns a JSON array of documents.
 */
export function find(doctype: string, selector: string, limit: number): string;
/**
 * # Variants
 * 
 * ## `"forbidden"`
 * 
 * The manifest does not grant this doctype or this verb.
 * ## `"invalid"`
 * 
 * The doctype name or the JSON is not acceptable.
 * ## `"conflict"`
 * 
 * An update was based on an outdated `_rev`.
 * ## `"unavailable"`
 * 
 * The database did not answer.
 */
export type ErrorKind = 'forbidden' | 'invalid' | 'conflict' | 'unavailable';
export interface Error {
  kind: ErrorKind,
  message: string,
}
