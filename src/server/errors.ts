import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** An error a caller can cause or fix; answered as `{"error": message}` with `status`. */
export class ApiError extends HTTPException {
  constructor(status: ContentfulStatusCode, message: string) {
    super(status, { message });
  }
}

export const jsonError = (c: Context, status: ContentfulStatusCode, message: string) =>
  c.json({ error: message }, status);

/** The one error path: handlers throw, this answers JSON. */
export const onError =
  (log: (line: string) => void = (line) => console.error(line)): ErrorHandler =>
  (error, c) => {
    if (error instanceof HTTPException) {
      return jsonError(c, error.status as ContentfulStatusCode, error.message || 'Request failed');
    }
    log(`svcmesh: ${c.req.method} ${c.req.path} failed: ${error.stack ?? error.message}`);
    return jsonError(c, 500, `Internal error: ${error.message}`);
  };

export const notFound: NotFoundHandler = (c) =>
  jsonError(c, 404, `No route for ${c.req.method} ${c.req.path}`);
