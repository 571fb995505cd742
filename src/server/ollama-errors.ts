import { ApiError } from './errors.js';
import { NotOllamaAnswerError } from './ollama-answer-guard.js';
import { OllamaSilentError } from './ollama-connection.js';

/** Ollama's words for a model it does not have: `model "x" not found, try pulling it first` (chat), `model 'x' not found` (show). */
const MODEL_NOT_FOUND = /\bmodel ["'][^"']*["'] not found\b/i;

const SILENCE_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/**
 * Turns what the ollama client throws into an error that tells the user what to do. The status
 * says whether another instance could do better: a 503 means nothing was done (Ollama down,
 * busy, missing the model, or not there at all), which the registrar answers by trying the next
 * instance. The client's `ResponseError` is not exported, so it is recognised by name (ollama-js
 * issue #18).
 */
export function describeOllamaError(error: unknown, host: string, model: string): ApiError {
  if (error instanceof NotOllamaAnswerError) return describeNotOllama(error, host);
  if (error instanceof OllamaSilentError) return new ApiError(504, `Ollama at ${host} ${error.message}`);
  // 503 from here on for what failed in this instance's Ollama: whatever it had produced has not
  // reached the caller (an answer is sent whole, or a stream once its first piece came), so
  // another instance may still answer.
  if (error instanceof OllamaLostError) {
    return new ApiError(503, `Lost Ollama at ${host} in the middle of the answer: ${error.message}. Did it stop or crash? \`ollama ps\` and its log there tell`);
  }
  const e = error as { name?: string; message?: string; status_code?: number; error?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'ResponseError') {
    const detail = e.error ?? e.message ?? 'unknown error';
    if (e.status_code === 404 && MODEL_NOT_FOUND.test(detail)) {
      return new ApiError(503, `Model ${model} is not available in Ollama at ${host}: run \`ollama pull ${model}\` there, or pick another with --model`);
    }
    // "server busy, please try again.  maximum pending requests exceeded": its queue is full.
    if (e.status_code === 503) return new ApiError(503, `Ollama at ${host} is busy: it answered 503: ${detail}`);
    // Its runner crashed ("llama runner process has terminated"), out of memory: this Ollama's
    // trouble. A 4xx is the request's, which another instance would refuse as well.
    const status = e.status_code !== undefined && e.status_code >= 500 ? 503 : 502;
    return new ApiError(status, `Ollama at ${host} answered ${e.status_code ?? 'an error'}: ${detail}`);
  }
  if (e.cause?.code && SILENCE_CODES.has(e.cause.code)) {
    return new ApiError(504, `Ollama at ${host} stopped answering in the middle of the answer (${e.cause.code})`);
  }
  // fetch never connects to some ports (1, 6000, 6665-6669…: the Fetch standard's "bad ports").
  if (e.name === 'TypeError' && e.cause?.message === 'bad port') {
    return new ApiError(
      503,
      `Ollama cannot be reached at ${host}: that port is one web clients refuse to connect to (a "bad port" of the Fetch standard). Run Ollama on another port, such as its default 11434`,
    );
  }
  // fetch's own failure is a TypeError with the network error as its cause; a TypeError without
  // one came from reading an answer of the wrong shape (a JSON API that is not Ollama's).
  if (e.name === 'TypeError' && !e.cause) {
    return new ApiError(502, `Ollama at ${host} answered with something that is not Ollama's answer (${e.message ?? String(error)}): is --ollama-host / OLLAMA_HOST Ollama?`);
  }
  if (e.name === 'TypeError' || e.cause?.code) {
    const cause = e.cause?.code ?? e.cause?.message ?? e.message ?? String(error);
    // Ollama itself speaks plain http: https to it fails the TLS handshake, not the connection.
    if (host.startsWith('https:') && /^(EPROTO|ERR_SSL_)/.test(cause)) {
      return new ApiError(
        503,
        `Ollama at ${host} does not speak TLS (${cause}): Ollama serves plain http, so use http:// (or put a TLS proxy in front of it)`,
      );
    }
    return new ApiError(503, `Ollama is not reachable at ${host}: ${cause}. Start it with \`ollama serve\`, or point --ollama-host / OLLAMA_HOST at it`);
  }
  // An {"error"} line in Ollama's stream (CUDA out of memory), a line that is not JSON: Ollama's.
  return new ApiError(503, `Ollama at ${host} failed while answering: ${e.message ?? String(error)}`);
}

/** Ollama's connection broke after it began to answer (it crashed, or the network dropped). */
export class OllamaLostError extends Error {
  override readonly name = 'OllamaLostError';
}

const LOSS_WORDS: Record<string, string> = {
  UND_ERR_SOCKET: 'the connection closed',
  ECONNRESET: 'the connection was reset',
};

/**
 * What the client throws when an answer's body stops short, as an OllamaLostError; anything else
 * (Ollama's own error line, a line that is not JSON) as it was.
 */
export function lostMidAnswer(error: unknown): unknown {
  const e = error as { name?: string; cause?: { code?: string } };
  const code = e.cause?.code;
  if (e.name !== 'TypeError' || code === undefined || SILENCE_CODES.has(code)) return error;
  return new OllamaLostError(`${LOSS_WORDS[code] ?? 'the connection broke'} (${code})`, { cause: error });
}

function describeNotOllama(error: NotOllamaAnswerError, host: string): ApiError {
  const what = `${error.request} answered ${error.status}: ${error.detail}`;
  if (error.status === 404) return new ApiError(503, `${host} does not look like Ollama (${what}): point --ollama-host / OLLAMA_HOST at Ollama`);
  // A proxy in front of Ollama speaks for it: its 503 still means nothing was done.
  return new ApiError(error.status === 503 ? 503 : 502, `Ollama at ${host} answered with something that is not Ollama's answer (${what})`);
}
