/**
 * The host's side of the QuickJS engine's generic import `konnector.call` (engine-main.c): the wire
 * runner/quickjs/guest-host.js writes, read back into a call `{ op, args }` of the konnector world, and the
 * answer written the same way. Byte arrays cross as raw bytes in one buffer beside the JSON text, each
 * referred to in it by `{"$bytes":[offset,length]}`; bigints as `{"$bigint":"<digits>"}`. Nothing here trusts
 * the guest: a malformed request is answered `invalid` (the guest's TypeError), and the arguments are then
 * checked against the function's WIT types by the dispatcher (runner/sandbox/capabilities.ts).
 */
import { stringifyTagged, TAGGED_BIGINT, TAGGED_BYTES, writeParts } from './wire.ts';

export interface HostCallRequest {
  op: string;
  args: unknown[];
}

export class MalformedCall extends TypeError {
  override name = 'TypeError';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

export function decodeCall(text: Uint8Array, bytes: Uint8Array): HostCallRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(text), (_key, item: unknown) => {
      if (item && typeof item === 'object' && !Array.isArray(item)) {
        const tagged = item as Record<string, unknown>;
        const range = tagged[TAGGED_BYTES];
        if (range !== undefined) {
          const [at, length] = Array.isArray(range) ? range : [];
          if (!Number.isSafeInteger(at) || !Number.isSafeInteger(length) || at < 0 || length < 0 || at + length > bytes.byteLength) {
            throw new MalformedCall(`a byte array refers to bytes ${JSON.stringify(range)} of a ${bytes.byteLength}-byte buffer`);
          }
          return bytes.slice(at, at + length);
        }
        const big = tagged[TAGGED_BIGINT];
        if (typeof big === 'string' && /^-?\d{1,40}$/.test(big)) return BigInt(big);
      }
      return item;
    });
  } catch (error) {
    if (error instanceof MalformedCall) throw error;
    throw new MalformedCall(`a host call that is not JSON: ${(error as Error).message}`);
  }
  const call = parsed as Partial<HostCallRequest> | null;
  if (!call || typeof call !== 'object' || typeof call.op !== 'string' || !Array.isArray(call.args)) {
    throw new MalformedCall('a host call is {"op": "<interface>.<function>", "args": [...]}');
  }
  return { op: call.op, args: call.args };
}

/** The answer block the engine reads: a little-endian u32 text length, the JSON text, the bytes. */
export function encodeAnswer(answer: unknown): Uint8Array {
  const { text, parts, size } = stringifyTagged(answer);
  const textBytes = encoder.encode(text ?? '{}');
  const block = new Uint8Array(4 + textBytes.byteLength + size);
  new DataView(block.buffer).setUint32(0, textBytes.byteLength, true);
  block.set(textBytes, 4);
  writeParts(block, 4 + textBytes.byteLength, parts);
  return block;
}
