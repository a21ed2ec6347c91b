/**
 * Errors of the WebAssembly binary utilities. Each has a `kind` so callers can
 * tell bad input (a corrupt or truncated file) from a valid binary that uses a
 * feature these utilities do not handle.
 */
export type WasmErrorKind = 'malformed' | 'unsupported' | 'memory-cap';

export class WasmError extends Error {
  constructor(
    readonly kind: WasmErrorKind,
    message: string,
    /** Byte offset in the input where the problem was found, when known. */
    readonly offset?: number,
  ) {
    super(offset === undefined ? message : `${message} (at byte offset ${offset})`);
    this.name = 'WasmError';
  }
}

/** The bytes are not a well-formed WebAssembly binary. */
export function malformed(message: string, offset?: number): WasmError {
  return new WasmError('malformed', message, offset);
}

/** The binary is well-formed but uses something these utilities do not handle. */
export function unsupported(message: string, offset?: number): WasmError {
  return new WasmError('unsupported', message, offset);
}
