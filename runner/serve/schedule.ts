/**
 * When a trigger fires, with cozy-stack's trigger types and argument syntax
 * (model/job/trigger_cron.go, periodic_parser.go):
 *
 *   @cron     "0 30 4 * * *"           cron, seconds optional, in UTC
 *   @every    "1h30m"                  Go duration, at least 1s, counted from the trigger's creation
 *   @hourly   ""                       a random minute and second of every hour
 *   @daily    "between 8am and 6pm"    a random time in the range, every day
 *   @weekly   "on monday,friday after 2pm"
 *   @monthly  "on the 1-5 before 8am"
 *   @manual   ""                       never on its own: run with POST /triggers/{id}/launch
 *
 * The "random" time of @hourly/@daily/@weekly/@monthly is drawn once from the
 * trigger id (as cozy-stack seeds it), so every host agrees on it and a
 * trigger keeps its time across restarts.
 */
import { createHash } from 'node:crypto';
import { CronExpressionParser } from 'cron-parser';
import { ServeError } from './errors.ts';

export const TRIGGER_TYPES = ['@cron', '@every', '@hourly', '@daily', '@weekly', '@monthly', '@manual'] as const;
export type TriggerType = (typeof TRIGGER_TYPES)[number];

export interface Schedule {
  /** The first fire time strictly after `after`, or null for a trigger that never fires on its own. */
  next(after: Date): Date | null;
}

export interface ScheduleSource {
  id: string;
  type: TriggerType;
  arguments: string;
  /** ISO date: the origin of @every intervals. */
  createdAt: string;
}

const MIN_EVERY_MS = 1000;

const DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration for positive durations ("1h30m", "90s", "1.5h"), in milliseconds. */
export function parseGoDuration(text: string): number | null {
  const whole = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
  if (!whole.test(text)) return null;
  let ms = 0;
  for (const [, value, , unit] of text.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    ms += Number(value) * DURATION_UNITS_MS[unit!]!;
  }
  return Math.round(ms);
}

function invalid(message: string): ServeError {
  return new ServeError('invalid', `invalid trigger arguments: ${message}`, [`arguments: ${message}`]);
}

function cronSchedule(expression: string): Schedule {
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC' });
  } catch (error) {
    throw invalid(`"${expression}" is not a cron expression (${(error as Error).message}); ` +
      'expected 5 or 6 fields, e.g. "0 30 4 * * *" for 04:30:00 UTC every day');
  }
  return {
    next(after) {
      return CronExpressionParser.parse(expression, { tz: 'UTC', currentDate: after }).next().toDate();
    },
  };
}

function everySchedule(args: string, createdAt: string): Schedule {
  const interval = parseGoDuration(args.trim());
  if (interval === null || interval < MIN_EVERY_MS) {
    throw invalid(`"${args}" is not a duration of at least 1s; write it like Go does: "30s", "10m", "1h30m"`);
  }
  const origin = Date.parse(createdAt);
  return {
    next(after) {
      const periods = Math.floor((after.getTime() - origin) / interval) + 1;
      return new Date(origin + Math.max(periods, 1) * interval);
    },
  };
}

type Periodic = '@hourly' | '@daily' | '@weekly' | '@monthly';

const DAYS_OF_WEEK: Record<string, number> = {
  sun: 0, sunday: 0, mon: 1, monday: 1, tue: 2, tuesday: 2, wed: 3, wednesday: 3,
  thu: 4, thursday: 4, fri: 5, friday: 5, sat: 6, saturday: 6,
};

function parseHour(text: string | undefined, keyword: string): number {
  const match = /^(\d{1,2})(am|pm)$/.exec(text ?? '');
  const hour = match ? Number(match[1]) : NaN;
  if (!match || hour < 1 || hour > 12) throw invalid(`expected an hour like "8am" or "6pm" after "${keyword}", got ${JSON.stringify(text ?? '')}`);
  return (hour % 12) + (match[2] === 'pm' ? 12 : 0);
}

function parseDayList(field: string, parse: (part: string) => number[]): number[] {
  return [...new Set(field.split(',').flatMap(parse))].sort((a, b) => a - b);
}

function daysOfWeek(field: string): number[] {
  const day = (name: string) => {
    const value = DAYS_OF_WEEK[name];
    if (value === undefined) throw invalid(`"${name}" is not a day of the week (monday, tue, weekday, weekend...)`);
    return value;
  };
  return parseDayList(field, (part) => {
    if (part === 'weekday') return [1, 2, 3, 4, 5];
    if (part === 'weekend') return [0, 6];
    const [from, to] = part.split('-');
    if (to === undefined) return [day(from!)];
    const start = day(from!);
    let end = day(to);
    if (start === end) throw invalid(`"${part}" is not a range of days`);
    if (end < start) end += 7;
    return Array.from({ length: end - start + 1 }, (_, i) => (start + i) % 7);
  });
}

function daysOfMonth(field: string): number[] {
  const day = (text: string) => {
    const value = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!(value >= 1 && value <= 31)) throw invalid(`"${text}" is not a day of the month (1 to 31)`);
    return value;
  };
  return parseDayList(field, (part) => {
    const [from, to] = part.split('-');
    if (to === undefined) return [day(from!)];
    const start = day(from!);
    const end = day(to);
    if (start >= end) throw invalid(`"${part}" is not an increasing range of days`);
    return Array.from({ length: end - start + 1 }, (_, i) => start + i);
  });
}

/** Deterministic draws from the trigger id: the same id always gives the same crontab. */
function seededDraws(seed: string): (bound: number) => number {
  let counter = 0;
  return (bound) => createHash('sha256').update(`${seed}/${counter++}`).digest().readUInt32BE(0) % bound;
}

/** cozy-stack's PeriodicParser and ToRandomCrontab. */
function periodicSchedule(type: Periodic, args: string, id: string): Schedule {
  const words = args.trim().split(/\s+/).filter(Boolean);
  let dom = Array.from({ length: 28 }, (_, i) => i + 1);
  let dow = [0, 1, 2, 3, 4, 5, 6];
  let after = 0;
  let before = 24;
  while (words.length > 0) {
    const keyword = words.shift()!;
    if (keyword === 'on' && words[0] === 'the') {
      if (type !== '@monthly') throw invalid('"on the <days>" (days of the month) is only for @monthly');
      words.shift();
      if (!words[0]) throw invalid('expected days of the month after "on the", e.g. "on the 1-5"');
      dom = daysOfMonth(words.shift()!);
    } else if (keyword === 'on') {
      if (type !== '@weekly') throw invalid('"on <days>" (days of the week) is only for @weekly');
      if (!words[0]) throw invalid('expected days of the week after "on", e.g. "on monday,friday"');
      dow = daysOfWeek(words.shift()!);
    } else if (keyword === 'after' || keyword === 'between') {
      after = parseHour(words.shift(), keyword);
    } else if (keyword === 'before' || keyword === 'and') {
      before = parseHour(words.shift(), keyword) || 24;
    } else {
      throw invalid(`unexpected word "${keyword}"; ${type} takes e.g. ` +
        (type === '@weekly' ? '"on monday between 8am and 6pm"' : type === '@monthly' ? '"on the 1-5 after 8am"' : '"between 8am and 6pm"'));
    }
  }
  if (after >= before) throw invalid(`the hours range is empty (from ${after}h to ${before}h)`);
  const draw = seededDraws(id);
  const second = draw(60);
  const minute = draw(60);
  const hour = after + draw(before - after);
  const crontab = {
    '@hourly': `${second} ${minute} * * * *`,
    '@daily': `${second} ${minute} ${hour} * * *`,
    '@weekly': `${second} ${minute} ${hour} * * ${dow[draw(dow.length)]}`,
    '@monthly': `${second} ${minute} ${hour} ${dom[draw(dom.length)]} * *`,
  }[type];
  return cronSchedule(crontab);
}

/** The schedule of a trigger; throws ServeError('invalid') for arguments its type does not accept. */
export function parseSchedule(source: ScheduleSource): Schedule {
  switch (source.type) {
    case '@cron':
      return cronSchedule(source.arguments.trim());
    case '@every':
      return everySchedule(source.arguments, source.createdAt);
    case '@hourly':
    case '@daily':
    case '@weekly':
    case '@monthly':
      return periodicSchedule(source.type, source.arguments, source.id);
    case '@manual':
      if (source.arguments.trim() !== '') throw invalid('@manual takes no arguments');
      return { next: () => null };
  }
}
