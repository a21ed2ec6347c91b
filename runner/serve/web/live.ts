/**
 * Wakes the pages that follow a job live when a konnector this host runs
 * writes a log line; they then read the job's whole log so far from the
 * processor. Lines of jobs run by another host reach the page through the job
 * document, which its host saves every third of the lease.
 */
import { EventEmitter } from 'node:events';

export class LiveLogs {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per page following a job: no fixed ceiling.
    this.emitter.setMaxListeners(0);
  }

  readonly publish = (jobId: string): void => {
    this.emitter.emit(jobId);
  };

  /** Calls `listener` each time the job writes a line; returns the unsubscribe. */
  follow(jobId: string, listener: () => void): () => void {
    this.emitter.on(jobId, listener);
    return () => this.emitter.off(jobId, listener);
  }
}
