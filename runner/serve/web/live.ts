/**
 * A job's log lines as this host's konnectors write them, for the pages that
 * follow the job live. Lines of jobs run by another host reach the page
 * through the job document, which its host saves every third of the lease.
 */
import { EventEmitter } from 'node:events';
import type { JobLogLine } from '../model.ts';

export class LiveLogs {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per page following a job: no fixed ceiling.
    this.emitter.setMaxListeners(0);
  }

  readonly publish = (jobId: string, line: JobLogLine): void => {
    this.emitter.emit(jobId, line);
  };

  /** Calls `listener` with each new line of the job; returns the unsubscribe. */
  follow(jobId: string, listener: (line: JobLogLine) => void): () => void {
    this.emitter.on(jobId, listener);
    return () => this.emitter.off(jobId, listener);
  }
}
