/**
 * Errors the runner reports to its operator. Each carries a `kind` so callers
 * (the CLI, the worker host) can choose an exit code or a job state without
 * parsing messages, and a message that says what is wrong and how to fix it.
 */
export type UsageErrorKind =
  | 'bad-arguments'
  | 'manifest'
  | 'source'
  | 'artifact'
  | 'job-input';

/** Bad input from the operator or the konnector author: exit code 2. */
export class UsageError extends Error {
  constructor(
    readonly kind: UsageErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}
