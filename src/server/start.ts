import { createAdaptorServer } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

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

/** Listens with an app built by one of the factories; building and listening stay separate. */
export async function startServer(app: FetchApp, options: { host: string; port: number }): Promise<ServerHandle> {
  const server = createAdaptorServer({ fetch: app.fetch as never }) as Server;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let closing: Promise<void> | undefined;
  // Once closing, answers tell keep-alive clients to go, and each connection is dropped as soon
  // as its answer is done: server.close() alone only drops the connections idle at that moment.
  server.on('request', (_request, response) => {
    if (closing) response.shouldKeepAlive = false;
    response.on('close', () => {
      if (closing) setImmediate(() => server.closeIdleConnections());
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
        const timer = setTimeout(() => server.closeAllConnections(), drainMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
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
