/** What the documents and couchdb-server suites share: a documents capability on a fresh instance, and its error assertion. */
import { expect } from 'vitest';
import { createDocuments, DocumentsError, type DocumentsErrorKind, type DocumentsOptions } from '../../host-api/documents.ts';

let instanceCounter = 0;
/** A fresh instance domain per test keeps tests sharing one server apart (every database is prefixed by it). */
export function freshInstance(): string {
  instanceCounter += 1;
  return `user${instanceCounter}-${process.pid}.cozy.example`;
}

export function documentsFor(couchUrl: string, overrides: Partial<DocumentsOptions> = {}) {
  return createDocuments({
    couchUrl,
    instance: freshInstance(),
    slug: 'examplebills',
    accountId: 'account-1',
    permissions: { bills: { type: 'io.cozy.bills' } },
    limits: { maxDocuments: 100, maxDocumentBytes: 64 * 1024, maxFindLimit: 100 },
    ...overrides,
  });
}

/** Asserts that `promise` rejects with a DocumentsError of `kind` whose message matches every pattern. */
export async function expectDocumentsError(promise: Promise<unknown>, kind: DocumentsErrorKind, ...patterns: RegExp[]) {
  const error = await promise.then(
    (value) => { throw new Error(`expected a ${kind} DocumentsError, got the result ${String(value)}`); },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DocumentsError);
  expect((error as DocumentsError).kind).toBe(kind);
  for (const pattern of patterns) expect((error as DocumentsError).message).toMatch(pattern);
  return error as DocumentsError;
}
