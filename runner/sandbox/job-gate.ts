/**
 * Whether the host may act for a job. A worker host opens the gate once its
 * claim on the job lands and revokes it the moment it may have lost the job
 * (its lease about to lapse, another host took it over, a drain gave it
 * back): from then on none of the job's host calls is served and its
 * konnector is stopped, so a job's side effects come from one attempt even
 * when two hosts run it. `konnector run` uses a gate that is open from the
 * start and never revoked.
 */
export class JobGate {
  private revokedBecause: string | undefined;
  private readonly listeners = new Set<(reason: string) => void>();
  /** Resolves true once the host owns the job; false (or a rejection) when it never will. */
  readonly opened: Promise<boolean>;

  constructor(opened: Promise<boolean> = Promise.resolve(true)) {
    this.opened = opened.catch(() => false);
  }

  /** Why the host lost the job, once it has. */
  get revoked(): string | undefined {
    return this.revokedBecause;
  }

  revoke(reason: string): void {
    if (this.revokedBecause !== undefined) return;
    this.revokedBecause = reason;
    for (const listener of this.listeners) listener(reason);
    this.listeners.clear();
  }

  /** Calls `listener` once, when (or if already) revoked; returns how to stop listening. */
  onRevoke(listener: (reason: string) => void): () => void {
    if (this.revokedBecause !== undefined) {
      listener(this.revokedBecause);
      return () => {};
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether a host call of the job may be served now: owned and not lost. */
  async allows(): Promise<boolean> {
    return (await this.opened) && this.revokedBecause === undefined;
  }
}
