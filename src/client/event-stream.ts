import { anySignal } from '../any-signal.js';
import { EVENTS_SILENCE_MS } from '../events-keepalive.js';
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
  /**
   * How long the registrar may send nothing at all (no answer, no event, no keep-alive comment)
   * before the connection is taken for lost and made again. Default EVENTS_SILENCE_MS, 45 s:
   * three of the registrar's keep-alive periods.
   */
  silenceMs?: number;
}

/**
 * Follows `/events`, reconnecting after the registrar restarts or the connection drops. Each
 * connection starts with a fresh `snapshot`, so nothing is missed across a reconnect.
 */
export async function* watchEvents(options: WatchOptions): AsyncGenerator<ServerSentEvent> {
  const fetchImpl = options.fetch ?? nodeFetch;
  const maxRetryMs = options.maxRetryMs ?? 5_000;
  const silenceMs = options.silenceMs ?? EVENTS_SILENCE_MS;
  let retryMs = 250;
  while (!options.signal.aborted) {
    // A stopped registrar, a partition or a stuck proxy keeps the connection open and sends
    // nothing: without this the watch would show the last catalog for ever, as if all were well.
    const silence = silenceWatch(silenceMs);
    try {
      const signal = anySignal([options.signal, silence.signal]);
      const response = await silence.wait(send(fetchImpl, options.url, { headers: { accept: 'text/event-stream', ...options.headers }, signal }));
      // An error answer's body is read too: a proxy may send its headers and then nothing.
      await silence.wait(checkOk(response, options.url));
      if (!response.body) throw new Error(`${options.url} sent no event stream`);
      for await (const event of parseEventStream(chunksWithin(response.body as AsyncIterable<Uint8Array>, silence))) {
        retryMs = 250;
        yield event;
      }
      throw new Error('the registrar closed the event stream');
    } catch (error) {
      if (options.signal.aborted) return;
      // A wrong token or a missing endpoint will not heal by retrying.
      const status = (error as { status?: number }).status;
      if (!silence.fired && status !== undefined && status >= 400 && status < 500) throw error;
      // The abort it caused surfaces as whatever the request made of it: say what happened instead.
      const lost = silence.fired ? new Error(`the registrar sent nothing for ${silenceMs / 1000} s, not even a keep-alive`) : (error as Error);
      options.onDisconnect?.(lost, retryMs);
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

interface SilenceWatch {
  /** Aborted once the registrar kept silent too long. */
  readonly signal: AbortSignal;
  readonly fired: boolean;
  /** `promise`, waited for at most the limit. */
  wait<T>(promise: Promise<T>): Promise<T>;
}

/**
 * Times only the waits for the registrar, not the reader's work between them: a reader held up
 * (a `--watch --json` piped into a paused `less`) must not be taken for a silent registrar.
 */
function silenceWatch(ms: number): SilenceWatch {
  const controller = new AbortController();
  return {
    signal: controller.signal,
    get fired() {
      return controller.signal.aborted;
    },
    async wait(promise) {
      const timer = setTimeout(() => controller.abort(new DOMException(`nothing for ${ms} ms`, 'TimeoutError')), ms);
      try {
        return await promise;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The body's chunks, each waited for within the silence limit: comments count, as any byte does. */
async function* chunksWithin(body: AsyncIterable<Uint8Array>, silence: SilenceWatch): AsyncGenerator<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await silence.wait(chunks.next());
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // Left early (the watch stopped, or the limit cut it): the connection goes too.
    await chunks.return?.();
  }
}
