import type { IncomingMessage, ServerResponse } from 'node:http';

export type LogFormat = 'text' | 'json';

export interface Logger {
  /** One line about an event, with fields for machines. */
  log(message: string, fields?: Record<string, unknown>): void;
  /** Writes what is pending now (before the process exits). */
  flush(): void;
}

const PLAIN = /^\S+$/;

function textField(value: unknown): string {
  if (typeof value === 'number') return String(value);
  return typeof value === 'string' && PLAIN.test(value) ? value : JSON.stringify(value);
}

/**
 * Writes log lines to stdout in batches: a write per request would cost more than the request.
 * Nothing here ever sees headers, so tokens cannot end up in a log.
 */
export function createLogger(format: LogFormat, write: (text: string) => void = (t) => process.stdout.write(t)): Logger {
  let pending = '';
  const flush = () => {
    if (pending === '') return;
    const text = pending;
    pending = '';
    write(text);
  };
  // Under load thousands of lines share a millisecond; formatting the time once per millisecond
  // keeps the log from costing more than the request it describes.
  let lastMs = -1;
  let lastTime = '';
  const now = () => {
    const ms = Date.now();
    if (ms !== lastMs) {
      lastMs = ms;
      lastTime = new Date(ms).toISOString();
    }
    return lastTime;
  };
  return {
    flush,
    log(message, fields) {
      let line: string;
      if (format === 'json') {
        line = JSON.stringify({ time: now(), msg: message, ...fields });
      } else {
        line = `${now()} ${message}`;
        for (const key in fields) line += ` ${key}=${textField(fields[key])}`;
      }
      if (pending === '') setImmediate(flush);
      pending += `${line}\n`;
    },
  };
}

/**
 * One line per request, once its answer is over (or the caller left): method, path (without the
 * query string), status, duration. The server calls it (see startServer) rather than Hono
 * middleware: a middleware on every route takes Hono off its single-handler fast
 * path, which cost a small request about 15%.
 */
export function logRequest(logger: Logger, request: IncomingMessage, response: ServerResponse, started: number): void {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  logger.log(`${request.method} ${query === -1 ? url : url.slice(0, query)} ${response.statusCode}`, {
    ms: Math.round((performance.now() - started) * 10) / 10,
  });
}
