/**
 * The tests' PDF: a minimal one-page document holding `text`, so that each
 * file's bytes and md5 differ. Web APIs only: guest code run by
 * test/konnectors/guest-harness.ts imports it too.
 */
export function pdf(text: string): Uint8Array {
  return new TextEncoder().encode(`%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ${text}\ntrailer << /Root 1 0 R >>\n%%EOF\n`);
}
