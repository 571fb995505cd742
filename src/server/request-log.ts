import type { IncomingMessage, ServerResponse } from 'node:http';

export type LogFormat = 'text' | 'json';

export interface Logger {
  /**
   * One line about an event, with fields for machines. `parts` are what the message already says
   * (method, path, status…): JSON lines carry them as fields too, text lines only in the message.
   */
  log(message: string, fields?: Record<string, unknown>, parts?: Record<string, unknown>): void;
  /** One request's line: `METHOD PATH STATUS ms=…`; JSON lines carry each as a field too. */
  request(method: string, path: string, status: number, ms: number): void;
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
  const push = (line: string) => {
    if (pending === '') setImmediate(flush);
    pending += line;
  };
  return {
    flush,
    log(message, fields, parts) {
      let line: string;
      if (format === 'json') {
        line = JSON.stringify({ time: now(), msg: message, ...parts, ...fields });
      } else {
        line = `${now()} ${message}`;
        for (const key in fields) line += ` ${key}=${textField(fields[key])}`;
      }
      push(`${line}\n`);
    },
    // Written out rather than through log(): it runs once per request, and this way builds no
    // object for a text line.
    request(method, path, status, ms) {
      const message = `${method} ${path} ${status}`;
      push(format === 'json' ? `${JSON.stringify({ time: now(), msg: message, method, path, status, ms })}\n` : `${now()} ${message} ms=${ms}\n`);
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
  logger.request(
    request.method ?? 'GET',
    query === -1 ? url : url.slice(0, query),
    // Nothing was answered (the caller left first): 499, as nginx logs it and the metrics count it.
    response.headersSent ? response.statusCode : 499,
    Math.round((performance.now() - started) * 10) / 10,
  );
}
