// The web's `fetch` for konnectors and their npm dependencies (node-fetch,
// isomorphic-fetch, cross-fetch resolve here too), on the one way out the
// sandbox has: the host's `http.send` (wit/konnector.wit). Every egress rule,
// budget and the job's cookie jar apply, as for `http` and the SDK's requests.
// The engine's Request, Response and Headers classes carry the values; the
// body is sent and received whole.
// Only the http interface: every konnector has this module, and a component imports what its code names.
import { send } from 'cozy:konnector/http@0.1.0';

/** Headers the host sets itself and refuses from the konnector (host-api/http/request.ts); guest-http.js drops them too. */
export const HOST_OWNED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect']);

/** Statuses whose response has no body (a Response given one throws). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

export async function fetch(input, init) {
  const request = new Request(input, init);
  // The engine's Request does not keep `redirect`: it is read from where the caller gave it.
  const redirect = init?.redirect ?? request.redirect ?? 'follow';
  if (request.signal?.aborted) throw request.signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
  const headers = [];
  request.headers.forEach((value, name) => {
    if (!HOST_OWNED.has(name) && !name.startsWith('proxy-')) headers.push([name, value]);
  });
  const sent = request.method === 'GET' || request.method === 'HEAD' ? undefined : new Uint8Array(await request.arrayBuffer());
  let answer;
  try {
    // 'manual' and 'error' leave redirects to the caller, as Node's fetch does: the 3xx itself is the answer.
    answer = await send({ method: request.method, url: request.url, headers, body: sent, followRedirects: redirect === 'follow' });
  } catch (error) {
    // A WIT `err` arrives as an object whose `payload` is the host's {kind, message}.
    const { kind, message } = error?.payload ?? { kind: 'unknown', message: String(error) };
    throw new TypeError(`fetch failed: http ${kind}: ${message}`, { cause: error });
  }
  if (redirect === 'error' && answer.status >= 300 && answer.status < 400) {
    throw new TypeError(`fetch failed: ${request.url} redirected (${answer.status}) and the request's redirect mode is "error"`);
  }
  // The bindings make the body in another realm, where Response does not know it for bytes: it is re-viewed.
  const body = new Uint8Array(answer.body.buffer, answer.body.byteOffset, answer.body.byteLength);
  const response = new Response(NULL_BODY_STATUSES.has(answer.status) || request.method === 'HEAD' ? null : body, {
    status: answer.status,
    headers: answer.headers,
  });
  Object.defineProperty(response, 'url', { value: answer.url });
  Object.defineProperty(response, 'redirected', { value: answer.url !== request.url });
  return response;
}

/** What node-fetch, isomorphic-fetch and cross-fetch export: fetch itself, as default too, and the classes. */
export function fetchModule() {
  const exported = (...args) => fetch(...args);
  return Object.assign(exported, { default: exported, fetch: exported, Headers, Request, Response });
}
