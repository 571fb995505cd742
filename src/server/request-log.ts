import type { MiddlewareHandler } from 'hono';

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

/** One line per request: method, path, status, duration. The query string is left out. */
export function requestLog(logger: Logger): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    await next();
    logger.log(`${c.req.method} ${c.req.path} ${c.res.status}`, {
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
  };
}
