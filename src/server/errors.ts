import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { StoreUnavailableError } from '../registry/store.js';

/** An error a caller can cause or fix; answered as `{"error": message}` with `status`. */
export class ApiError extends HTTPException {
  constructor(status: ContentfulStatusCode, message: string) {
    super(status, { message });
  }
}

export const jsonError = (c: Context, status: ContentfulStatusCode, message: string) =>
  c.json({ error: message }, status);

/**
 * What an error thrown by a handler answers: its own status for an error a caller can cause,
 * 503 while the store is unreachable, and 500 (told to `log`) for anything else. The Hono apps
 * and the registrar's node fast path both answer through this.
 */
export function errorAnswer(
  error: unknown,
  where: string,
  log: (line: string) => void = (line) => console.error(line),
): { status: ContentfulStatusCode; message: string } {
  if (error instanceof HTTPException) return { status: error.status as ContentfulStatusCode, message: error.message || 'Request failed' };
  if (error instanceof StoreUnavailableError) return { status: 503, message: error.message };
  const e = error as Error;
  log(`svcmesh: ${where} failed: ${e.stack ?? e.message}`);
  return { status: 500, message: `Internal error: ${e.message}` };
}

/** The one error path: handlers throw, this answers JSON. */
export const onError =
  (log?: (line: string) => void): ErrorHandler =>
  (error, c) => {
    const { status, message } = errorAnswer(error, `${c.req.method} ${c.req.path}`, log);
    return jsonError(c, status, message);
  };

export const notFound: NotFoundHandler = (c) =>
  jsonError(c, 404, `No route for ${c.req.method} ${c.req.path}`);
