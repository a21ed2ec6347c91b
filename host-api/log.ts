import type { Limits } from '../runner/limits.ts';
import { BudgetExceeded } from './budget.ts';

export type LogLevel = 'debug' | 'info' | 'warning' | 'error' | 'critical';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warning', 'error', 'critical'];

export interface LogLine {
  time: string;
  level: LogLevel;
  message: string;
  /** Who wrote it: the konnector, or the runner about the konnector. */
  source: 'konnector' | 'runner';
}

/**
 * WIT `log`: the job's log. Lines are cut at `maxLineBytes`; past `maxLines`
 * or `maxBytes` the write throws BudgetExceeded and the sandbox ends the job.
 */
export class JobLog {
  readonly lines: LogLine[] = [];
  private konnectorLines = 0;
  private konnectorBytes = 0;

  constructor(
    private readonly limits: Limits['log'],
    private readonly onLine: (line: LogLine) => void = () => {},
  ) {}

  /** What the konnector wrote, against the log budgets. */
  get usage(): { lines: number; bytes: number } {
    return { lines: this.konnectorLines, bytes: this.konnectorBytes };
  }

  write(level: LogLevel, message: string, source: LogLine['source'] = 'konnector'): void {
    if (!LOG_LEVELS.includes(level)) level = 'info';
    const cut =
      Buffer.byteLength(message) > this.limits.maxLineBytes
        ? `${Buffer.from(message).subarray(0, this.limits.maxLineBytes).toString()}… [line cut at ${this.limits.maxLineBytes} bytes]`
        : message;
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
