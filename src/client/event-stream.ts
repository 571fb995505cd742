import { checkOk, type Fetch, send } from './http.js';
import { nodeFetch } from './node-fetch.js';

export interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/** Parses a Server-Sent Events body into events as they arrive (comments are skipped). */
export async function* parseEventStream(body: AsyncIterable<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let current: { event?: string; data: string[]; id?: string } = { data: [] };
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline = buffer.indexOf('\n');
    while (newline !== -1) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf('\n');
      if (line === '') {
        if (current.data.length > 0) yield { event: current.event ?? 'message', data: current.data.join('\n'), id: current.id };
        current = { data: [] };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') current.event = value;
      else if (field === 'data') current.data.push(value);
      else if (field === 'id') current.id = value;
    }
  }
}

export interface WatchOptions {
  url: string;
  headers?: Record<string, string>;
  fetch?: Fetch;
  signal: AbortSignal;
  /** Told when the connection drops and when it is back, so a person sees what is going on. */
  onDisconnect?: (error: Error, retryMs: number) => void;
  /** Longest wait between reconnection attempts. */
  maxRetryMs?: number;
}

/**
 * Follows `/events`, reconnecting after the registrar restarts or the connection drops. Each
 * connection starts with a fresh `snapshot`, so nothing is missed across a reconnect.
 */
export async function* watchEvents(options: WatchOptions): AsyncGenerator<ServerSentEvent> {
  const fetchImpl = options.fetch ?? nodeFetch;
  const maxRetryMs = options.maxRetryMs ?? 5_000;
  let retryMs = 250;
  while (!options.signal.aborted) {
    try {
      const response = await send(fetchImpl, options.url, { headers: { accept: 'text/event-stream', ...options.headers }, signal: options.signal });
      await checkOk(response, options.url);
      if (!response.body) throw new Error(`${options.url} sent no event stream`);
      for await (const event of parseEventStream(response.body as AsyncIterable<Uint8Array>)) {
        retryMs = 250;
        yield event;
      }
      throw new Error('the registrar closed the event stream');
    } catch (error) {
      if (options.signal.aborted) return;
      // A wrong token or a missing endpoint will not heal by retrying.
      const status = (error as { status?: number }).status;
      if (status !== undefined && status >= 400 && status < 500) throw error;
      options.onDisconnect?.(error as Error, retryMs);
      // Abortable, so Ctrl-C during an outage stops at once rather than after the wait.
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          options.signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, retryMs);
        options.signal.addEventListener('abort', done, { once: true });
      });
      retryMs = Math.min(retryMs * 2, maxRetryMs);
    }
  }
}
