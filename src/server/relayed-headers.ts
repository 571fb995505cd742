/**
 * The target's headers a forward passes on besides Content-Type: those that say what the body
 * is (its encoding, its language), where to go (a 3xx's Location), when to try again (a 503's or
 * 429's Retry-After), how to cache it and how to authenticate. Not the connection's own (they are
 * hop-by-hop), not Set-Cookie (the registrar is not the service's site), and not the framing,
 * which the registrar sets for its own answer.
 */
export const RELAYED_HEADERS: ReadonlySet<string> = new Set([
  'cache-control',
  'content-encoding',
  'content-language',
  'etag',
  'last-modified',
  'location',
  'retry-after',
  'vary',
  'www-authenticate',
]);

/** Adds a header's value to `kept` (several of one name joined with ", "); returns `kept`, made on first use. */
export function keepRelayed(kept: Record<string, string> | undefined, name: string, value: string): Record<string, string> {
  const headers = kept ?? {};
  headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  return headers;
}
