/**
 * WIT `files`: files in the user's Cozy, confined to the konnector's folder.
 * Being implemented: this placeholder refuses every call so the world is complete.
 */
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

export interface Files {
  /** WIT files.save: returns the io.cozy.files document as JSON. */
  save(path: string, content: Uint8Array, replace: boolean): Promise<string>;
  /** WIT files.stat: the io.cozy.files document as JSON, or undefined. */
  stat(path: string): Promise<string | undefined>;
  readonly usage: { files: number; bytes: number };
}

export interface FilesOptions {
  couchUrl: string;
  instance: string;
  slug: string;
  accountId: string;
  /** The konnector's folder in the user's Cozy, e.g. "/Administrative/Example Energy". */
  folderPath: string | undefined;
  limits: { maxFileBytes: number; maxTotalBytes: number; maxFiles: number };
}

export function createFiles(opts: FilesOptions): Files {
  const refuse = async (): Promise<never> => {
    throw new FilesError('forbidden', `file storage for ${opts.slug} is not available in this runner yet`);
  };
  return { save: refuse, stat: refuse, usage: { files: 0, bytes: 0 } };
}
