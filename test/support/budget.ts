import { expect } from 'vitest';
import { BudgetExceeded, type BudgetName } from '../../host-api/budget.ts';

/** Awaits a promise that must fail with the given budget exceeded. */
export async function expectBudgetExceeded(promise: Promise<unknown>, budget: BudgetName, limit: number): Promise<BudgetExceeded> {
  const error = await promise.then(
    () => expect.unreachable(`expected the ${budget} budget to be exceeded`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BudgetExceeded);
  expect(error).toMatchObject({ budget, limit });
  expect((error as BudgetExceeded).used).toBeGreaterThan(limit);
  return error as BudgetExceeded;
}
