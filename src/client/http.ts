import { excerpt, printable } from '../terminal-text.js';

/** A request that reached nothing, or was answered with a non-2xx status. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  /** The HTTP status, or undefined when no answer came back at all. */
  readonly status: number | undefined;
  readonly url: string;
  /** The server's parsed JSON body, when it sent one. */
  readonly body: unknown;
  /**
   * The instance a forward reached, when the answer is that service's rather than the registrar's
   * (the registrar names it in `x-svcmesh-instance`): its 401 is about the registrar's token for
   * it, not about the caller's.
   */
  readonly instance: string | undefined;
  /** What to do next, printed under the message (a command adds it once it knows more). */
  hint?: string;

  constructor(message: string, options: { status?: number; url: string; body?: unknown; cause?: unknown; instance?: string }) {
    super(message, { cause: options.cause });
    this.status = options.status;
    this.url = options.url;
    this.body = options.body;
    this.instance = options.instance;
  }
}

export type { ClientFetch as Fetch, ClientRequest, ClientResponse } from './node-fetch.js';
import { BrokenEncoding, TooLong, type ClientFetch as Fetch, type ClientRequest, type ClientResponse } from './node-fetch.js';

function unreachable(url: string, error: unknown, signal: AbortSignal | undefined): HttpError {
  const e = error as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  const timedOut = e.name === 'TimeoutError' || (signal?.reason as Error | undefined)?.name === 'TimeoutError';
  const cause = timedOut ? 'no answer in time' : (e.code ?? e.cause?.code ?? e.cause?.message ?? e.message ?? String(error));
  return new HttpError(`Cannot reach ${url}: ${cause}`, { url, cause: error });
}

/** fetch, with a refused or failed connection turned into an HttpError that names the URL. */
export async function send(fetchImpl: Fetch, url: string, init: ClientRequest): Promise<ClientResponse> {
  try {
    return await fetchImpl(url, init);
  } catch (error) {
    const timedOut = (init.signal?.reason as Error | undefined)?.name === 'TimeoutError';
    if (init.signal?.aborted && !timedOut) throw error;
    throw unreachable(url, error, init.signal);
  }
}

/** Throws an HttpError for a non-2xx answer, with the server's `{"error"}` message when it sent one. */
export async function checkOk(response: ClientResponse, url: string): Promise<ClientResponse> {
  if (response.ok) return response;
  const text = await response.text().catch(() => '');
  let body: unknown = text;
  // An error page (a proxy's 502, a stack dump) can run to kilobytes: a line of it says enough.
  let detail = excerpt(text) || response.statusText;
  try {
    body = JSON.parse(text);
    const error = (body as { error?: unknown }).error;
    if (typeof error === 'string') detail = error;
  } catch {
    // Not JSON: the excerpt of the text it is.
  }
  // The server's words go to a terminal: its escapes and line breaks are shown, not obeyed.
  const instance = response.headers.get('x-svcmesh-instance') ?? undefined;
  throw new HttpError(`${url} answered ${response.status}: ${printable(detail)}`, { status: response.status, url, body, instance });
}

/** Reads a JSON body; an answer that is not JSON is an HttpError too. */
export async function readJson<T>(response: ClientResponse, url: string): Promise<{ text: string; json: T }> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    // Ctrl-C (the caller's own abort) is the caller's to report; a cut or a timeout is the answer's.
    const e = error as { name?: string; cause?: { name?: string } };
    if (e.name === 'AbortError' && e.cause?.name !== 'TimeoutError') throw error;
    throw lost(url, response.status, error);
  }
  if (text.trim() === '') {
    throw new HttpError(`${url} answered ${response.status} with an empty body, where JSON was expected`, { status: response.status, url });
  }
  try {
    return { text, json: JSON.parse(text) as T };
  } catch {
    throw new HttpError(`${url} answered with something that is not JSON: ${printable(excerpt(text, 200))}`, { status: response.status, url });
  }
}

/**
 * Yields each line of an NDJSON body as it arrives (the raw text and the parsed value). The
 * answer had begun (its status came back), so a failure from here on is an HttpError with that
 * status: the server was reached, and then lost or misbehaved.
 */
export async function* ndjsonLines(response: ClientResponse, url: string): AsyncGenerator<{ text: string; value: unknown }> {
  if (!response.body) return;
  const decoder = new TextDecoder();
  // The line so far, in pieces: looking for its end in the new bytes only, and joining it once,
  // keeps a long line from costing the square of its length.
  let pieces: string[] = [];
  let pending = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      let start = 0;
      // A line feed byte is never part of a longer UTF-8 character: the bytes before it decode whole.
      for (let newline = chunk.indexOf(LF); newline !== -1; newline = chunk.indexOf(LF, start)) {
        pieces.push(decoder.decode(chunk.subarray(start, newline), { stream: true }));
        const text = pieces.join('').trim();
        pieces = [];
        pending = 0;
        start = newline + 1;
        if (text) yield parseLine(text, url, response.status);
      }
      const rest = decoder.decode(chunk.subarray(start), { stream: true });
      pieces.push(rest);
      pending += rest.length;
      if (pending > MAX_LINE_CHARS) {
        throw new HttpError(`${url} streamed a line longer than ${MAX_LINE_CHARS / 1024 / 1024} Mi characters, more than one line of an answer holds: the answer stops here`, {
          status: response.status,
          url,
        });
      }
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw lost(url, response.status, error);
  }
  const last = (pieces.join('') + decoder.decode()).trim();
  if (last) yield parseLine(last, url, response.status);
}

/** One NDJSON line of an answer is a few words; a line this long is not an answer's. */
const MAX_LINE_CHARS = 64 * 1024 * 1024;
const LF = 0x0a;

/** The connection broke while the answer was streaming (the server stopped or was killed). */
function lost(url: string, status: number, error: unknown): HttpError {
  // Nothing was lost: the answer came whole, in a coding that does not decode.
  if (error instanceof BrokenEncoding || error instanceof TooLong) return new HttpError(`${url} answered, but ${error.message}`, { status, url, cause: error });
  const e = error as { name?: string; code?: string; message?: string; cause?: { name?: string } };
  const timedOut = e.name === 'TimeoutError' || e.cause?.name === 'TimeoutError';
  const cause = timedOut
    ? 'the rest of it did not come in time'
    : e.message === 'aborted'
      ? `the connection closed before the answer ended (${e.code ?? 'aborted'})`
      : (e.code ?? e.message ?? String(error));
  return new HttpError(`Lost the registrar at ${url} in the middle of the answer: ${cause}`, { status, url, cause: error });
}

function parseLine(text: string, url: string, status: number): { text: string; value: unknown } {
  try {
    return { text, value: JSON.parse(text) };
  } catch {
    throw new HttpError(`${url} streamed a line that is not JSON, so the answer stops here: ${printable(excerpt(text, 200))}`, { status, url });
  }
}
