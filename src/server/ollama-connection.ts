import { Ollama } from 'ollama/browser';
import { Agent, type Dispatcher, fetch as undiciFetch } from 'undici';
import { guardOllamaAnswer } from './ollama-answer-guard.js';
import { anySignal } from '../any-signal.js';

export type OllamaClient = Pick<Ollama, 'chat' | 'list' | 'version'>;

/** Ollama stayed silent for longer than the connection's `silenceLimitMs`. */
export class OllamaSilentError extends Error {
  override readonly name = 'OllamaSilentError';
}

export interface OllamaConnection {
  /** Where Ollama runs, as the user gave it (for messages). */
  readonly host: string;
  /**
   * A client whose every request ends when `signal` aborts: the caller left, or the service cuts
   * answers short. The ollama client itself can cancel a stream only once its headers are in,
   * and Ollama sends those with the first token, after loading the model and reading the prompt.
   */
  clientFor(signal: AbortSignal): OllamaClient;
  /** Drops the pooled connections. */
  close(): Promise<void>;
}

export interface OllamaConnectionOptions {
  /**
   * The longest silence from Ollama, before its first token and between two, after which a
   * request fails. 0 (the default) is none: how long an answer may take is the caller's to say
   * (the registrar's --forward-timeout), and a caller that leaves cancels the request. Node's
   * global fetch would end it after 300 s, however reachable Ollama is.
   */
  silenceLimitMs?: number;
}


/** Talks to the Ollama at `host` through the ollama client, over one pool of kept-alive connections. */
export function connectOllama(host: string, options: OllamaConnectionOptions = {}): OllamaConnection {
  const limit = options.silenceLimitMs ?? 0;
  const dispatcher: Dispatcher = new Agent({ headersTimeout: limit, bodyTimeout: limit, keepAliveTimeout: 30_000 });

  async function send(input: string | URL | Request, init: RequestInit | undefined, signal: AbortSignal): Promise<Response> {
    const url = new URL(input instanceof Request ? input.url : input);
    const request = `${init?.method ?? 'GET'} ${url.pathname}`;
    try {
      const response = await undiciFetch(url, {
        ...(init as Parameters<typeof undiciFetch>[1]),
        // ollama-js passes a signal of its own for a stream (its abort()); either one ends it.
        signal: init?.signal ? anySignal([init.signal, signal]) : signal,
        dispatcher,
      });
      return await guardOllamaAnswer(response as unknown as Response, request);
    } catch (error) {
      if ((error as { cause?: { code?: string } }).cause?.code === 'UND_ERR_HEADERS_TIMEOUT') {
        throw new OllamaSilentError(`did not start answering within ${limit / 1000} s (${request})`, { cause: error });
      }
      throw error;
    }
  }

  return {
    host,
    // A client per request: cheap (the pool is shared), and its abort() list dies with it.
    clientFor: (signal) => new Ollama({ host, fetch: (input, init) => send(input, init, signal) }),
    close: () => dispatcher.close(),
  };
}
