import type { IncomingMessage, ServerResponse } from 'node:http';

export type LogFormat = 'text' | 'json';

export interface Logger {
  /**
   * One line about an event, with fields for machines. `parts` are what the message already says
   * (method, path, status…): JSON lines carry them as fields too, text lines only in the message.
   */
  log(message: string, fields?: Record<string, unknown>, parts?: Record<string, unknown>): void;
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
    log(message, fields, parts) {
      let line: string;
      if (format === 'json') {
        line = JSON.stringify({ time: now(), msg: message, ...parts, ...fields });
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
  const method = request.method;
  const path = query === -1 ? url : url.slice(0, query);
  const status = response.statusCode;
  logger.log(`${method} ${path} ${status}`, { ms: Math.round((performance.now() - started) * 10) / 10 }, { method, path, status });
}
