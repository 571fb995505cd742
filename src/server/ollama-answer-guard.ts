/**
 * What comes back from the Ollama host, checked before the ollama client reads it. The client
 * prints debug text into our output (`console.log` on an error body that is not JSON,
 * `console.warn` on a line that is not JSON) and drops a bad line as if nothing were missing;
 * here such answers become errors that say what came back instead.
 */

/**
 * The Ollama host answered with something that is not Ollama's (a page from a proxy, from another
 * server, or from a wrong path): Ollama's own errors are always JSON `{"error": …}`.
 */
export class NotOllamaAnswerError extends Error {
  override readonly name = 'NotOllamaAnswerError';
  constructor(
    /** `GET /api/version`: what was asked. */
    readonly request: string,
    readonly status: number,
    /** The start of what came back, for the message. */
    readonly detail: string,
  ) {
    super(`${request} answered ${status}: ${detail}`);
  }
}

const SHOWN_CHARS = 200;

function shorten(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > SHOWN_CHARS ? `${flat.slice(0, SHOWN_CHARS)}…` : flat;
}

function ollamaErrorText(body: string): string | undefined {
  try {
    const value = JSON.parse(body) as { error?: unknown };
    return typeof value?.error === 'string' ? value.error : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Passes Ollama's answers on as they are, and throws a NotOllamaAnswerError for an error answer
 * that is not Ollama's. A streamed answer is passed through a check of its lines.
 */
export async function guardOllamaAnswer(response: Response, request: string): Promise<Response> {
  if (!response.ok) {
    const body = await response.text().catch(() => '');
    // Ollama answers every GET of its API (version, tags): a 404 there, even in Ollama's JSON shape
    // (another JSON API, such as a registrar pointed at by mistake), is not Ollama.
    if (ollamaErrorText(body) === undefined || (response.status === 404 && request.startsWith('GET '))) throw new NotOllamaAnswerError(request, response.status, shorten(body) || response.statusText || 'no body');
    // Read to look at it: handed on whole, as Ollama sent it (its content type is what the client keys on).
    return new Response(body, { status: response.status, statusText: response.statusText, headers: { 'content-type': 'application/json' } });
  }
  if (!response.body || !response.headers.get('content-type')?.includes('application/x-ndjson')) return response;
  return new Response(response.body.pipeThrough(checkedLines()), { status: response.status, statusText: response.statusText, headers: response.headers });
}

const encoder = new TextEncoder();

/**
 * Passes whole NDJSON lines on; a line that is not JSON ends the stream with Ollama's in-stream
 * error shape, which the client throws, so a piece missing from the middle of an answer is a
 * failure rather than a shorter answer. Ending it here also cancels the request upstream.
 */
function checkedLines(): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let partial = '';
  const pass = (lines: string[], controller: TransformStreamDefaultController<Uint8Array>): void => {
    let whole = '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        JSON.parse(line);
      } catch {
        whole += `${JSON.stringify({ error: `Ollama sent a line that is not JSON: ${shorten(line)}` })}\n`;
        controller.enqueue(encoder.encode(whole));
        controller.terminate();
        return;
      }
      whole += `${line}\n`;
    }
    if (whole) controller.enqueue(encoder.encode(whole));
  };
  return new TransformStream({
    transform(chunk, controller) {
      const lines = (partial + decoder.decode(chunk, { stream: true })).split('\n');
      partial = lines.pop() ?? '';
      pass(lines, controller);
    },
    flush(controller) {
      pass([partial + decoder.decode()], controller);
    },
  });
}
