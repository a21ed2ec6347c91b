/** What the pre-initializer takes, and how it fails. */
export interface PreinitOptions {
  /** Export to call once the module is instantiated (after `start` and `_initialize`). */
  initFunc: string;
  /** Whether `wasi_snapshot_preview1` imports work; without it every import traps. */
  allowWasi: boolean;
  /** Directories the guest sees: [guest path, host path], in preopen order. */
  preopens: ReadonlyArray<readonly [string, string]>;
  /** The guest's environment. */
  env: Readonly<Record<string, string>>;
  /**
   * What the guest reads from its stdin (fd 0), to its end; without it, fd 0 is the process's own stdin (the
   * wizer command line, whose caller pipes the input into it). Needs `allowWasi`.
   */
  stdin?: Uint8Array;
}

export type PreinitErrorKind =
  /** Bad command line or an init function the module does not export. */
  | 'usage'
  /** The guest trapped (or threw) during initialization. */
  | 'init-trapped'
  /** The guest called `proc_exit` during initialization. */
  | 'init-exited'
  /** The guest called an import that is not available during initialization. */
  | 'forbidden-import'
  /** A valid module that cannot be snapshotted faithfully. */
  | 'unsupported'
  /** The rewritten module does not validate: a bug here. */
  | 'invalid-output';

export class PreinitError extends Error {
  constructor(
    readonly kind: PreinitErrorKind,
    message: string,
    /** For initialization failures: the guest function that was running. */
    readonly func?: string,
    /** For `init-exited`: the status passed to `proc_exit`. */
    readonly exitStatus?: number,
  ) {
    super(message);
    this.name = 'PreinitError';
  }
}
