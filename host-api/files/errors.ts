import type * as WitFiles from '../../wit/types/interfaces/cozy-konnector-files.js';

export type FilesErrorKind = WitFiles.ErrorKind;

export class FilesError extends Error {
  constructor(
    readonly kind: FilesErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'FilesError';
  }
}
