/**
 * Fires scheduled triggers. Every host runs one; a fire creates the job with
 * an id made of the trigger id and the fire time, so when several hosts fire
 * the same trigger at the same time CouchDB keeps one job and refuses the
 * others. Fires missed while no host ran are not caught up (as cozy-stack).
 */
import { ServeError } from './errors.ts';
import type { AccountDoc, TriggerDoc } from './model.ts';
import { stopsTrigger } from './policy.ts';
import type { JobProcessor } from './processor.ts';
import type { HostLogger } from './queue.ts';
import { parseSchedule, type Schedule } from './schedule.ts';
import type { Store } from './store.ts';

interface Scheduled {
  trigger: TriggerDoc;
  schedule: Schedule;
  nextAt: Date | null;
}

/** Whether a trigger's automatic runs are stopped: its last job needed the user, and the account did not change since. */
export function isStopped(trigger: TriggerDoc, account: AccountDoc): boolean {
  const state = trigger.current_state;
  return state.status === 'errored' && state.last_error !== undefined && stopsTrigger(state.last_error) && state.last_account_rev === account._rev;
}

export function scheduleOf(trigger: TriggerDoc): Schedule {
  return parseSchedule({ id: trigger._id, type: trigger.type, arguments: trigger.arguments, createdAt: trigger.cozyMetadata.createdAt });
}

export class TriggerScheduler {
  private readonly scheduled = new Map<string, Scheduled>();
  private timers: NodeJS.Timeout[] = [];
  private ticking: Promise<void> = Promise.resolve();
  /** Fires after this instant only: the host's start, then each tick. */
  private horizon = new Date();

  constructor(
    private readonly store: Store,
    private readonly processor: JobProcessor,
    private readonly log: HostLogger,
    private readonly options: { tickMs: number; reloadMs: number },
  ) {}

  async start(): Promise<void> {
    this.horizon = new Date();
    await this.reload();
    this.timers = [
      setInterval(() => void (this.ticking = this.ticking.then(() => this.tick())), this.options.tickMs),
      setInterval(() => void this.reload().catch((e: Error) => this.log('warning', `cannot reload the triggers: ${e.message}`)), this.options.reloadMs),
    ];
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await this.ticking;
  }

  /** Reads every trigger again: other hosts may have created, changed or deleted some. */
  async reload(): Promise<void> {
    const seen = new Set<string>();
    for (let skip = 0; ; skip += 1000) {
      const page = await this.store.triggers.find({ type: { $ne: '@manual' } }, { limit: 1000, skip });
      for (const trigger of page) {
        seen.add(trigger._id);
        this.upsert(trigger);
      }
      if (page.length < 1000) break;
    }
    for (const id of this.scheduled.keys()) if (!seen.has(id)) this.scheduled.delete(id);
  }

  /** Takes a created or changed trigger into account now (the API calls it). */
  upsert(trigger: TriggerDoc): void {
    const known = this.scheduled.get(trigger._id);
    if (known && known.trigger.type === trigger.type && known.trigger.arguments === trigger.arguments) {
      known.trigger = trigger;
      return;
    }
    try {
      const schedule = scheduleOf(trigger);
      this.scheduled.set(trigger._id, { trigger, schedule, nextAt: schedule.next(this.horizon) });
    } catch (error) {
      // Stored by an older host or by hand: reported, not fatal.
      this.log('warning', `trigger ${trigger._id} is not scheduled: ${(error as Error).message}`);
      this.scheduled.delete(trigger._id);
    }
  }

  remove(id: string): void {
    this.scheduled.delete(id);
  }

  private async tick(): Promise<void> {
    const now = new Date();
    for (const entry of this.scheduled.values()) {
      if (!entry.nextAt || entry.nextAt > now) continue;
      const at = entry.nextAt;
      // A host that stalled past several fire times fires once, for the latest.
      let next = entry.schedule.next(at);
      let latest = at;
      while (next && next <= now) {
        latest = next;
        next = entry.schedule.next(next);
      }
      entry.nextAt = next;
      await this.fire(entry.trigger, latest).catch((e: Error) => this.log('error', `trigger ${entry.trigger._id}: cannot fire it: ${e.message}`));
    }
    this.horizon = now;
  }

  private async fire(trigger: TriggerDoc, at: Date): Promise<void> {
    let account: AccountDoc;
    let current: TriggerDoc;
    try {
      [account, current] = await Promise.all([this.store.accounts.get(trigger.message.account), this.store.triggers.get(trigger._id)]);
    } catch (e) {
      if (e instanceof ServeError && e.kind === 'not-found') {
        this.log('warning', `trigger ${trigger._id} not fired: ${e.message}`);
        return;
      }
      throw e;
    }
    if (isStopped(current, account)) {
      this.log('info', `trigger ${trigger._id} not fired: its last job ended ${current.current_state.last_error}; ` +
        `automatic runs resume once the account ${account._id} is updated`);
      return;
    }
    try {
      await this.processor.createJob(account, { triggerId: trigger._id, manual: false, id: `${trigger._id}-${at.getTime()}` });
    } catch (e) {
      if (!(e instanceof ServeError && e.kind === 'conflict')) throw e; // another host fired it
    }
  }
}
