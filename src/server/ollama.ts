import { Hono } from 'hono';
import type { Ollama } from 'ollama/browser';
import { z } from 'zod';
import { requireToken, type TokenWording } from './auth.js';
import { ApiError, notFound, onError, refuseOtherMethods } from './errors.js';
import { describeOllamaError } from './ollama-errors.js';
import { type History, history, message, parseJsonBody, sender, streamFlag } from './validation.js';

const RECEIVE_TOKEN: TokenWording = {
  who: "This service's /receive",
  setWith: "the registrar's --target-token, or --target-token-for this service",
  checkIn: "the registrar's --target-token or --target-token-for against this service's --receive-token",
};

export type OllamaClient = Pick<Ollama, 'chat' | 'list' | 'version'>;

export interface OllamaAppDeps {
  ollama: OllamaClient;
  /** Where Ollama runs, for messages only. */
  ollamaHost: string;
  model: string;
  /** When set, `/receive` needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Counts answers in flight, for `/health`. */
  tracker?: InFlightTracker;
}

/** How many answers are being produced right now. */
export class InFlightTracker {
  #count = 0;
  get count() {
    return this.#count;
  }
  begin(): () => void {
    this.#count += 1;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#count -= 1;
    };
  }
}

const receiveBody = z.object({
  from: sender,
  message,
  stream: streamFlag,
  history,
});

const encoder = new TextEncoder();
const line = (value: unknown) => encoder.encode(`${JSON.stringify(value)}\n`);

/** Ollama lists `llama3.2:latest` for a model asked for as `llama3.2`. */
export function hasModel(names: string[], model: string): boolean {
  const wanted = model.includes(':') ? model : `${model}:latest`;
  return names.some((name) => name === model || name === wanted);
}

export type OllamaReadiness = { ok: true; version: string } | { ok: false; error: string };

/**
 * Whether Ollama answers at `host` and has the model: what `/health` reports, and what the
 * service warns about at start-up. The error says what to do.
 */
export async function checkOllama(ollama: Pick<OllamaClient, 'list' | 'version'>, host: string, model: string): Promise<OllamaReadiness> {
  try {
    const [{ version }, { models }] = await Promise.all([ollama.version(), ollama.list()]);
    if (!hasModel(models.map((m) => m.name), model)) {
      return { ok: false, error: `Model ${model} is not available in Ollama at ${host}: run \`ollama pull ${model}\`` };
    }
    return { ok: true, version };
  } catch (error) {
    return { ok: false, error: describeOllamaError(error, host, model).message };
  }
}

/** Builds the Ollama microservice: answers forwarded questions through a local Ollama. */
export function createOllamaApp(deps: OllamaAppDeps): Hono {
  const { ollama, ollamaHost, model } = deps;
  const tracker = deps.tracker ?? new InFlightTracker();
  const app = new Hono();
  app.onError(onError());
  app.notFound(notFound);
  if (deps.token) app.use('/receive', requireToken(deps.token, RECEIVE_TOKEN));

  /** The question, after the conversation so far when the caller sent it (as `ollama run` keeps it). */
  async function startChat(question: string, earlier: History = []) {
    try {
      return await ollama.chat({ model, messages: [...earlier, { role: 'user', content: question }], stream: true });
    } catch (error) {
      throw describeOllamaError(error, ollamaHost, model);
    }
  }

  app.post('/receive', async (c) => {
    const body = await parseJsonBody(c, receiveBody);
    const done = tracker.begin();
    let parts: Awaited<ReturnType<typeof startChat>>;
    try {
      parts = await startChat(body.message, body.history);
    } catch (error) {
      done();
      throw error;
    }
    const signal = c.req.raw.signal;
    const abort = () => parts.abort();
    signal.addEventListener('abort', abort, { once: true });

    if (!body.stream) {
      let answer = '';
      try {
        for await (const part of parts) answer += part.message.content;
      } catch (error) {
        throw describeOllamaError(error, ollamaHost, model);
      } finally {
        signal.removeEventListener('abort', abort);
        done();
      }
      return c.json({ message: answer });
    }

    const iterator = parts[Symbol.asyncIterator]();
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          // Skip empty parts: a pull that enqueues nothing is not called again.
          for (;;) {
            const next = await iterator.next();
            if (next.done) {
              controller.enqueue(line({ done: true }));
              finish();
              controller.close();
              return;
            }
            if (next.value.message.content) {
              controller.enqueue(line({ message: next.value.message.content }));
              return;
            }
          }
        } catch (error) {
          controller.enqueue(line({ error: describeOllamaError(error, ollamaHost, model).message }));
          finish();
          controller.close();
        }
      },
      cancel() {
        // The caller went away: stop Ollama's generation rather than let it run on for nobody.
        parts.abort();
        finish();
      },
    });
    function finish() {
      signal.removeEventListener('abort', abort);
      done();
    }
    return new Response(stream, { headers: { 'content-type': 'application/x-ndjson' } });
  });

  app.get('/health', async (c) => {
    const readiness = await checkOllama(ollama, ollamaHost, model);
    if (!readiness.ok) return c.json({ status: 'unavailable', error: readiness.error, ollama: ollamaHost, model }, 503);
    return c.json({ status: 'ok', ollama: ollamaHost, ollama_version: readiness.version, model, in_flight: tracker.count });
  });

  refuseOtherMethods(app, { '/receive': ['POST'], '/health': ['GET'] });

  return app;
}
