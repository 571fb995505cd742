import { Hono } from 'hono';
import { z } from 'zod';
import { requireToken, type TokenWording } from './auth.js';
import { refuseBrowserWrites } from './cross-site.js';
import { ApiError, notFound, onError, refuseOtherMethods } from './errors.js';
import { ndjsonAnswer } from './ndjson-answer.js';
import type { OllamaConnection } from './ollama-connection.js';
import { describeOllamaError, lostMidAnswer } from './ollama-errors.js';
import { type History, history, message, parseJsonBody, sender, streamFlag } from './validation.js';
import { anySignal } from '../any-signal.js';

const RECEIVE_TOKEN: TokenWording = {
  who: "This service's /receive",
  setWith: "the registrar's --target-token, or --target-token-for this service",
  checkIn: "the registrar's --target-token or --target-token-for against this service's --receive-token",
};

/** How long `/health` (and the start-up check) waits for Ollama: probes must not pile up behind a hung one. */
export const HEALTH_TIMEOUT_MS = 5_000;

export interface OllamaAppDeps {
  ollama: OllamaConnection;
  model: string;
  /** When set, `/receive` needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Counts answers in flight, for `/health`. */
  tracker?: InFlightTracker;
  /**
   * Aborted, with the words the caller will read, when the service stops waiting for the answers
   * in flight (its drain time ran out): streamed ones end with an `{"error"}` line that says so.
   */
  cutAnswers?: AbortSignal;
  /** How long `/health` waits for Ollama; HEALTH_TIMEOUT_MS by default. */
  healthTimeoutMs?: number;
  /**
   * The longest answer put together whole (64 MiB by default, as the registrar reads whole): a
   * model that never stops would otherwise grow the service's memory until it falls over.
   * Streamed answers have no such limit: they are passed on as they come.
   */
  maxAnswerBytes?: number;
}

const MIB = 1024 * 1024;
const DEFAULT_MAX_ANSWER_BYTES = 64 * MIB;

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

/** Ollama lists `llama3.2:latest` for a model asked for as `llama3.2`. */
export function hasModel(names: string[], model: string): boolean {
  const wanted = model.includes(':') ? model : `${model}:latest`;
  return names.some((name) => name === model || name === wanted);
}

export type OllamaReadiness = { ok: true; version: string } | { ok: false; error: string };

export interface CheckOptions {
  /** Ends the check early: the asker left, or the service is stopping. */
  signal?: AbortSignal;
  withinMs?: number;
}

/**
 * Whether Ollama answers and has the model: what `/health` reports, and what the service warns
 * about at start-up. The error says what to do.
 */
export async function checkOllama(ollama: OllamaConnection, model: string, options: CheckOptions = {}): Promise<OllamaReadiness> {
  const withinMs = options.withinMs ?? HEALTH_TIMEOUT_MS;
  const deadline = AbortSignal.timeout(withinMs);
  const client = ollama.clientFor(options.signal ? anySignal([options.signal, deadline]) : deadline);
  try {
    const [{ version }, { models }] = await Promise.all([client.version(), client.list()]);
    if (!hasModel(models.map((m) => m.name), model)) {
      return { ok: false, error: `Model ${model} is not available in Ollama at ${ollama.host}: run \`ollama pull ${model}\`` };
    }
    return { ok: true, version };
  } catch (error) {
    if (deadline.aborted) {
      return { ok: false, error: `Ollama at ${ollama.host} did not answer within ${withinMs / 1000} s: it accepts connections but may be hung (\`ollama ps\` there shows what it is doing)` };
    }
    return { ok: false, error: describeOllamaError(error, ollama.host, model).message };
  }
}

/** Builds the Ollama microservice: answers forwarded questions through a local Ollama. */
export function createOllamaApp(deps: OllamaAppDeps): Hono {
  const { ollama, model, cutAnswers } = deps;
  const maxAnswerBytes = deps.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES;
  const tracker = deps.tracker ?? new InFlightTracker();
  const app = new Hono();
  app.onError(onError());
  app.notFound(notFound);
  // A web page must not make a visitor's browser spend their model's time: Ollama's own origin
  // check never sees these requests, since the service calls Ollama without an Origin.
  app.use('/receive', refuseBrowserWrites);
  if (deps.token) app.use('/receive', requireToken(deps.token, RECEIVE_TOKEN));

  /**
   * The answer's pieces of text. The question goes after the conversation so far when the caller
   * sent it (as `ollama run` keeps it). `signal` ends Ollama's work at any moment, also while it
   * loads the model, before its first token.
   */
  async function* askOllama(question: string, earlier: History, signal: AbortSignal): AsyncGenerator<string> {
    const parts = await ollama.clientFor(signal).chat({ model, messages: [...earlier, { role: 'user', content: question }], stream: true });
    try {
      for await (const part of parts) if (part.message.content) yield part.message.content;
    } catch (error) {
      // Ollama answered, then its connection broke: lost mid-answer, not "not reachable".
      throw signal.aborted ? error : lostMidAnswer(error);
    }
  }

  function failure(error: unknown): ApiError {
    if (error instanceof ApiError) return error;
    // Ollama's request was cut on purpose: say why, not what that did to the request.
    if (cutAnswers?.aborted) return new ApiError(503, String(cutAnswers.reason));
    return describeOllamaError(error, ollama.host, model);
  }

  app.post('/receive', async (c) => {
    const body = await parseJsonBody(c, receiveBody);
    const done = tracker.begin();
    const stop = new AbortController();
    const pieces = askOllama(body.message, body.history ?? [], anySignal([c.req.raw.signal, stop.signal, ...(cutAnswers ? [cutAnswers] : [])]));
    let streaming = false;
    try {
      if (!body.stream) {
        let answer = '';
        let bytes = 0;
        for await (const piece of pieces) {
          bytes += Buffer.byteLength(piece);
          if (bytes > maxAnswerBytes) {
            stop.abort();
            throw new ApiError(502, `The answer from ${model} grew past ${sizeText(maxAnswerBytes)}: ask with "stream": true (svcmesh ask --stream) to get a long answer as it is produced`);
          }
          answer += piece;
        }
        return c.json({ message: answer });
      }
      // Until a piece has come, a failure is an error status, as without streaming: the
      // registrar may still try another instance. The headers go out with that first piece.
      const first = await pieces.next();
      const stream = ndjsonAnswer(first, pieces, { describe: (error) => failure(error).message, onEnd: done, onCancel: () => stop.abort() });
      streaming = true;
      return new Response(stream, { headers: { 'content-type': 'application/x-ndjson' } });
    } catch (error) {
      throw failure(error);
    } finally {
      if (!streaming) done();
    }
  });

  app.get('/health', async (c) => {
    const readiness = await checkOllama(ollama, model, { signal: c.req.raw.signal, withinMs: deps.healthTimeoutMs });
    if (!readiness.ok) return c.json({ status: 'unavailable', error: readiness.error, ollama: ollama.host, model }, 503);
    return c.json({ status: 'ok', ollama: ollama.host, ollama_version: readiness.version, model, in_flight: tracker.count });
  });

  refuseOtherMethods(app, { '/receive': ['POST'], '/health': ['GET'] });

  return app;
}

function sizeText(bytes: number): string {
  return bytes >= MIB && bytes % MIB === 0 ? `${bytes / MIB} MiB` : `${bytes} bytes`;
}
