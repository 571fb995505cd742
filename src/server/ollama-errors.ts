import { ApiError } from './errors.js';

/**
 * Turns what the ollama client throws into an error that tells the user what to do. The client's
 * `ResponseError` is not exported, so it is recognised by name (ollama-js issue #18).
 */
export function describeOllamaError(error: unknown, host: string, model: string): ApiError {
  const e = error as { name?: string; message?: string; status_code?: number; error?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'ResponseError') {
    const detail = e.error ?? e.message ?? 'unknown error';
    if (e.status_code === 404 && /not found/i.test(detail)) {
      return new ApiError(503, `Model ${model} is not available in Ollama at ${host}: run \`ollama pull ${model}\` there, or pick another with --model`);
    }
    return new ApiError(502, `Ollama at ${host} answered ${e.status_code ?? 'an error'}: ${detail}`);
  }
  if (e.name === 'TypeError' || e.cause?.code) {
    const cause = e.cause?.code ?? e.cause?.message ?? e.message ?? String(error);
    return new ApiError(503, `Ollama is not reachable at ${host}: ${cause}. Start it with \`ollama serve\`, or point --ollama-host / OLLAMA_HOST at it`);
  }
  return new ApiError(502, `Ollama at ${host} failed while answering: ${e.message ?? String(error)}`);
}
