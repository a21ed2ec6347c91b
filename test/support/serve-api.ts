/** A client of the worker host's HTTP API (docs/serve.md), for tests and benchmarks. */

export interface ApiAnswer<T = any> {
  status: number;
  body: T;
}

/** The host's API, with `token` as bearer (none when null). */
export function apiClient(baseUrl: string, token: string | null) {
  return async <T = any>(method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer<T>> => {
    const res = await fetch(`${baseUrl}${route}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // Prometheus text, or an empty 204.
    }
    return { status: res.status, body: parsed as T };
  };
}

export type Api = ReturnType<typeof apiClient>;
