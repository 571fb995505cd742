import { Agent, type Dispatcher } from 'undici';
import type { Registry } from '../registry/registry.js';
import type { Instance } from '../registry/types.js';
import { ApiError } from './errors.js';
import type { ForwardObserver } from './metrics.js';
import type { Logger } from './request-log.js';

export interface ForwardRequest {
  from: string;
  to: string;
  message: string;
  stream: boolean;
}

export interface ForwarderOptions {
  registry: Registry;
  /** How long an instance may take to start answering, and the longest pause inside an answer. */
  timeoutMs: number;
  /** Instances tried for one request, at most. */
  maxAttempts?: number;
  dispatcher?: Dispatcher;
  /** Extra headers for the targets, e.g. the token a protected `/receive` asks for. */
  targetHeaders?: (instance: Instance) => Record<string, string>;
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
  close(): Promise<void>;
}

/**
 * A target's answer, ready to be relayed: either whole (`text`) or as it comes (`stream`). It is
 * no web Response so the registrar's node fast path can write it without building one.
 */
export interface ForwardAnswer {
  status: number;
  headers: Record<string, string>;
  text?: string;
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
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

interface ReceiveTarget {
  origin: string;
  path: string;
  hostname: string;
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
      // Bounded: a registry that churns through many URLs must not grow this forever.
      if (known.size >= 10_000) known.clear();
      known.set(serviceUrl, target);
    }
    return target;
  };
}

function causeOf(error: unknown): string {
  const e = error as { code?: string; message?: string; cause?: { code?: string } };
  return e.code ?? e.cause?.code ?? e.message ?? String(error);
}

/**
 * Sends a message to one live instance of a service over pooled keep-alive connections. An
 * instance that cannot be reached or stays silent before answering is skipped for the next one;
 * once an answer has begun to flow back it is never switched, and a failure ends it with an
 * explicit error line.
 */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const { registry, timeoutMs } = options;
  const maxAttempts = options.maxAttempts ?? 3;
  const agent =
    options.dispatcher ?? new Agent({ keepAliveTimeout: 30_000, connections: 256, connect: { timeout: 5_000 } });

  const observer = options.observer;
  const log =
    options.logger?.log ?? ((message: string, fields: Record<string, unknown>) => console.error(`svcmesh: ${message} at ${fields.instance}: ${fields.cause}`));

  const receiveTarget = receiveTargets();

  async function forward(request: ForwardRequest, signal?: CallerSignal): Promise<ForwardAnswer> {
    const target = request.to;
    observer?.started(target);
    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      observer?.finished(target);
    };
    try {
      const answer = await attempt(request, signal, elapsed, finish);
      observer?.answered(target, answer.status, elapsed());
      if (!answer.stream) finish();
      return answer;
    } catch (error) {
      observer?.answered(target, (error as ApiError).status ?? 499, elapsed());
      finish();
      throw error;
    }
  }

  async function attempt(
    request: ForwardRequest,
    signal: CallerSignal | undefined,
    elapsed: () => number,
    finish: () => void,
  ): Promise<ForwardAnswer> {
    const all = registry.candidates(request.to);
    if (all.length === 0) {
      throw new ApiError(404, `Service ${request.to} is not registered (GET /services lists the ones that are)`);
    }
    const candidates = options.allowHost ? all.filter((i) => options.allowHost!(receiveTarget(i.url).hostname)) : all;
    if (candidates.length === 0) {
      throw new ApiError(403, `Every instance of ${request.to} is on a host that --allow-hosts does not allow`);
    }
    const body = JSON.stringify({ from: request.from, message: request.message, ...(request.stream && { stream: true }) });
    const failed: string[] = [];
    let timeouts = 0;
    const tries = Math.min(candidates.length, maxAttempts);
    for (let index = 0; index < tries; index += 1) {
      const instance = candidates[index]!;
      const done = registry.begin(instance);
      const target = receiveTarget(instance.url);
      try {
        const dispatch = {
          origin: target.origin,
          path: target.path,
          method: 'POST' as const,
          headers: { 'content-type': 'application/json', ...options.targetHeaders?.(instance) },
          body,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        };
        const answerHeaders = (contentType: unknown) => ({
          'content-type': String(contentType ?? 'application/json'),
          'x-svcmesh-instance': instance.url,
          'x-svcmesh-attempts': String(index + 1),
        });
        if (!request.stream) {
          // A short JSON answer is read whole before anything goes back, so a failure while
          // reading it can still move on to the next instance.
          const whole = await requestWhole(agent, dispatch, signal);
          registry.reportReachable(instance, true);
          done();
          return { status: whole.status, headers: answerHeaders(whole.contentType), text: whole.text };
        }
        // undici takes any EventTarget-like signal.
        const answer = await agent.request({ ...dispatch, signal: signal as AbortSignal | undefined });
        registry.reportReachable(instance, true);
        const end = () => {
          done();
          finish();
        };
        const onFirstChunk = () => observer?.firstChunk(request.to, elapsed());
        return {
          status: answer.statusCode,
          headers: answerHeaders(answer.headers['content-type']),
          stream: chunkSource(answer.body, request.to, instance.url, end, onFirstChunk),
        };
      } catch (error) {
        done();
        if (signal?.aborted) throw error;
        if (TIMEOUT_CODES.has((error as { code?: string }).code ?? '')) timeouts += 1;
        else registry.reportReachable(instance, false);
        failed.push(instance.url);
        log(`forward to ${request.to} failed`, { instance: instance.url, cause: causeOf(error) });
      }
    }
    if (timeouts === failed.length) {
      throw new ApiError(
        504,
        `${request.to} at ${failed.join(', ')} did not answer within ${timeoutMs / 1000} s (raise --forward-timeout for longer answers)`,
      );
    }
    throw new ApiError(502, `Failed to reach ${request.to} at ${failed.join(', ')}`);
  }

  return {
    forward,
    close: () => agent.close(),
  };
}

/**
 * One request whose answer is read whole, on undici's dispatch API: no body stream and no promise
 * per chunk, which the plain `request()` costs a short forward about a sixth of its rate.
 */
function requestWhole(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  signal: CallerSignal | undefined,
): Promise<{ status: number; contentType: unknown; text: string }> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let status = 0;
    let contentType: unknown;
    const chunks: Buffer[] = [];
    let controller: Dispatcher.DispatchController | undefined;
    const onAbort = () => controller?.abort(signal!.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = () => signal?.removeEventListener('abort', onAbort);
    dispatcher.dispatch(options, {
      onRequestStart(requestController) {
        controller = requestController;
        if (signal?.aborted) requestController.abort(signal.reason as Error);
      },
      onResponseStart(_controller, statusCode, headers) {
        status = statusCode;
        contentType = headers['content-type'];
      },
      onResponseData(_controller, chunk) {
        chunks.push(chunk);
      },
      onResponseEnd() {
        settle();
        resolve({ status, contentType, text: (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8') });
      },
      onResponseError(_controller, error) {
        settle();
        reject(error);
      },
    });
  });
}

/** The target's body as it comes, chunk by chunk; a failure mid-way ends it with an error line. */
function chunkSource(
  body: Dispatcher.ResponseData['body'],
  name: string,
  url: string,
  done: () => void,
  onFirstChunk: () => void,
): ChunkSource {
  const chunks = body[Symbol.asyncIterator]();
  let first = true;
  let over = false;
  const end = () => {
    if (over) return;
    over = true;
    done();
  };
  return {
    async read() {
      if (over) return undefined;
      try {
        const { value, done: finished } = await chunks.next();
        if (finished) {
          end();
          return undefined;
        }
        if (first) {
          first = false;
          onFirstChunk();
        }
        return value as Uint8Array;
      } catch (error) {
        if (over) return undefined;
        end();
        return encoder.encode(`${JSON.stringify({ error: `Lost ${name} at ${url} in the middle of the answer: ${causeOf(error)}` })}\n`);
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
  if (!stream) return new Response(answer.text ?? '', { status: answer.status, headers: answer.headers });
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
