/** True for an absolute http: or https: URL with a host. */
export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * One spelling per address, so that `http://Host:80/` registered and `http://host` heartbeated
 * are one instance, as they are one service: the scheme and host as URL parsing writes them
 * (lower case, no default port) and the path without trailing slashes, which `/receive` is
 * appended to anyway. A query stays; a fragment goes, since no request ever carries it to the
 * service. Undefined for what is not an http(s) URL.
 */
export function canonicalHttpUrl(value: string): string | undefined {
  const url = parsedHttpUrl(value);
  return url && canonicalFormOf(url);
}

/** The URL parsed, when it is an absolute http: or https: URL with a host. */
export function parsedHttpUrl(value: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' ? url : undefined;
}

/** See canonicalHttpUrl. */
export function canonicalFormOf(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}${url.search}`;
}

/**
 * A registrar address as etcdctl's `--endpoints` and `CONSUL_HTTP_ADDR` take one: `host:port`, or
 * `:port` on this machine, is read as plain http. Anything else is left as it was given.
 */
export function registrarUrlFrom(value: string): string {
  const address = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)?:(\d{1,5})\/?$/.exec(value);
  // `http:5001` is a URL that lost its slashes, not a host named http.
  if (!address || address[1] === 'http' || address[1] === 'https') return value;
  const port = Number(address[2]);
  if (port < 1 || port > 65_535) return value;
  return `http://${address[1] ?? '127.0.0.1'}:${port}`;
}

/**
 * A registrar address a client can use: an http(s) URL, or host:port. `http:5001` is refused:
 * WHATWG URLs read it as http://0.0.19.137/.
 */
export function isRegistrarUrl(value: string): boolean {
  return isHttpUrl(registrarUrlFrom(value)) && !/^https?:(?!\/\/)/i.test(value);
}

/** `user:secret@` after a scheme's `//`, or at the start (`user:secret@host:port`), space before it or not. */
const CREDENTIALS = /^(\s*(?:[a-z][a-z0-9+.-]*:\/\/)?)[^/@\s]*@/i;

/** Whether a URL carries a user name or password (`http://user:secret@host`). */
export function carriesCredentials(url: string): boolean {
  return CREDENTIALS.test(url);
}

/** The URL with its user name and password written as `***`, for a message. */
export function withoutCredentials(url: string): string {
  return url.replace(CREDENTIALS, '$1***@');
}

/**
 * Whether a registrar address carries a query or a fragment (`?x=1`, `#top`, even an empty `?`).
 * The client appends each endpoint's path to the address as text, so `http://host?x=1` would
 * send every call to `/?x=1/health`, the dashboard. Neither can appear in a host or a port.
 */
export function carriesQueryOrFragment(url: string): boolean {
  return /[?#]/.test(url);
}
