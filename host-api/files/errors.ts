export type FilesErrorKind = 'forbidden' | 'invalid' | 'exists' | 'unavailable';

export class FilesError extends Error {
  constructor(
    readonly kind: FilesErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'FilesError';
  }
}
