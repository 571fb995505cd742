import { setMaxListeners } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { tokenCheck } from './auth.js';
import { refuseCrossSite } from './cross-site.js';
import { errorAnswer } from './errors.js';
import { acceptHeartbeat, type HeartbeatDeps, heartbeatBody, REREGISTERED_HEADER } from './heartbeat.js';
import { type ChunkSource, EMPTY, type ForwardAnswer, type Forwarder, hasNoBody, isEncoded } from './forwarder.js';
import type { FastPath } from './start.js';
import { forwardBody, MAX_BODY_BYTES, parseJsonText, refuseEncodedBody, tooLarge } from './validation.js';
import { type ServicesAnswer, servicesAnswer } from './services-answer.js';
import { traceHeaders } from './trace-headers.js';
import { servicesBody } from './wire.js';

const SMALL_BODY_BYTES = 16 * 1024;
const REREGISTERED_ANSWER = { [REREGISTERED_HEADER]: 'true' };
const CLOSE_CONNECTION = { connection: 'close' };

export interface RegistrarFastPathDeps extends HeartbeatDeps {
  forwarder: Forwarder;
  token?: string;
  protectReads?: boolean;
  /**
   * Aborted when a shutdown's drain time is over, with the reason as a message: a streamed answer
   * still flowing then ends with an `{"error"}` line that says so, rather than just stopping.
   */
  cutStreams?: AbortSignal;
}

/**
 * The registrar's hot routes, GET /services, POST /forward and POST /heartbeat, answered from
 * node's request and response. Through Hono each would build a web Request, a Headers and a
 * Response; a registrar sits on every request path, and those objects cost a forward about a
 * third of its rate and a GET /services about a quarter.
 * The Hono app keeps the same routes (for `app.request()` and as the reference): both share the
 * schemas, the token check, the cached catalog, the heartbeat's rules and the forwarder, and the
 * tests hold them to the same answers.
 */
export function createRegistrarFastPath(deps: RegistrarFastPathDeps): FastPath {
  const { registry, forwarder } = deps;
  const checkToken = deps.token ? tokenCheck(deps.token) : undefined;
  // Every forward in flight listens to it: as many as the callers (Node warns past ten).
  if (deps.cutStreams) setMaxListeners(0, deps.cutStreams);
  const readsOpen = !(deps.token && deps.protectReads);

  return (request, response) => {
    const url = request.url ?? '';
    // HEAD too: node leaves the body out and keeps its Content-Length, which a HEAD must carry.
    if ((request.method === 'GET' || request.method === 'HEAD') && readsOpen && isPath(url, '/services')) {
      let body: ReturnType<typeof servicesBody>;
      try {
        body = servicesBody(registry);
      } catch {
        // Nothing is written yet: the app answers it, with its error shape (503 for a store down).
        return false;
      }
      const answer = servicesAnswer(body, { acceptEncoding: headerText(request.headers['accept-encoding']), ifNoneMatch: headerText(request.headers['if-none-match']) });
      if (answer instanceof Promise) answer.then((ready) => writeServices(response, ready), (error) => answerError(response, error, 'GET /services'));
      else writeServices(response, answer);
      return true;
    }
    if (request.method === 'POST' && isPath(url, '/forward')) {
      forward(request, response);
      return true;
    }
    if (request.method === 'POST' && isPath(url, '/heartbeat')) {
      heartbeat(request, response);
      return true;
    }
    return false;
  };

  // Every instance of the fleet sends one every few seconds: at 100 000 instances, the most
  // frequent request a registrar answers.
  function heartbeat(request: IncomingMessage, response: ServerResponse): void {
    withBody(request, response, heartbeatBody, 'POST /heartbeat', (body, fail) => {
      acceptHeartbeat(deps, body).then(
        ({ message, reregistered }) => writeJson(response, 200, { message }, reregistered ? REREGISTERED_ANSWER : undefined),
        fail,
      );
    });
  }

  /**
   * What the app does before a write route: the token, then the body within its limit, then the
   * schema. Anything wrong is answered here, in the app's error shape.
   */
  function withBody<T extends z.ZodType>(
    request: IncomingMessage,
    response: ServerResponse,
    schema: T,
    where: string,
    then: (body: z.infer<T>, fail: (error: unknown) => void) => void,
  ): void {
    const fail = (error: unknown) => answerError(response, error, where);
    try {
      const { headers } = request;
      refuseCrossSite(headers.origin, headerText(headers['sec-fetch-site']), headers.host);
      checkToken?.(headers.authorization);
    } catch (error) {
      fail(error);
      return;
    }
    readBody(request, (error, text) => {
      let body: z.infer<T>;
      try {
        if (error) throw error;
        body = parseJsonText(text!, schema);
      } catch (invalid) {
        fail(invalid);
        return;
      }
      then(body, fail);
    });
  }

  // Callbacks rather than awaits from the body to the answer: a forward is the registrar's
  // busiest path, and its rate is what the mesh pays on every hop.
  function forward(request: IncomingMessage, response: ServerResponse): void {
    withBody(request, response, forwardBody, 'POST /forward', (body, fail) => {
      const { headers } = request;
      const trace = traceHeaders((name) => headerText(headers[name]));
      const cancel = forwarder.start(
        { from: body.from, to: body.to, message: body.message, stream: body.stream === true, history: body.history, trace },
        (failure, answer) => {
          if (failure) fail(failure);
          else if (answer!.stream) relay(answer!, answer!.stream, response, deps.cutStreams).catch(fail);
          else writeWhole(response, answer!);
        },
      );
      if (response.writableFinished) return;
      // The caller leaving before the answer ends the forward (and with it the target's work);
      // once a streamed answer flows, relay() looks after it.
      // The drain time ran out before the target answered: say so with a status, rather than
      // let the cut connection look like an empty 200. A listener on the signal itself: measured
      // side by side, a shared set of callbacks cost the forward's p99 a quarter more.
      const cut = deps.cutStreams;
      const onCut = () => {
        if (response.headersSent || response.destroyed) return;
        writeJson(response, 503, { error: String(cut!.reason) }, CLOSE_CONNECTION);
        cancel();
      };
      cut?.addEventListener('abort', onCut, { once: true });
      response.once('close', () => {
        cut?.removeEventListener('abort', onCut);
        if (!response.writableFinished) cancel();
      });
    });
  }
}

function isPath(url: string, path: string): boolean {
  return url.startsWith(path) && (url.length === path.length || url[path.length] === '?');
}

/** The body as text, refused with 413 past 1 MiB (declared or counted as it arrives). */
function readBody(request: IncomingMessage, done: (error: unknown, text?: string) => void): void {
  try {
    refuseEncodedBody(request.headers['content-encoding']);
  } catch (error) {
    request.resume();
    done(error);
    return;
  }
  const declared = request.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) {
    done(tooLarge());
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  const onData = (chunk: Buffer) => {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) {
      over = true;
      request.off('data', onData);
      request.resume();
      done(tooLarge());
      return;
    }
    chunks.push(chunk);
  };
  request.on('data', onData);
  request.once('end', () => {
    if (!over) done(undefined, chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'));
  });
  request.once('error', (error) => {
    if (over) return;
    over = true;
    done(error);
  });
}

function writeServices(response: ServerResponse, answer: ServicesAnswer): void {
  if (response.destroyed) return;
  // The answer's own header object, shared by every request for this catalog: node only reads it.
  response.writeHead(answer.status, answer.headers as Record<string, string | number>);
  if (answer.status === 304) response.end();
  // A short string leaves node's socket in one write together with the headers; a large catalog
  // goes as the bytes kept, rather than being encoded again.
  else response.end(answer.text !== undefined && answer.bytes.byteLength <= SMALL_BODY_BYTES ? answer.text : answer.bytes);
}

function writeWhole(response: ServerResponse, answer: ForwardAnswer): void {
  if (hasNoBody(answer.status)) {
    response.writeHead(answer.status, answer.headers);
    response.end();
    return;
  }
  // The bytes as the target sent them: decoding and encoding again would spoil any that are not UTF-8.
  const body = answer.body ?? EMPTY;
  // The headers are this answer's own: adding to them spares a copy per forward.
  const headers: Record<string, string | number> = answer.headers;
  headers['content-length'] = body.byteLength;
  response.writeHead(answer.status, headers);
  response.end(body);
}


/** Relays a streamed answer chunk by chunk, at the pace the caller reads it. */
async function relay(answer: ForwardAnswer, stream: ChunkSource, response: ServerResponse, cut?: AbortSignal): Promise<void> {
  if (response.destroyed) {
    stream.cancel();
    return;
  }
  response.writeHead(answer.status, answer.headers);
  const onClose = () => {
    if (!response.writableFinished) stream.cancel();
  };
  response.once('close', onClose);
  let atLineStart = true;
  const encoded = isEncoded(answer.headers);
  const onCut = () => {
    if (response.writableEnded || response.destroyed) return;
    if (encoded) {
      // A line of text inside a compressed body would only break the caller's decoder.
      response.destroy();
      stream.cancel();
      return;
    }
    const line = JSON.stringify({ error: String(cut!.reason) });
    response.end(`${atLineStart ? '' : '\n'}${line}\n`);
    stream.cancel();
  };
  if (cut?.aborted) onCut();
  cut?.addEventListener('abort', onCut, { once: true });
  try {
    await relayChunks(stream, response, (chunk) => {
      if (chunk.byteLength > 0) atLineStart = chunk[chunk.byteLength - 1] === 0x0a;
    });
  } finally {
    cut?.removeEventListener('abort', onCut);
  }
}

async function relayChunks(stream: ChunkSource, response: ServerResponse, sent: (chunk: Uint8Array) => void): Promise<void> {
  for (;;) {
    const chunk = await stream.read();
    if (!chunk || response.destroyed || response.writableEnded) break;
    sent(chunk);
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
function answerError(response: ServerResponse, error: unknown, where: string): void {
  // The caller left (which aborted the forward): there is no one to answer. Or the answer was
  // given already (the drain's 503) and this is the forward it cancelled, ending.
  if (response.destroyed || response.writableEnded) return;
  const { status, message, headers } = errorAnswer(error, where);
  if (response.headersSent) {
    response.destroy();
    return;
  }
  writeJson(response, status, { error: message }, headers);
}

function writeJson(response: ServerResponse, status: number, value: unknown, headers?: Readonly<Record<string, string>>): void {
  if (response.destroyed) return;
  const body = JSON.stringify(value);
  response.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
