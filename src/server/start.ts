import { getRequestListener } from '@hono/node-server';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, logRequest } from './request-log.js';

export interface ServerHandle {
  url: string;
  port: number;
  server: Server;
  /**
   * Stops accepting connections and waits for answers in flight, at most `drainMs`; after that,
   * the connections still open are cut.
   */
  close(drainMs?: number): Promise<void>;
}

interface FetchApp {
  fetch: (request: Request, ...rest: never[]) => Response | Promise<Response>;
}

const SWEEP_MS = 50;

/**
 * Answers a request straight from node's request and response, before the app sees it; false
 * leaves the request to the app.
 */
export type FastPath = (request: IncomingMessage, response: ServerResponse) => boolean;

export interface ServerOptions {
  host: string;
  port: number;
  /** One line per request, once its answer is over. */
  logger?: Logger;
  fastPath?: FastPath;
  /**
   * Called when the drain time is over, a moment before the connections still open are cut:
   * answers still streaming can end with a line that says why.
   */
  onDrainTimeout?: () => void;
}

/** Between telling the streams that are cut why and cutting them: time for that line to leave. */
const LAST_WORD_MS = 100;

/** Listens with an app built by one of the factories; building and listening stay separate. */
export async function startServer(app: FetchApp, options: ServerOptions): Promise<ServerHandle> {
  const appListener = getRequestListener(withHeadLengths(app) as never);
  const { logger, fastPath } = options;
  let closing: Promise<void> | undefined;
  // One listener per request, and a close handler only where one is needed: under load each
  // extra listener shows.
  const server = createServer((request, response) => {
    const started = logger ? performance.now() : 0;
    // Once closing, answers tell keep-alive clients to go (see close()).
    if (closing) response.shouldKeepAlive = false;
    const handled = fastPath?.(request, response) === true;
    if (!logger) {
      if (!handled) void appListener(request, response);
      return;
    }
    // An answer the fast path finished on the spot is logged on the spot.
    if (handled && response.writableEnded) {
      logRequest(logger, request, response, started);
      return;
    }
    response.once('close', () => logRequest(logger, request, response, started));
    if (!handled) void appListener(request, response);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    server,
    close(drainMs = 10_000) {
      closing ??= new Promise<void>((resolve) => {
        const cut = setTimeout(() => {
          if (!options.onDrainTimeout) return server.closeAllConnections();
          options.onDrainTimeout();
          setTimeout(() => server.closeAllConnections(), LAST_WORD_MS).unref();
        }, drainMs);
        cut.unref();
        // server.close() alone drops only the connections idle at that moment; a keep-alive
        // connection whose answer was in flight becomes idle when that answer is done, so look
        // again until none is left.
        const sweep = setInterval(() => server.closeIdleConnections(), SWEEP_MS);
        sweep.unref();
        server.close(() => {
          clearTimeout(cut);
          clearInterval(sweep);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/** Answers that never end, whose length a HEAD cannot give: the events, a streamed answer. */
const STREAMED_TYPES = /^\s*(?:text\/event-stream|application\/x-ndjson)\b/i;

/**
 * HEAD is GET without its body, Content-Length included, as curl -I and caches expect: Hono
 * leaves the body out, and with it the length. A stream has no length to give: its headers alone.
 */
function withHeadLengths(app: FetchApp): FetchApp['fetch'] {
  return async (request, ...rest) => {
    if (request.method !== 'HEAD') return app.fetch(request, ...rest);
    const answer = await app.fetch(new Request(request.url, { method: 'GET', headers: request.headers, signal: request.signal }), ...rest);
    const headers = new Headers(answer.headers);
    if (answer.body && !headers.has('content-length') && !STREAMED_TYPES.test(headers.get('content-type') ?? '')) {
      headers.set('content-length', String((await answer.arrayBuffer()).byteLength));
    } else await answer.body?.cancel();
    return new Response(null, { status: answer.status, statusText: answer.statusText, headers });
  };
}

/** Starts a server, turning the usual listen failures into a message that says what to do. */
export async function listenOrExplain(start: () => Promise<ServerHandle>, host: string, port: number): Promise<ServerHandle> {
  try {
    return await start();
  } catch (error) {
    throw new Error(describeListenError(error as NodeJS.ErrnoException, host, port));
  }
}

function describeListenError(error: NodeJS.ErrnoException, host: string, port: number): string {
  if (error.code === 'EADDRINUSE') return `Port ${port} on ${host} is already in use: stop what runs there or pick another with --port`;
  if (error.code === 'EACCES') return `Not allowed to listen on ${host}:${port}: pick a port above 1023 with --port`;
  if (error.code === 'EADDRNOTAVAIL') return `${host} is not an address of this machine: use --host 0.0.0.0 or 127.0.0.1`;
  return `Cannot listen on ${host}:${port}: ${error.message}`;
}
