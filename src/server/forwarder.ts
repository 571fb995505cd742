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

export interface Forwarder {
  forward(request: ForwardRequest, signal?: AbortSignal): Promise<Response>;
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function receiveUrl(serviceUrl: string): URL {
  const url = new URL(serviceUrl);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/receive`;
  return url;
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

  async function forward(request: ForwardRequest, signal?: AbortSignal): Promise<Response> {
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
      const response = await attempt(request, signal, elapsed, finish);
      observer?.answered(target, response.status, elapsed());
      if (!request.stream || !response.body) finish();
      return response;
    } catch (error) {
      observer?.answered(target, (error as ApiError).status ?? 499, elapsed());
      finish();
      throw error;
    }
  }

  async function attempt(
    request: ForwardRequest,
    signal: AbortSignal | undefined,
    elapsed: () => number,
    finish: () => void,
  ): Promise<Response> {
    const all = registry.candidates(request.to);
    if (all.length === 0) {
      throw new ApiError(404, `Service ${request.to} is not registered (GET /services lists the ones that are)`);
    }
    const candidates = (options.allowHost ? all.filter((i) => options.allowHost!(new URL(i.url).hostname)) : all).slice(0, maxAttempts);
    if (candidates.length === 0) {
      throw new ApiError(403, `Every instance of ${request.to} is on a host that --allow-hosts does not allow`);
    }
    const body = JSON.stringify({ from: request.from, message: request.message, ...(request.stream && { stream: true }) });
    const failed: string[] = [];
    let timeouts = 0;
    for (const [index, instance] of candidates.entries()) {
      const done = registry.begin(instance);
      const target = receiveUrl(instance.url);
      try {
        const answer = await agent.request({
          origin: target.origin,
          path: target.pathname + target.search,
          method: 'POST',
          headers: { 'content-type': 'application/json', ...options.targetHeaders?.(instance) },
          body,
          signal,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        registry.reportReachable(instance, true);
        const headers = new Headers({
          'content-type': String(answer.headers['content-type'] ?? 'application/json'),
          'x-svcmesh-instance': instance.url,
          'x-svcmesh-attempts': String(index + 1),
        });
        if (!request.stream) {
          // A short JSON answer is read whole before anything goes back, so a failure while
          // reading it can still move on to the next instance.
          const text = await answer.body.text();
          done();
          return new Response(text, { status: answer.statusCode, headers });
        }
        const end = () => {
          done();
          finish();
        };
        const onFirstChunk = () => observer?.firstChunk(request.to, elapsed());
        return new Response(passThrough(answer.body, request.to, instance.url, end, onFirstChunk), {
          status: answer.statusCode,
          headers,
        });
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

/** The target's body as it comes, chunk by chunk; a failure mid-way ends it with an error line. */
function passThrough(
  body: Dispatcher.ResponseData['body'],
  name: string,
  url: string,
  done: () => void,
  onFirstChunk: () => void,
): ReadableStream<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]();
  let first = true;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done: finished } = await chunks.next();
        if (finished) {
          done();
          controller.close();
        } else {
          if (first) {
            first = false;
            onFirstChunk();
          }
          controller.enqueue(value as Uint8Array);
        }
      } catch (error) {
        done();
        const line = JSON.stringify({ error: `Lost ${name} at ${url} in the middle of the answer: ${causeOf(error)}` });
        controller.enqueue(encoder.encode(`${line}\n`));
        controller.close();
      }
    },
    cancel() {
      // The caller went away: closing the upstream body aborts the target's generation too.
      body.destroy();
      done();
    },
  });
}
