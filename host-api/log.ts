import type { Limits } from '../runner/limits.ts';

export type LogLevel = 'debug' | 'info' | 'warning' | 'error' | 'critical';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warning', 'error', 'critical'];

export interface LogLine {
  time: string;
  level: LogLevel;
  message: string;
  /** Who wrote it: the konnector, or the runner about the konnector. */
  source: 'konnector' | 'runner';
}

export class LogBudgetExceeded extends Error {
  constructor(
    readonly budget: 'lines' | 'bytes',
    readonly limit: number,
    readonly used: number,
  ) {
    super(`the job wrote more log ${budget} than allowed (${used} > ${limit})`);
    this.name = 'LogBudgetExceeded';
  }
}

/**
 * WIT `log`: the job's log. Lines are cut at `maxLineBytes`; past `maxLines`
 * or `maxBytes` the write throws LogBudgetExceeded and the sandbox ends the job.
 */
export class JobLog {
  readonly lines: LogLine[] = [];
  private konnectorLines = 0;
  private konnectorBytes = 0;

  constructor(
    private readonly limits: Limits['log'],
    private readonly onLine: (line: LogLine) => void = () => {},
  ) {}

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
        throw new LogBudgetExceeded('lines', this.limits.maxLines, this.konnectorLines);
      }
      if (this.konnectorBytes > this.limits.maxBytes) {
        throw new LogBudgetExceeded('bytes', this.limits.maxBytes, this.konnectorBytes);
      }
    }
    this.lines.push(line);
    this.onLine(line);
  }
}
