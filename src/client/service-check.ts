import { nodeFetch } from './node-fetch.js';

const CHECK_TIMEOUT_MS = 5_000;

/**
 * An HTTP check of a service, as Consul runs them: GET the service's URL plus `path`; any answer
 * under 400 passes. Resolves to undefined when it passes, else to what went wrong.
 */
export function httpCheck(serviceUrl: string, path: string): () => Promise<string | undefined> {
  // Under a path prefix like forwards' /receive: http://host/api + /health → http://host/api/health.
  const url = `${serviceUrl.replace(/\/+$/, '')}${path}`;
  return async () => {
    try {
      const response = await nodeFetch(url, { signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
      await response.text();
      return response.status < 400 ? undefined : `GET ${url} answered ${response.status}`;
    } catch (error) {
      const e = error as Error & { code?: string };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') return `GET ${url} did not answer within ${CHECK_TIMEOUT_MS / 1000} s`;
      return `GET ${url} failed: ${e.code ?? e.message}`;
    }
  };
}
