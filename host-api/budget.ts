/**
 * A per-job budget the host enforces. Exceeding one ends the job at once with
 * `LIMIT_EXCEEDED.<budget>`: the guest is not told and cannot retry.
 */
export type BudgetName =
  | 'FUEL'
  | 'MEMORY'
  | 'WALL_CLOCK'
  | 'HTTP_REQUESTS'
  | 'HTTP_BYTES_IN'
  | 'HTTP_BYTES_OUT'
  | 'DOCUMENTS'
  | 'DOCUMENTS_FINDS'
  | 'FILES'
  | 'FILES_BYTES'
  | 'FILES_STATS'
  | 'LOG_LINES'
  | 'LOG_BYTES';

export class BudgetExceeded extends Error {
  constructor(
    readonly budget: BudgetName,
    readonly limit: number,
    readonly used: number,
    what: string,
  ) {
    super(`${what}: the job exceeded its ${budget} budget (limit ${limit}, used ${used})`);
    this.name = 'BudgetExceeded';
  }
}
