/**
 * The one encoding of the QuickJS engine's host calls, both ways (guest-host.js in the guest, host-calls.ts
 * on the host): JSON text whose byte arrays are taken out into one buffer beside it, each replaced by
 * `{"$bytes":[offset,length]}`, and whose bigints become `{"$bigint":"<digits>"}`. Plain JavaScript only: it
 * is bundled into the guest as well.
 */
export const TAGGED_BYTES = '$bytes';
export const TAGGED_BIGINT = '$bigint';

/** `value` as JSON text, and the byte arrays it refers to, in order, with their total size. */
export function stringifyTagged(value: unknown): { text: string | undefined; parts: Uint8Array[]; size: number } {
  const parts: Uint8Array[] = [];
  let size = 0;
  // The holder's own value: a Buffer's toJSON would otherwise have made it an object.
  const text = JSON.stringify(value, function replace(this: Record<string, unknown>, key: string, json: unknown) {
    const raw = this[key];
    const item = raw instanceof ArrayBuffer ? new Uint8Array(raw) : raw;
    if (item instanceof Uint8Array) {
      parts.push(item);
      size += item.byteLength;
      return { [TAGGED_BYTES]: [size - item.byteLength, item.byteLength] };
    }
    if (typeof item === 'bigint') return { [TAGGED_BIGINT]: item.toString() };
    return json;
  });
  return { text, parts, size };
}

/** Copies `parts` end to end into `into` from `offset`. */
export function writeParts(into: Uint8Array, offset: number, parts: readonly Uint8Array[]): void {
  for (const part of parts) {
    into.set(part, offset);
    offset += part.byteLength;
  }
}
