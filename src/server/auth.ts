import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Requires `Authorization: Bearer <token>`. Both sides are hashed first so the comparison takes
 * the same time whatever the length or content of a wrong guess.
 */
export function requireToken(token: string): MiddlewareHandler {
  const check = tokenCheck(token);
  return async (c, next) => {
    check(c.req.header('authorization'));
    await next();
  };
}

/** Throws the 401 that says what is wrong unless `header` carries the token. */
export function tokenCheck(token: string): (header: string | undefined) => void {
  const expected = digest(token);
  return (header) => {
    if (!header) {
      throw new ApiError(401, 'This registrar requires a token: send Authorization: Bearer <token> (svcmesh --token or SVCMESH_TOKEN)');
    }
    const match = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (!match || !timingSafeEqual(digest(match[1] ?? ''), expected)) {
      throw new ApiError(401, 'The token is not valid: check --token, SVCMESH_TOKEN or `svcmesh config get token`');
    }
  };
}
