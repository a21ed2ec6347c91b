/** Zod's issues as people read them, the same way in every message that reports a schema error. */
import type { z } from 'zod';

/** Each issue as "field: problem"; `whole` names the field when the problem is the value itself. */
export function issueLines(error: z.ZodError, whole = '(root)'): string[] {
  return error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : whole}: ${issue.message}`);
}

/** The issues on one line, for an error message. */
export function formatIssues(error: z.ZodError, whole?: string): string {
  return issueLines(error, whole).join('; ');
}

/** The issues as an indented list, one per line, for a message that introduces them with a colon. */
export function describeIssues(error: z.ZodError): string {
  return issueLines(error).map((line) => `  - ${line}`).join('\n');
}
