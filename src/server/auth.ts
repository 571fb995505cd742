import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Who asks for the token, and where a caller sets it: the words of the 401s. */
export interface TokenWording {
  /** "This registrar", "This service's /receive". */
  who: string;
  /** Where the caller's token comes from. */
  setWith: string;
  /** Where to look when the token sent is the wrong one. */
  checkIn: string;
}

export const REGISTRAR_TOKEN: TokenWording = {
  who: 'This registrar',
  setWith: 'svcmesh --token or SVCMESH_TOKEN',
  checkIn: '--token, SVCMESH_TOKEN or `svcmesh config get token`',
};

/**
 * Requires `Authorization: Bearer <token>`. Both sides are hashed first so the comparison takes
 * the same time whatever the length or content of a wrong guess.
 */
export function requireToken(token: string, wording: TokenWording = REGISTRAR_TOKEN): MiddlewareHandler {
  const check = tokenCheck(token, wording);
  return async (c, next) => {
    check(c.req.header('authorization'));
    await next();
  };
}

/** Throws the 401 that says what is wrong unless `header` carries the token. */
export function tokenCheck(token: string, wording: TokenWording = REGISTRAR_TOKEN): (header: string | undefined) => void {
  const expected = digest(token);
  return (header) => {
    if (!header) throw new ApiError(401, `${wording.who} requires a token: send Authorization: Bearer <token> (${wording.setWith})`, CHALLENGE);
    const match = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (!match) throw new ApiError(401, `${schemeProblem(header)}: send Authorization: Bearer <token> (${wording.setWith})`, CHALLENGE);
    if (!timingSafeEqual(digest(match[1] ?? ''), expected)) {
      throw new ApiError(401, `The token is not valid: check ${wording.checkIn}`, CHALLENGE);
    }
  };
}

/** What a 401 tells a client to send (RFC 6750). */
const CHALLENGE = { 'www-authenticate': 'Bearer realm="svcmesh"' } as const;

/** What is wrong with an Authorization header that is not `Bearer <token>`, without echoing a secret. */
function schemeProblem(header: string): string {
  const words = header.trim().split(/\s+/);
  if (/^bearer$/i.test(words[0]!)) return 'The Authorization header has no token after Bearer';
  // One word is most likely the token itself, sent without its scheme: never print it back.
  if (words.length === 1) return 'The Authorization header has no scheme (the word Bearer before the token is missing)';
  return `The Authorization header uses the ${words[0]!.slice(0, 20)} scheme, but this registrar takes Bearer tokens`;
}
