// The guest's side of the QuickJS engine's one generic host import (engine-main.c's `__host.call`): every
// function of the konnector world, as the modules runner/quickjs/bundle.ts generates from the capabilities'
// descriptors, calls `hostCall(op, args)`. The wire (runner/quickjs/host-calls.ts reads it):
//   request  JSON text `{"op":"http.send","args":[...]}`, and one byte buffer holding every byte array of the
//            arguments, each replaced in the JSON by {"$bytes":[offset,length]} (bigints by {"$bigint":"<digits>"})
//   answer   JSON text `{"ok":value}`, `{"err":{kind,message}}` (the WIT error) or `{"invalid":message}`,
//            byte arrays and bigints as in the request, and the answer's byte buffer.
// A WIT `err` is thrown as jco's glue throws it for a component, `{ payload }`, so the SDK handles both alike.

import { stringifyTagged, TAGGED_BIGINT, TAGGED_BYTES, writeParts } from './wire.ts';

function encode(value) {
  const { text, parts, size } = stringifyTagged(value);
  if (parts.length === 0) return [text, undefined];
  if (parts.length === 1 && parts[0].byteOffset === 0 && parts[0].byteLength === parts[0].buffer.byteLength) return [text, parts[0].buffer];
  const bytes = new Uint8Array(size);
  writeParts(bytes, 0, parts);
  return [text, bytes.buffer];
}

function decode(text, buffer) {
  return JSON.parse(text, (_key, item) => {
    if (item && typeof item === 'object' && !Array.isArray(item)) {
      const bytes = item[TAGGED_BYTES];
      if (Array.isArray(bytes)) return new Uint8Array(buffer, bytes[0], bytes[1]);
      const big = item[TAGGED_BIGINT];
      if (typeof big === 'string') return BigInt(big);
    }
    return item;
  });
}

/** One host call: its result, or the WIT error thrown as `{ payload }`. */
export function hostCall(op, args) {
  const [text, bytes] = encode({ op, args });
  const [answerText, answerBytes] = __host.call(text, bytes);
  const answer = decode(answerText, answerBytes);
  if ('err' in answer) throw { payload: answer.err };
  if ('invalid' in answer) throw new TypeError(answer.invalid);
  return answer.ok;
}
