/**
 * The suite's summary: one row per attack, what must happen, what the test
 * saw, and whether the test that checked it passed. Printed after the suite.
 */
import { onTestFinished } from 'vitest';

interface Row {
  /** The engine the attack ran on, when the suite runs on several (test/support/engines.ts). */
  engine: string;
  attack: string;
  expected: string;
  observed: string;
  result: 'pass' | 'FAIL' | 'running';
}

const OBSERVED_WIDTH = 110;

export class AttackTable {
  private readonly rows: Row[] = [];

  /**
   * Adds a row for the running test. Record the observation BEFORE asserting
   * on it, so a failing row shows what really happened.
   */
  row(attack: string, expected: string, engine = ''): (observed: string) => void {
    const row: Row = { engine, attack, expected, observed: 'not observed', result: 'running' };
    this.rows.push(row);
    onTestFinished(({ task }) => {
      row.result = task.result?.state === 'pass' ? 'pass' : 'FAIL';
    });
    return (observed) => {
      row.observed = observed.replace(/\s+/g, ' ');
    };
  }

  format(): string {
    const engines = this.rows.some((r) => r.engine);
    const cells = this.rows.map((r) => [
      r.result,
      ...(engines ? [r.engine] : []),
      r.attack,
      r.expected,
      r.observed.length > OBSERVED_WIDTH ? `${r.observed.slice(0, OBSERVED_WIDTH - 1)}…` : r.observed,
    ]);
    const header = ['result', ...(engines ? ['engine'] : []), 'attack', 'expected outcome', 'observed outcome'];
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
    const line = (c: string[]) => `| ${c.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
    const failed = this.rows.filter((r) => r.result !== 'pass').length;
    return [
      `Hostile konnectors: ${this.rows.length} attacks checked, ${failed} failed`,
      line(header),
      `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
      ...cells.map(line),
    ].join('\n');
  }
}
