/**
 * The worker host's claim on one job, as a gate around the job's
 * capabilities. The host opens it once its claim lands and revokes it the
 * moment it may have lost the job (its lease about to lapse, another host took
 * it over, a drain gave it back). The konnector starts before the claim lands:
 * the calls through which it acts (HTTP, documents, files, the account's
 * session) wait for the claim and are refused once it is lost, its log lines
 * reach the job's document only while the claim holds, and the job is stopped
 * when it is lost or never lands. So a job's side effects come from one
 * attempt even when two hosts run it. The sandbox knows none of this: it gets
 * capabilities and a stop signal (JobEnvironment's `guard` and `signal`).
 */
import type { LogLine } from '../../host-api/log.ts';
import type { JobEnvironment, JobResources } from '../sandbox/job.ts';
import { JobStopped } from '../sandbox/sandbox.ts';

type AsyncMethods<T> = { [K in keyof T]-?: T[K] extends (...args: never[]) => Promise<unknown> ? K : never }[keyof T];

/**
 * The calls of each capability that act for the job. The others are the
 * host's own (http's session() and close(), the counters) or stay in the job
 * (log lines, held on their way out instead: see `holdLines`).
 */
const ACTS_FOR_THE_JOB: { [K in keyof JobResources]: readonly AsyncMethods<JobResources[K]>[] } = {
  http: ['send'],
  documents: ['save', 'find', 'ensureAccount'],
  files: ['save', 'stat'],
  sessions: ['load', 'save', 'drop'],
  log: [],
};

export class JobGate {
  private lostBecause: string | undefined;
  private readonly stop = new AbortController();
  /** Resolves true once the host owns the job; false when it never will (the gate is then closed). */
  private readonly opened: Promise<boolean>;

  /** `claimed` resolves true once the claim landed; false (or a rejection) when another host has the job. Default: owned from the start. */
  constructor(claimed: Promise<boolean> = Promise.resolve(true)) {
    this.opened = claimed.catch(() => false).then((owned) => {
      if (!owned) this.close('the host did not get the job');
      return owned;
    });
  }

  /** The host may have lost the job: nothing more acts for it, and its konnector is stopped. */
  revoke(why: string): void {
    this.close(`the host lost the job: ${why}`);
  }

  /** What the job runs with under this claim, `onLog` being where its log lines go. */
  environment(onLog: (line: LogLine) => void): Required<Pick<JobEnvironment, 'guard' | 'signal' | 'onLog'>> {
    return { guard: (name, capability) => this.guard(name, capability), signal: this.stop.signal, onLog: this.holdLines(onLog) };
  }

  private close(reason: string): void {
    if (this.lostBecause !== undefined) return;
    this.lostBecause = reason;
    this.stop.abort(reason);
  }

  /** Waits for the claim; throws once the host lost the job (the job is stopped by then, so nobody sees it). */
  private async admit(): Promise<void> {
    await this.opened;
    if (this.lostBecause !== undefined) throw new JobStopped(this.lostBecause);
  }

  /** The capability, with its calls that act for the job admitted by the gate; its other members as they are. */
  private guard<K extends keyof JobResources>(name: K, capability: JobResources[K]): JobResources[K] {
    const guarded = new Set<PropertyKey>(ACTS_FOR_THE_JOB[name]);
    if (guarded.size === 0) return capability;
    return new Proxy(capability, {
      get: (target, key) => {
        const member: unknown = Reflect.get(target, key);
        if (typeof member !== 'function') return member;
        if (!guarded.has(key)) return member.bind(target);
        return async (...args: unknown[]) => {
          await this.admit();
          return member.apply(target, args);
        };
      },
    });
  }

  /** Lines reach `onLog` once the claim landed (kept until then, in order), and none once it is lost. */
  private holdLines(onLog: (line: LogLine) => void): (line: LogLine) => void {
    let held: LogLine[] | undefined = [];
    const pass = (line: LogLine) => {
      if (this.lostBecause === undefined) onLog(line);
    };
    void this.opened.then(() => {
      const lines = held!;
      held = undefined;
      lines.forEach(pass);
    });
    return (line) => (held ? held.push(line) : pass(line));
  }
}
