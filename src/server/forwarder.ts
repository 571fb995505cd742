import { Agent, type Dispatcher } from 'undici';
import { keepRelayed, RELAYED_HEADERS } from './relayed-headers.js';
import type { Registry } from '../registry/registry.js';
import type { Instance } from '../registry/types.js';
import type { TargetHeaders } from '../target-tokens.js';
import type { ChatTurn } from '../wire-types.js';
import { ApiError } from './errors.js';
import { type ForwardObserver, UNREGISTERED_TARGET } from './metrics.js';
import { AnswerTooLarge, createPlainHttpPool, TargetError } from './plain-http-pool.js';
import type { Logger } from './request-log.js';

export interface ForwardRequest {
  from: string;
  to: string;
  message: string;
  stream: boolean;
  /** Passed on to the target's /receive as it came, when the caller sent one. */
  history?: readonly ChatTurn[];
  /** The caller's trace context (see trace-headers.ts), sent on to the target. */
  trace?: Readonly<Record<string, string>>;
}

export interface ForwarderOptions {
  registry: Registry;
  /** How long an instance may take to start answering, and the longest pause inside an answer. */
  timeoutMs: number;
  /**
   * Instances that may time out for one request before it gives up (504). Instances that refuse
   * or drop the connection cost next to nothing, so every instance is tried before a 502.
   */
  maxTimeouts?: number;
  /**
   * The longest answer read whole (64 MiB by default); past it the forward is a 502 rather than
   * the registrar holding it all in memory. A streamed answer has no such limit: it is relayed
   * as it comes.
   */
  maxAnswerBytes?: number;
  dispatcher?: Dispatcher;
  /** Extra headers for the targets, e.g. the token a protected `/receive` asks for. */
  targetHeaders?: TargetHeaders;
  /** Hosts a forward may go to (`--allow-hosts`); others are never contacted. */
  allowHost?: (hostname: string) => boolean;
  observer?: ForwardObserver;
  /** Where a failed attempt is told; stderr by default. */
  logger?: Logger;
}

/**
 * How a forward learns that its caller went away: an AbortSignal, or anything with the same
 * members (the registrar's fast path uses one cheaper to make than an AbortController).
 */
export interface CallerSignal {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface Forwarder {
  forward(request: ForwardRequest, signal?: CallerSignal): Promise<ForwardAnswer>;
  /**
   * The same forward with a callback, called once: the registrar's fast path, where a promise,
   * an abort signal and a close listener per step showed in the rate of short forwards. Returns
   * the function to call when the caller leaves before the answer.
   */
  start(request: ForwardRequest, done: (error: unknown, answer?: ForwardAnswer) => void): () => void;
  close(): Promise<void>;
}

/**
 * A target's answer, ready to be relayed: either whole (`body`, its bytes as they came: a target
 * may answer in another encoding than UTF-8, or in binary) or as it comes (`stream`). It is no
 * web Response so the registrar's node fast path can write it without building one.
 */
export interface ForwardAnswer {
  status: number;
  headers: Record<string, string>;
  body?: Uint8Array;
  stream?: ChunkSource;
}

/** A streamed answer's chunks; a failure mid-way reads as one final error line. */
export interface ChunkSource {
  /** The next chunk, or undefined once the answer is over. */
  read(): Promise<Uint8Array | undefined>;
  /** The caller went away: closing the upstream body aborts the target's generation too. */
  cancel(): void;
}

const encoder = new TextEncoder();
const NEWLINE = 0x0a;
/** Failures that mean the target answered, but not in HTTP the registrar can relay. */
const BAD_ANSWER_CODES = new Set(['BAD_ANSWER', 'UND_ERR_HEADERS_OVERFLOW']);

const TIMEOUT_CODES = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'HEADERS_TIMEOUT',
  'BODY_TIMEOUT',
  'CONNECT_TIMEOUT',
]);

interface ReceiveTarget {
  origin: string;
  path: string;
  hostname: string;
  /** For a plain-http target: where to connect (IPv6 without brackets) and the Host header. */
  plain?: { hostname: string; port: number; host: string };
}

/** Where an instance's `/receive` is; parsed once per instance URL, not once per forward. */
function receiveTargets(): (serviceUrl: string) => ReceiveTarget {
  const known = new Map<string, ReceiveTarget>();
  return (serviceUrl) => {
    let target = known.get(serviceUrl);
    if (!target) {
      const url = new URL(serviceUrl);
      url.pathname = `${url.pathname.replace(/\/+$/, '')}/receive`;
      target = { origin: url.origin, path: url.pathname + url.search, hostname: url.hostname };
      if (url.protocol === 'http:') {
        target.plain = { hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 80), host: url.host };
      }
      // Bounded: a registry that churns through many URLs must not grow this forever.
      if (known.size >= 10_000) known.clear();
      known.set(serviceUrl, target);
    }
    return target;
  };
}

/** Why an answer stopped coming, in words; the code stays in brackets for a search. */
function lossInWords(error: unknown): string {
  if (error instanceof TargetError && error.code === 'BODY_TIMEOUT') return `it went silent for longer than --forward-timeout (${error.message})`;
  const cause = causeOf(error);
  const words: Record<string, string> = {
    UND_ERR_SOCKET: 'the connection closed',
    ECONNRESET: 'the connection was reset',
    UND_ERR_BODY_TIMEOUT: 'it went silent for longer than --forward-timeout',
  };
  return words[cause] ? `${words[cause]} (${cause})` : cause;
}

function causeOf(error: unknown): string {
  // The registrar's own client says what was wrong with the answer; the code alone would not.
  if (error instanceof TargetError) return `${error.message} (${error.code})`;
  const e = error as { code?: string; message?: string; cause?: { code?: string } };
  return e.code ?? e.cause?.code ?? e.message ?? String(error);
}

/** The longest a connection to a target may take, TLS handshake included. */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * Sends a message to one live instance of a service over pooled keep-alive connections. An
 * instance that cannot be reached or stays silent before answering is skipped for the next one;
 * once an answer has begun to flow back it is never switched, and a failure ends it with an
 * explicit error line.
 */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const { registry, timeoutMs } = options;
  const maxTimeouts = options.maxTimeouts ?? 3;
  const maxAnswerBytes = options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES;
  // Connecting (a TLS handshake included) is part of the wait --forward-timeout bounds: a shorter
  // timeout must not wait out the 5 s a connection may otherwise take.
  const connectTimeoutMs = Math.min(CONNECT_TIMEOUT_MS, timeoutMs);
  const agent =
    // Headers up to 64 KiB, as the registrar's own client takes them: a streamed answer must not be
    // refused for headers a whole one is relayed with (undici's default is 16 KiB).
    options.dispatcher ?? new Agent({ keepAliveTimeout: 30_000, connections: 256, connect: { timeout: connectTimeoutMs }, maxHeaderSize: 64 * 1024 });
  // A dispatcher given is used for everything (a test's, or a proxy's).
  const plainPool = options.dispatcher ? undefined : createPlainHttpPool({ connections: 256, idleMs: 30_000, connectTimeoutMs });

  const observer = options.observer;
  const log =
    options.logger?.log ?? ((message: string, fields: Record<string, unknown>) => console.error(`svcmesh: ${message} at ${fields.instance}: ${fields.cause}`));

  const receiveTarget = receiveTargets();

  function forward(request: ForwardRequest, signal?: CallerSignal): Promise<ForwardAnswer> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      let settled = false;
      const onAbort = () => cancel();
      const cancel = start(request, (error, answer) => {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(signal?.aborted ? signal.reason : error);
        else resolve(answer!);
      });
      if (!settled) signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  function start(request: ForwardRequest, done: (error: unknown, answer?: ForwardAnswer) => void): () => void {
    const name = request.to;
    const all = registry.candidates(name);
    // Any caller can name anything: names nothing registered share one series, not one each.
    const label = all.length === 0 ? UNREGISTERED_TARGET : name;
    observer?.started(label);
    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    let over = false;
    const finish = () => {
      if (over) return;
      over = true;
      observer?.finished(label);
    };
    const fail = (error: unknown) => {
      observer?.answered(label, (error as ApiError).status ?? 499, elapsed());
      finish();
      done(error);
    };

    if (all.length === 0) {
      fail(new ApiError(404, `Service ${name} is not registered (${[caseHint(registry, name), 'GET /services lists the ones that are'].filter(Boolean).join('; ')})`));
      return noop;
    }
    const candidates = options.allowHost ? all.filter((i) => options.allowHost!(receiveTarget(i.url).hostname)) : all;
    if (candidates.length === 0) {
      fail(new ApiError(403, `Every instance of ${name} is on a host that --allow-hosts does not allow`));
      return noop;
    }
    const { from, message, history } = request;
    // Plain literals for the usual forward: this runs on every one.
    const body = history
      ? JSON.stringify(request.stream ? { from, message, stream: true, history } : { from, message, history })
      : JSON.stringify(request.stream ? { from, message, stream: true } : { from, message });
    const tries = candidates.length;
    const failed: string[] = [];
    let timeouts = 0;
    /** Of the timeouts, those that came after the answer had begun: silent in its middle. */
    let silentMidAnswer = 0;
    /** Answers that were not valid HTTP, with what was wrong with the last one. */
    let badAnswers = 0;
    let badAnswer = '';
    let cancelled = false;
    let cancelAttempt: (() => void) | undefined;
    // A 503 from an instance that was passed over for the next one: the answer if no other does.
    let unavailable: ForwardAnswer | undefined;
    const next = (index: number) => {
      if (index + 1 < tries && timeouts < maxTimeouts) attempt(index + 1);
      else if (unavailable) {
        observer?.answered(label, 503, elapsed());
        finish();
        // Every instance tried, not only the one whose 503 this is.
        unavailable.headers['x-svcmesh-attempts'] = String(index + 1);
        done(undefined, unavailable);
      } else fail(exhausted(name, failed, { timeouts, silentMidAnswer, badAnswers, badAnswer }, timeoutMs));
    };

    const attempt = (index: number) => {
      const instance = candidates[index]!;
      const target = receiveTarget(instance.url);
      const release = registry.begin(instance);
      const tokenHeaders = options.targetHeaders?.(instance);
      const extraHeaders = request.trace && tokenHeaders ? { ...request.trace, ...tokenHeaders } : (request.trace ?? tokenHeaders);
      const send = request.stream ? sendStreamed : target.plain && plainPool ? sendPlain(target.plain, extraHeaders) : sendWhole;
      cancelAttempt = send(
        {
          origin: target.origin,
          path: target.path,
          method: 'POST',
          headers: extraHeaders ? { 'content-type': 'application/json', ...extraHeaders } : JSON_HEADERS,
          body,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        },
        (error, reply) => {
          cancelAttempt = undefined;
          if (error || !reply) {
            release();
            if (cancelled) {
              fail(error);
              return;
            }
            // The instance answered, too much: another one would most likely do the same.
            if (error instanceof AnswerTooLarge) {
              fail(
                new ApiError(
                  502,
                  `${name} at ${instance.url} answered more than ${sizeText(maxAnswerBytes)}: send "stream": true to get a long answer as it comes`,
                ),
              );
              return;
            }
            // Silent (hung, frozen) is down too: otherwise every other forward waits out the
            // whole timeout on it again before moving on.
            const code = (error as { code?: string }).code ?? '';
            if (TIMEOUT_CODES.has(code)) timeouts += 1;
            if (code === 'BODY_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') silentMidAnswer += 1;
            if (BAD_ANSWER_CODES.has(code) || code.startsWith('HPE_')) {
              badAnswers += 1;
              badAnswer = code === 'UND_ERR_HEADERS_OVERFLOW' ? 'its headers were larger than 64 KiB (UND_ERR_HEADERS_OVERFLOW)' : causeOf(error);
            }
            registry.reportReachable(instance, false);
            failed.push(instance.url);
            log(`forward to ${name} failed`, { instance: instance.url, cause: causeOf(error) });
            next(index);
            return;
          }
          registry.reportReachable(instance, true);
          const headers: Record<string, string> = {
            ...reply.relayed,
            'x-svcmesh-instance': instance.url,
            'x-svcmesh-attempts': String(index + 1),
          };
          // As the target gave it: an answer without a type is not made JSON on the way.
          if (reply.contentType !== undefined) headers['content-type'] = reply.contentType;
          // 503 is an instance saying it cannot serve now (the Ollama service whose Ollama is
          // down, say), before doing anything: the next instance may. The answer is kept, and
          // given if none does.
          if (reply.status === 503 && index + 1 < tries) {
            log(`forward to ${name} answered 503, trying another instance`, { instance: instance.url });
            failed.push(instance.url);
            readWhole(reply).then((body) => {
              release();
              unavailable = { status: 503, headers, body };
              if (cancelled) fail(callerLeft());
              else next(index);
            }, (readError: unknown) => {
              release();
              if (cancelled) fail(readError);
              else next(index);
            });
            return;
          }
          observer?.answered(label, reply.status, elapsed());
          if (reply.body) {
            const end = () => {
              release();
              finish();
            };
            const onFirstChunk = () => observer?.firstChunk(label, elapsed());
            const onBroken = () => observer?.broken(label);
            const encoded = isEncoded(headers);
            done(undefined, { status: reply.status, headers, stream: chunkSource(reply.body, name, instance.url, end, onFirstChunk, onBroken, encoded, timeoutMs) });
            return;
          }
          release();
          finish();
          done(undefined, { status: reply.status, headers, body: reply.bytes });
        },
      );
    };
    attempt(0);
    return () => {
      if (cancelled) return;
      cancelled = true;
      cancelAttempt?.();
    };
  }

  /**
   * One request whose answer is read whole, on undici's dispatch API: no body stream and no
   * promise per chunk, which the plain `request()` costs a short forward about a sixth of its rate.
   */
  function sendWhole(dispatch: Dispatcher.DispatchOptions, done: (error: unknown, reply?: Reply) => void): () => void {
    let status = 0;
    let contentType: string | undefined;
    let relayed: Record<string, string> | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let controller: Dispatcher.DispatchController | undefined;
    let cancelled = false;
    // undici reports a throw from a handler as the request's error: `done` must still run once.
    let settled = false;
    const settle = (error: unknown, reply?: Reply) => {
      if (settled) return;
      settled = true;
      done(error, reply);
    };
    agent.dispatch(dispatch, {
      onRequestStart(requestController) {
        controller = requestController;
        if (cancelled) requestController.abort(callerLeft());
      },
      onResponseStart(responseController, statusCode, headers) {
        status = statusCode;
        contentType = headerText(headers['content-type']);
        relayed = relayedOf(headers);
        if (Number(headers['content-length']) > maxAnswerBytes) responseController.abort(new AnswerTooLarge());
      },
      onResponseData(responseController, chunk) {
        size += chunk.byteLength;
        if (size > maxAnswerBytes) responseController.abort(new AnswerTooLarge());
        else chunks.push(chunk);
      },
      onResponseEnd() {
        settle(undefined, { status, contentType, relayed, bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
      },
      onResponseError(_controller, error) {
        settle(error);
      },
    });
    return () => {
      cancelled = true;
      controller?.abort(callerLeft());
    };
  }

  /** One request to a plain-http target whose answer is read whole, on the registrar's own pool. */
  function sendPlain(
    plain: NonNullable<ReceiveTarget['plain']>,
    extraHeaders: Readonly<Record<string, string>> | undefined,
  ): (dispatch: Dispatcher.DispatchOptions, done: (error: unknown, reply?: Reply) => void) => () => void {
    return (dispatch, done) =>
      plainPool!.request(
        {
          hostname: plain.hostname,
          port: plain.port,
          host: plain.host,
          path: dispatch.path,
          contentType: 'application/json',
          headers: extraHeaders,
          body: dispatch.body as string,
          headersTimeoutMs: timeoutMs,
          bodyTimeoutMs: timeoutMs,
          maxBodyBytes: maxAnswerBytes,
        },
        (error, reply) => done(error, reply && { status: reply.status, contentType: reply.contentType, relayed: reply.relayed, bytes: reply.body }),
      );
  }

  /** One request whose answer is relayed as it comes. */
  function sendStreamed(dispatch: Dispatcher.DispatchOptions, done: (error: unknown, reply?: Reply) => void): () => void {
    const caller = new AbortController();
    // undici's own timers are coarse (half a second late past a second): the wait for the
    // headers is timed here, to the millisecond, as the registrar's own client does.
    let timedOut = false;
    const headersTimer = setTimeout(() => {
      timedOut = true;
      caller.abort(new TargetError('HEADERS_TIMEOUT', `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    agent.request({ ...dispatch, signal: caller.signal }).then(
      (answer) => {
        clearTimeout(headersTimer);
        done(undefined, { status: answer.statusCode, contentType: headerText(answer.headers['content-type']), relayed: relayedOf(answer.headers), body: answer.body });
      },
      (error: unknown) => {
        clearTimeout(headersTimer);
        done(timedOut ? new TargetError('HEADERS_TIMEOUT', `no answer within ${timeoutMs} ms`) : error);
      },
    );
    return () => {
      clearTimeout(headersTimer);
      caller.abort(callerLeft());
    };
  }

  return {
    forward,
    start,
    close: () => {
      plainPool?.close();
      return agent.close();
    },
  };
}

/** The headers of undici's answer that a forward passes on; undefined when there are none. */
function relayedOf(headers: Record<string, string | string[] | undefined>): Record<string, string> | undefined {
  let kept: Record<string, string> | undefined;
  for (const name of RELAYED_HEADERS) {
    const value = headers[name];
    if (value !== undefined) kept = keepRelayed(kept, name, Array.isArray(value) ? value.join(', ') : value);
  }
  return kept;
}

/** A reply's body, whether it was read whole or is still to come. */
async function readWhole(reply: Reply): Promise<Uint8Array> {
  return reply.body ? new Uint8Array(await reply.body.arrayBuffer()) : (reply.bytes ?? EMPTY);
}

/** A whole answer without a body. */
export const EMPTY = new Uint8Array(0);

/**
 * Whether an answer's body is compressed (or otherwise encoded) as it goes: an error line written
 * into it as text would be garbage to the caller's decoder, which then fails on it. Such an
 * answer is cut instead, which the caller sees as a broken answer.
 */
export function isEncoded(headers: Readonly<Record<string, string>>): boolean {
  const encoding = headers['content-encoding'];
  return encoding !== undefined && encoding.trim().toLowerCase() !== 'identity';
}

/** Statuses whose answers carry no body, nor a Content-Length for one (RFC 9110 §8.6, §15.3.5). */
export function hasNoBody(status: number): boolean {
  return status === 204 || status === 205 || status === 304;
}

/** What a target sent back: read whole, or a body still to come. */
interface Reply {
  status: number;
  contentType?: string;
  /** The target's headers a forward passes on (RELAYED_HEADERS). */
  relayed?: Record<string, string>;
  /** Read whole. */
  bytes?: Uint8Array;
  /** Still to come. */
  body?: Dispatcher.ResponseData['body'];
}

const JSON_HEADERS = { 'content-type': 'application/json' };
const MIB = 1024 * 1024;
const DEFAULT_MAX_ANSWER_BYTES = 64 * MIB;

function sizeText(bytes: number): string {
  return bytes >= MIB && bytes % MIB === 0 ? `${bytes / MIB} MiB` : `${bytes} bytes`;
}

const noop = () => {};
const callerLeft = () => new DOMException('The caller went away', 'AbortError');

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Every instance tried failed: 504 when all of them stayed silent, 502 otherwise. */
interface Failures {
  timeouts: number;
  silentMidAnswer: number;
  badAnswers: number;
  badAnswer: string;
}

/** `did you mean web? Names are case-sensitive`, when `name` is `Web` and `web` is registered. */
export function caseHint(registry: Registry, name: string): string | undefined {
  const registered = registry.sameNameButCase(name);
  return registered === undefined ? undefined : `did you mean ${registered}? Names are case-sensitive`;
}

/** The instances a 502 or 504 names; the rest are counted. */
const MAX_NAMED = 5;

function exhausted(name: string, failed: string[], failures: Failures, timeoutMs: number): ApiError {
  // As on an answer: how many instances were tried before giving up.
  const tried = { 'x-svcmesh-attempts': String(failed.length) };
  // A few addresses say where to look; thousands (a fleet that went away at once) would make
  // the answer larger than any caller reads.
  const shown = failed.length > MAX_NAMED ? `${failed.slice(0, MAX_NAMED).join(', ')} and ${failed.length - MAX_NAMED} more` : failed.join(', ');
  const at = `${name} at ${shown}`;
  if (failures.timeouts === failed.length) {
    // Every one began to answer and then said nothing: not the same as never answering.
    const what = failures.silentMidAnswer === failed.length ? `went silent for ${timeoutMs / 1000} s in the middle of its answer` : `did not answer within ${timeoutMs / 1000} s`;
    return new ApiError(504, `${at} ${what} (raise --forward-timeout for longer answers)`, tried);
  }
  // Reached, but what came back was not HTTP the registrar can relay.
  if (failures.badAnswers === failed.length) return new ApiError(502, `${at} answered with something that is not valid HTTP: ${failures.badAnswer}`, tried);
  return new ApiError(502, `Failed to reach ${at}`, tried);
}

/** The target's body as it comes, chunk by chunk; a failure mid-way ends it with an error line. */
function chunkSource(
  body: Dispatcher.ResponseData['body'],
  name: string,
  url: string,
  done: () => void,
  onFirstChunk: () => void,
  onBroken: () => void,
  encoded: boolean,
  silenceMs: number,
): ChunkSource {
  const chunks = body[Symbol.asyncIterator]();
  // The longest pause between two pieces, timed here to the millisecond (undici's bodyTimeout
  // stays as a backstop): the target went silent in the middle of the answer.
  const silent = () => body.destroy(new TargetError('BODY_TIMEOUT', `nothing for ${silenceMs} ms`));
  let silence: NodeJS.Timeout | undefined;
  let first = true;
  let over = false;
  // Whether what was relayed so far ends a line: the error line must start one of its own.
  let atLineStart = true;
  const end = () => {
    if (over) return;
    over = true;
    done();
  };
  return {
    async read() {
      if (over) return undefined;
      try {
        // Only the wait for the target counts: a caller that reads slowly is not the target's silence.
        silence = setTimeout(silent, silenceMs);
        const { value, done: finished } = await chunks.next().finally(() => clearTimeout(silence));
        if (finished) {
          end();
          return undefined;
        }
        if (first) {
          first = false;
          onFirstChunk();
        }
        const chunk = value as Uint8Array;
        if (chunk.byteLength > 0) atLineStart = chunk[chunk.byteLength - 1] === NEWLINE;
        return chunk;
      } catch (error) {
        if (over) return undefined;
        onBroken();
        end();
        if (encoded) throw error;
        const line = JSON.stringify({ error: `Lost ${name} at ${url} in the middle of the answer: ${lossInWords(error)}` });
        return encoder.encode(`${atLineStart ? '' : '\n'}${line}\n`);
      }
    },
    cancel() {
      body.destroy();
      end();
    },
  };
}

/** The answer as a web Response, for the Hono route. */
export function answerResponse(answer: ForwardAnswer): Response {
  const { stream } = answer;
  if (!stream) return new Response(hasNoBody(answer.status) ? null : ((answer.body ?? EMPTY) as Uint8Array<ArrayBuffer>), { status: answer.status, headers: answer.headers });
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = await stream.read();
      if (chunk) controller.enqueue(chunk);
      else controller.close();
    },
    cancel: () => stream.cancel(),
  });
  return new Response(body, { status: answer.status, headers: answer.headers });
}
