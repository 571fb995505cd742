import type { IncomingMessage, Server, ServerResponse } from 'node:http';

export type LogFormat = 'text' | 'json';

export interface Logger {
  /** One line about an event, with fields for machines. */
  log(message: string, fields?: Record<string, unknown>): void;
  /** Writes what is pending now (before the process exits). */
  flush(): void;
}

/**
 * Writes log lines to stdout in batches: a write per request would cost more than the request.
 * Nothing here ever sees headers, so tokens cannot end up in a log.
 */
export function createLogger(format: LogFormat, write: (text: string) => void = (t) => process.stdout.write(t)): Logger {
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    write(text);
  };
  return {
    flush,
    log(message, fields = {}) {
      const time = new Date().toISOString();
      const line =
        format === 'json'
          ? JSON.stringify({ time, msg: message, ...fields })
          : `${time} ${message}${Object.entries(fields)
              .map(([k, v]) => ` ${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
              .join('')}`;
      if (pending.push(`${line}\n`) === 1) setImmediate(flush);
    },
  };
}

/**
 * One line per request, once its answer is over (or the caller left): method, path (without the
 * query string), status, duration. It listens on the node server rather than being Hono
 * middleware: a middleware on every route takes Hono off its single-handler fast path, which
 * cost a small request about 15%.
 */
export function logRequests(server: Server, logger: Logger): void {
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const started = performance.now();
    response.once('close', () => {
      const url = request.url ?? '/';
      const query = url.indexOf('?');
      logger.log(`${request.method} ${query === -1 ? url : url.slice(0, query)} ${response.statusCode}`, {
        ms: Math.round((performance.now() - started) * 10) / 10,
      });
    });
  });
}
