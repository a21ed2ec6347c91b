import { z } from 'zod';
import type * as WitLog from '../wit/types/interfaces/cozy-konnector-log.js';
import { BudgetExceeded } from './budget.ts';
import { hostCapability } from './capability.ts';

export type LogLevel = WitLog.Level;
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warning', 'error', 'critical'];

export interface LogLine {
  time: string;
  level: LogLevel;
  message: string;
  /** Who wrote it: the konnector, or the runner about the konnector. */
  source: 'konnector' | 'runner';
}

/** `message` cut at `maxBytes` of UTF-8, saying so: how log lines and failure messages are bounded. */
export function cutLine(message: string, maxBytes: number): string {
  if (Buffer.byteLength(message) <= maxBytes) return message;
  return `${Buffer.from(message).subarray(0, maxBytes).toString()}… [line cut at ${maxBytes} bytes]`;
}

// Line breaks (CR, LF, U+2028/9) and terminal controls (C0, DEL, C1: ESC sequences) but tab.
const UNPRINTABLE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * A log line as one line of text (`konnector run` without --json): a konnector's message cannot start a second
 * line, forged as another level or as the runner, nor drive the terminal. Breaks and controls are escaped.
 */
export function formatTextLine(line: LogLine): string {
  const message = line.message.replace(UNPRINTABLE, (c) =>
    c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${line.time} ${line.level.padEnd(8)} ${line.source === 'runner' ? '[runner] ' : ''}${message}`;
}

/** The job's log limits; an operator's limits file overrides the defaults (runner/limits.ts). */
const limitsSchema = z.object({
  maxLines: z.number().int().positive().default(10_000),
  maxBytes: z.number().int().positive().default(4 * 1024 * 1024),
  /** A longer line is cut, not refused. */
  maxLineBytes: z.number().int().positive().default(16 * 1024),
});

export type LogLimits = z.infer<typeof limitsSchema>;

/**
 * WIT `log`: the job's log. Lines are cut at `maxLineBytes`; past `maxLines`
 * or `maxBytes` the write throws BudgetExceeded and the sandbox ends the job.
 */
export class JobLog {
  readonly lines: LogLine[] = [];
  private konnectorLines = 0;
  private konnectorBytes = 0;

  constructor(
    private readonly limits: LogLimits,
    private readonly onLine: (line: LogLine) => void = () => {},
  ) {}

  /** What the konnector wrote, against the log budgets. */
  get usage(): { lines: number; bytes: number } {
    return { lines: this.konnectorLines, bytes: this.konnectorBytes };
  }

  write(level: LogLevel, message: string, source: LogLine['source'] = 'konnector'): void {
    if (!LOG_LEVELS.includes(level)) level = 'info';
    const cut = cutLine(message, this.limits.maxLineBytes);
    const line: LogLine = { time: new Date().toISOString(), level, message: cut, source };
    if (source === 'konnector') {
      this.konnectorLines += 1;
      this.konnectorBytes += Buffer.byteLength(cut);
      if (this.konnectorLines > this.limits.maxLines) {
        throw new BudgetExceeded('LOG_LINES', this.limits.maxLines, this.konnectorLines, 'log lines');
      }
      if (this.konnectorBytes > this.limits.maxBytes) {
        throw new BudgetExceeded('LOG_BYTES', this.limits.maxBytes, this.konnectorBytes, 'log bytes');
      }
    }
    this.lines.push(line);
    this.onLine(line);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The capability (host-api/capability.ts)

export default hostCapability({
  interface: 'cozy:konnector/log@0.1.0',
  functions: {
    write: {
      blocks: false,
      params: z.tuple([z.enum(['debug', 'info', 'warning', 'error', 'critical']), z.string()]),
      answer: (log: JobLog, level, message) => log.write(level, message),
    },
  },
  limits: limitsSchema,
  create: (scope, limits) => new JobLog(limits, scope.onLog),
  usage: (log, limits) => ({
    logLines: { used: log.usage.lines, limit: limits.maxLines },
    logBytes: { used: log.usage.bytes, limit: limits.maxBytes },
  }),
});
