import { describe, expect, it } from 'vitest';
import { isRetryable, retryDelayMs, stopsTrigger } from '../../runner/serve/policy.ts';
import { parseGoDuration, parseSchedule, type ScheduleSource } from '../../runner/serve/schedule.ts';

const source = (type: ScheduleSource['type'], args: string, id = 'trigger-1'): ScheduleSource =>
  ({ id, type, arguments: args, createdAt: '2024-01-01T00:00:00.000Z' });
const at = (iso: string) => new Date(iso);

describe('trigger schedules, as cozy-stack writes them', () => {
  it('@cron takes 5 or 6 fields, in UTC', () => {
    expect(parseSchedule(source('@cron', '0 30 4 * * *')).next(at('2024-03-10T05:00:00Z'))).toEqual(at('2024-03-11T04:30:00Z'));
    expect(parseSchedule(source('@cron', '*/15 * * * *')).next(at('2024-03-10T05:01:00Z'))).toEqual(at('2024-03-10T05:15:00Z'));
  });

  it('@every counts from the trigger creation, so every host computes the same fire times', () => {
    const every = parseSchedule(source('@every', '1h30m'));
    expect(every.next(at('2024-01-01T00:00:00Z'))).toEqual(at('2024-01-01T01:30:00Z'));
    expect(every.next(at('2024-01-01T02:00:00Z'))).toEqual(at('2024-01-01T03:00:00Z'));
    expect(every.next(at('2024-01-01T03:00:00Z'))).toEqual(at('2024-01-01T04:30:00Z'));
  });

  it('parses Go durations', () => {
    expect(parseGoDuration('1h30m')).toBe(5_400_000);
    expect(parseGoDuration('1.5s')).toBe(1500);
    expect(parseGoDuration('250ms')).toBe(250);
    for (const bad of ['', '10', '1 h', '-1s', '1d']) expect(parseGoDuration(bad), bad).toBeNull();
  });

  it('@daily "between 8am and 6pm" fires once a day inside the range, at a time drawn from the trigger id', () => {
    const daily = parseSchedule(source('@daily', 'between 8am and 6pm'));
    const first = daily.next(at('2024-03-10T00:00:00Z'))!;
    const second = daily.next(first)!;
    expect(first.getUTCHours()).toBeGreaterThanOrEqual(8);
    expect(first.getUTCHours()).toBeLessThan(18);
    expect(second.getTime() - first.getTime()).toBe(24 * 3_600_000);
    // Same id, same time; another id is drawn independently.
    expect(parseSchedule(source('@daily', 'between 8am and 6pm')).next(at('2024-03-10T00:00:00Z'))).toEqual(first);
    const others = new Set(['a', 'b', 'c', 'd', 'e'].map((id) =>
      parseSchedule(source('@daily', 'between 8am and 6pm', id)).next(at('2024-03-10T00:00:00Z'))!.getTime()));
    expect(others.size).toBeGreaterThan(1);
  });

  it('@weekly "on monday,friday after 2pm" and @monthly "on the 1-5 before 8am" keep to their days and hours', () => {
    for (let i = 0; i < 20; i++) {
      const weekly = parseSchedule(source('@weekly', 'on monday,friday after 2pm', `w${i}`)).next(at('2024-03-10T00:00:00Z'))!;
      expect([1, 5]).toContain(weekly.getUTCDay());
      expect(weekly.getUTCHours()).toBeGreaterThanOrEqual(14);
      const monthly = parseSchedule(source('@monthly', 'on the 1-5 before 8am', `m${i}`)).next(at('2024-03-10T00:00:00Z'))!;
      expect(monthly.getUTCDate()).toBeGreaterThanOrEqual(1);
      expect(monthly.getUTCDate()).toBeLessThanOrEqual(5);
      expect(monthly.getUTCHours()).toBeLessThan(8);
    }
  });

  it('@weekly accepts ranges and weekday/weekend, wrapping over sunday', () => {
    for (let i = 0; i < 20; i++) {
      const day = parseSchedule(source('@weekly', 'on fri-mon', `r${i}`)).next(at('2024-03-10T00:00:00Z'))!.getUTCDay();
      expect([5, 6, 0, 1]).toContain(day);
      const weekend = parseSchedule(source('@weekly', 'on weekend', `e${i}`)).next(at('2024-03-10T00:00:00Z'))!.getUTCDay();
      expect([0, 6]).toContain(weekend);
    }
  });

  it('@manual never fires on its own', () => {
    expect(parseSchedule(source('@manual', '')).next(at('2024-03-10T00:00:00Z'))).toBeNull();
  });
});

describe('retries and stops, as cozy-stack', () => {
  it('retries transient failures, not those the user must fix nor deterministic limits', () => {
    for (const code of ['VENDOR_DOWN', 'UNKNOWN_ERROR', 'UNKNOWN_ERROR.CRASH', 'LIMIT_EXCEEDED.WALL_CLOCK', 'HOST.FAILURE', 'MAINTENANCE'] as const) {
      expect(isRetryable(code), code).toBe(true);
    }
    for (const code of ['LOGIN_FAILED', 'LOGIN_FAILED.TOO_MANY_ATTEMPTS', 'USER_ACTION_NEEDED', 'USER_ACTION_NEEDED.CGU_FORM',
      'LIMIT_EXCEEDED.MEMORY', 'LIMIT_EXCEEDED.LOG_LINES', 'LIMIT_EXCEEDED.LOG_BYTES', 'HOST.ACCOUNT_NOT_FOUND', 'HOST.KONNECTOR_NOT_FOUND'] as const) {
      expect(isRetryable(code), code).toBe(false);
    }
  });

  it('stops a trigger on LOGIN_FAILED and USER_ACTION_NEEDED, but not on .CGU_FORM', () => {
    for (const code of ['LOGIN_FAILED', 'LOGIN_FAILED.NEEDS_SECRET', 'USER_ACTION_NEEDED', 'USER_ACTION_NEEDED.CHANGE_PASSWORD'] as const) {
      expect(stopsTrigger(code), code).toBe(true);
    }
    for (const code of ['USER_ACTION_NEEDED.CGU_FORM', 'VENDOR_DOWN', 'UNKNOWN_ERROR'] as const) expect(stopsTrigger(code), code).toBe(false);
  });

  it('backs off exponentially, +/- 10%', () => {
    const policy = { maxAttempts: 3, baseDelayMs: 1000 };
    expect(retryDelayMs(policy, 1, () => 0.5)).toBe(1000);
    expect(retryDelayMs(policy, 2, () => 0.5)).toBe(2000);
    expect(retryDelayMs(policy, 3, () => 0)).toBe(3600);
    expect(retryDelayMs(policy, 3, () => 1)).toBe(4400);
  });
});
