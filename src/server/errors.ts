import type { Context, ErrorHandler, Hono, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { StoreUnavailableError } from '../registry/store.js';

/** An error a caller can cause or fix; answered as `{"error": message}` with `status`. */
export class ApiError extends HTTPException {
  /** Headers the answer carries besides the body (a 401's WWW-Authenticate, a 405's Allow). */
  readonly headers?: Readonly<Record<string, string>>;

  constructor(status: ContentfulStatusCode, message: string, headers?: Readonly<Record<string, string>>) {
    super(status, { message });
    this.headers = headers;
  }
}

const RETRY_SOON = { 'retry-after': '1' };

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
): { status: ContentfulStatusCode; message: string; headers?: Readonly<Record<string, string>> } {
  if (error instanceof ApiError) return { status: error.status as ContentfulStatusCode, message: error.message || 'Request failed', headers: error.headers };
  if (error instanceof HTTPException) return { status: error.status as ContentfulStatusCode, message: error.message || 'Request failed' };
  // Down or busy, not broken: worth another try soon, which Retry-After tells clients and proxies.
  if (error instanceof StoreUnavailableError) return { status: 503, message: error.message, headers: RETRY_SOON };
  const e = error as Error;
  log(`svcmesh: ${where} failed: ${e.stack ?? e.message}`);
  return { status: 500, message: `Internal error: ${e.message}` };
}

/** The one error path: handlers throw, this answers JSON. */
export const onError =
  (log?: (line: string) => void): ErrorHandler =>
  (error, c) => {
    const { status, message, headers } = errorAnswer(error, `${c.req.method} ${c.req.path}`, log);
    return c.json({ error: message }, status, headers);
  };

export const notFound: NotFoundHandler = (c) =>
  jsonError(c, 404, `No route for ${c.req.method} ${c.req.path}`);

/**
 * A path the app answers, asked with a method it does not answer there: 405 with `Allow`, and
 * the method to use, rather than the 404 that says the path does not exist. Registered after the
 * routes, so it only sees what they leave.
 */
export function refuseOtherMethods(app: Hono, allowed: Record<string, readonly string[]>): void {
  for (const [path, methods] of Object.entries(allowed)) {
    const allow = methods.includes('GET') ? [...methods, 'HEAD'] : [...methods];
    app.all(path, (c) => {
      const use = methods.map((method) => `${method} ${c.req.path}`).join(' or ');
      throw new ApiError(405, `${c.req.method} ${c.req.path} is not answered here: use ${use}`, { allow: allow.join(', ') });
    });
  }
}
