import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from '../registry/registry.js';
import { tokenCheck } from './auth.js';
import { errorAnswer } from './errors.js';
import type { CallerSignal, ChunkSource, ForwardAnswer, Forwarder } from './forwarder.js';
import type { FastPath } from './start.js';
import { forwardBody, MAX_BODY_BYTES, parseJsonText, tooLarge } from './validation.js';
import { servicesBody } from './wire.js';

const SMALL_BODY_BYTES = 16 * 1024;

export interface RegistrarFastPathDeps {
  registry: Registry;
  forwarder: Forwarder;
  token?: string;
  protectReads?: boolean;
}

/**
 * The registrar's two hot routes, GET /services and POST /forward, answered from node's request
 * and response. Through Hono each would build a web Request, a Headers and a Response; a
 * registrar sits on every request path, and those objects cost a forward about a third of its
 * rate and a GET /services about a quarter.
 * The Hono app keeps the same routes (for `app.request()` and as the reference): both share the
 * schema, the token check, the cached catalog and the forwarder, and the tests hold them to the
 * same answers.
 */
export function createRegistrarFastPath(deps: RegistrarFastPathDeps): FastPath {
  const { registry, forwarder } = deps;
  const checkToken = deps.token ? tokenCheck(deps.token) : undefined;
  const readsOpen = !(deps.token && deps.protectReads);

  return (request, response) => {
    const url = request.url ?? '';
    if (request.method === 'GET' && readsOpen && isPath(url, '/services')) {
      let body: ReturnType<typeof servicesBody>;
      try {
        body = servicesBody(registry);
      } catch {
        // Nothing is written yet: the app answers it, with its error shape (503 for a store down).
        return false;
      }
      const { text, bytes } = body;
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.byteLength });
      // A short string leaves node's socket in one write together with the headers; a large
      // catalog goes as the bytes kept, rather than being encoded again.
      response.end(bytes.byteLength <= SMALL_BODY_BYTES ? text : bytes);
      return true;
    }
    if (request.method === 'POST' && isPath(url, '/forward')) {
      forward(request, response).catch((error: unknown) => answerError(response, error));
      return true;
    }
    return false;
  };

  async function forward(request: IncomingMessage, response: ServerResponse): Promise<void> {
    checkToken?.(request.headers.authorization);
    const body = parseJsonText(await readBody(request), forwardBody);
    // The caller leaving aborts the forward (and with it the target's work).
    const callerGone = new CallerGone();
    response.once('close', () => {
      if (!response.writableFinished) callerGone.abort();
    });
    const answer = await forwarder.forward(
      { from: body.from, to: body.to, message: body.message, stream: body.stream === true },
      callerGone,
    );
    if (answer.stream) await relay(answer, answer.stream, response);
    else writeWhole(response, answer);
  }
}

/**
 * Aborts a forward when its caller leaves. An AbortController would do, but making one per
 * request (an EventTarget underneath) cost a short forward about 5% of its rate.
 */
class CallerGone implements CallerSignal {
  aborted = false;
  reason: unknown;
  #listeners: (() => void)[] = [];

  addEventListener(_type: 'abort', listener: () => void): void {
    this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const index = this.#listeners.indexOf(listener);
    if (index !== -1) this.#listeners.splice(index, 1);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = new DOMException('The caller went away', 'AbortError');
    for (const listener of this.#listeners.splice(0)) listener();
  }
}

function isPath(url: string, path: string): boolean {
  return url.startsWith(path) && (url.length === path.length || url[path.length] === '?');
}

/** The body as text, refused with 413 past 1 MiB (declared or counted as it arrives). */
function readBody(request: IncomingMessage): Promise<string> {
  const declared = request.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > MAX_BODY_BYTES) {
        request.removeAllListeners('data');
        request.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    request.once('end', () => resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')));
    request.once('error', reject);
  });
}

function writeWhole(response: ServerResponse, answer: ForwardAnswer): void {
  const text = answer.text ?? '';
  response.writeHead(answer.status, { ...answer.headers, 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/** Relays a streamed answer chunk by chunk, at the pace the caller reads it. */
async function relay(answer: ForwardAnswer, stream: ChunkSource, response: ServerResponse): Promise<void> {
  if (response.destroyed) {
    stream.cancel();
    return;
  }
  response.writeHead(answer.status, answer.headers);
  const onClose = () => {
    if (!response.writableFinished) stream.cancel();
  };
  response.once('close', onClose);
  for (;;) {
    const chunk = await stream.read();
    if (!chunk || response.destroyed) break;
    if (!response.write(chunk)) {
      await new Promise<void>((resolve) => {
        const go = () => {
          response.off('drain', go);
          response.off('close', go);
          resolve();
        };
        response.on('drain', go);
        response.on('close', go);
      });
    }
  }
  response.end();
}

/** The app's error shape: `{"error": message}` with the status the error carries. */
function answerError(response: ServerResponse, error: unknown): void {
  // The caller left (which aborted the forward): there is no one to answer.
  if (response.destroyed) return;
  const { status, message } = errorAnswer(error, 'POST /forward');
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = JSON.stringify({ error: message });
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}
