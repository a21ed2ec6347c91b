/** @module Interface cozy:konnector/files@0.1.0 **/
/**
 * Writes `content` at `path`, relative to the konnector's folder ("2024/bill.pdf";
 * sub-folders are created, "..", absolute paths and control characters refused).
 * An existing file is replaced only when `replace` is true. The host sniffs
 * the content type. Returns the io.cozy.files document as JSON.
 * Limits: file size, bytes of files and number of files per job.
 */
export function save(path: string, content: Uint8Array, replace: boolean): string;
/**
 * The io.cozy.files document (JSON) of the file at `path` in the konnector's
 * folder, or none when there is no such file.
 */
export function stat(path: string): string | undefined;
/**
 * # Variants
 * 
 * ## `"forbidden"`
 * 
 * The path leaves the konnector's folder, or the manifest grants no folder.
 * ## `"invalid"`
 * 
 * The path or the content is not acceptable (empty name, bad characters).
 * ## `"exists"`
 * 
 * The file exists and `replace` was false.
 * ## `"unavailable"`
 * 
 * The file store did not answer.
 */
export type ErrorKind = 'forbidden' | 'invalid' | 'exists' | 'unavailable';
export interface Error {
  kind: ErrorKind,
  message: string,
}
