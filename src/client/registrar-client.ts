import { checkOk, type Fetch, HttpError, ndjsonLines, readJson, send } from './http.js';
import { nodeFetch } from './node-fetch.js';
import { anySignal } from '../any-signal.js';
import type { ChatTurn, InstanceJson } from '../wire-types.js';

export interface RegistrarClientOptions {
  /** The registrar's base URL, e.g. http://127.0.0.1:5001 */
  baseUrl: string;
  token?: string;
  fetch?: Fetch;
  /** Per-request timeout for calls that are not forwards. */
  timeoutMs?: number;
}

export type { ChatTurn, InstanceJson };

/** What a call returned: the parsed JSON and its text exactly as the server sent it. */
export interface JsonAnswer<T> {
  json: T;
  text: string;
  headers: { get(name: string): string | null };
}

/** Talks to a registrar's HTTP API; every failure is an HttpError that names the URL. */
export function createRegistrarClient(options: RegistrarClientOptions) {
  const base = options.baseUrl.replace(/\/+$/, '');
  const fetchImpl = options.fetch ?? nodeFetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const authHeaders: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};

  async function call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<JsonAnswer<T>> {
    const url = `${base}${path}`;
    const response = await send(fetchImpl, url, {
      method,
      headers: { ...authHeaders, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal ?? AbortSignal.timeout(timeoutMs),
    });
    await checkOk(response, url);
    return { ...(await readJson<T>(response, url)), headers: response.headers };
  }

  /** The usual bound, and `cancel` too when given: a caller that stops (Ctrl-C) need not wait the bound out. */
  const bounded = (cancel?: AbortSignal) => (cancel ? anySignal([cancel, AbortSignal.timeout(timeoutMs)]) : undefined);

  return {
    baseUrl: base,
    authHeaders,
    register: (name: string, url: string, metadata?: Record<string, unknown>, cancel?: AbortSignal) =>
      call<{ message: string }>('POST', '/register', { service_name: name, service_url: url, ...(metadata && { metadata }) }, bounded(cancel)),
    /** `metadata` is registered with the instance should the registrar have lost it. */
    heartbeat: async (name: string, url?: string, metadata?: Record<string, unknown>, cancel?: AbortSignal) => {
      const answer = await call<{ message: string }>(
        'POST',
        '/heartbeat',
        { service_name: name, ...(url && { service_url: url }), ...(metadata && { metadata }) },
        bounded(cancel),
      );
      return { ...answer, reregistered: answer.headers.get('x-svcmesh-registered') === 'true' };
    },
    deregister: (name: string, url?: string) =>
      call<{ message: string }>('POST', '/deregister', { service_name: name, ...(url && { service_url: url }) }),
    services: () => call<{ services: Record<string, string> }>('GET', '/services'),
    catalog: () => call<{ services: Record<string, InstanceJson[]> }>('GET', '/catalog'),
    service: (name: string, signal?: AbortSignal) => call<{ name: string; instances: InstanceJson[] }>('GET', `/services/${encodeURIComponent(name)}`, undefined, signal),
    health: (cancel?: AbortSignal) => call<Record<string, unknown>>('GET', '/health', undefined, bounded(cancel)),
    /** One whole answer; no timeout of its own, since LLM answers can take minutes. */
    forward: (from: string, to: string, message: string, signal?: AbortSignal) =>
      call<{ message?: unknown } | null>('POST', '/forward', { from, to, message }, signal ?? new AbortController().signal),
    /** The answer's NDJSON lines as they arrive; `history` is the conversation so far, if any. */
    async *forwardStream(from: string, to: string, message: string, signal?: AbortSignal, history?: readonly ChatTurn[]) {
      const url = `${base}/forward`;
      const response = await send(fetchImpl, url, {
        method: 'POST',
        headers: { ...authHeaders, 'content-type': 'application/json' },
        body: JSON.stringify({ from, to, message, stream: true, ...(history && history.length > 0 && { history }) }),
        signal,
      });
      await checkOk(response, url);
      const type = response.headers.get('content-type') ?? '';
      if (!type.includes('ndjson')) {
        // A target that does not stream answers one JSON document; pass it on as one line.
        const { text, json } = await readJson<unknown>(response, url);
        yield { text, value: json, streamed: false };
        return;
      }
      // `streamed`: a line of an NDJSON answer, which ends with its `{"done": true}` line.
      for await (const line of ndjsonLines(response, url)) yield { ...line, streamed: true };
    },
  };
}

export type RegistrarClient = ReturnType<typeof createRegistrarClient>;
export { HttpError };
