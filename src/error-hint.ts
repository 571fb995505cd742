/**
 * The line under an error that says what to do next: the one a command put on the error (a
 * mistyped name's "Did you mean …?"), or the usual advice for a registrar that is not there or
 * wants a token. Empty when there is nothing to add.
 */
export function hintFor(error: Error & { status?: number; hint?: string; instance?: string }): string {
  if (error.hint) return `\n  ${error.hint}`;
  if (error.name === 'HttpError' && error.status === 401 && error.instance) {
    return `\n  The service at ${error.instance} refused the token the registrar sent it: the registrar's --target-token (or --target-token-for) must match that service's --receive-token.`;
  }
  if (error.name === 'HttpError' && error.status === undefined && /^Cannot reach https:.*: (EPROTO|ERR_SSL_)/.test(error.message)) {
    return '\n  Something answers there, but not over TLS: a registrar speaks plain http, so use http:// (put a TLS proxy in front of it for https).';
  }
  if (error.name === 'HttpError' && error.status === undefined && error.message.endsWith(': no answer in time')) {
    // Not refused: something took the connection, or a firewall swallowed it, and said nothing.
    return '\n  Nothing came back in time: is the registrar there stopped or overloaded (a paused process, a machine under load), or is a firewall dropping the connection? (--timeout gives a slow one longer)';
  }
  if (error.name === 'HttpError' && error.status === undefined) {
    return '\n  Is the registrar running there? Start it with `svcmesh registrar`, or point --registrar / SVCMESH_REGISTRAR at it.';
  }
  if (error.name === 'HttpError' && error.status === 401) {
    // The registrar's own message names the flag and the variable already; for a token it refused,
    // also where to check it, and keeping that one would not help.
    if (error.message.includes('The token is not valid')) return '';
    if (error.message.includes('SVCMESH_TOKEN')) return '\n  To keep it for every command: `svcmesh config set token <token>`.';
    return "\n  Pass the registrar's token with --token, SVCMESH_TOKEN or `svcmesh config set token <token>`.";
  }
  const answered = error as Error & { status?: number; url?: string; body?: unknown };
  if (error.name === 'HttpError' && isNotARegistrar(answered)) {
    return `\n  Is ${registrarOrigin(answered.url)} a svcmesh registrar? A registrar answers every one of its routes, and with JSON: point --registrar / SVCMESH_REGISTRAR at one (its default port is 5001).`;
  }
  return '';
}

/** A registrar's routes (with a service name after some), and the ones it answers whatever is registered. */
const ROUTE = /\/(services|catalog|health|register|deregister|heartbeat|forward|events|metrics)(\/[^/]*)?$/;
const ALWAYS_ANSWERED = new Set(['services', 'catalog', 'health', 'register', 'events', 'metrics']);

/**
 * Whether the answer came from something other than a registrar: a page that is not JSON (a
 * registrar's errors always are), a 404 on a route every registrar answers, or "No route" for a
 * route a registrar has (the Ollama service at 5000 given for the registrar at 5001).
 */
export function isNotARegistrar(error: { status?: number; url?: string; body?: unknown; instance?: string }): boolean {
  const { status, body } = error;
  // The answer of a service the registrar forwarded to: the service's 404, not the registrar's.
  if (error.instance) return false;
  if (status !== 404 && status !== 405 && status !== 501) return false;
  if (typeof body === 'string') return true;
  if (status !== 404) return false;
  const route = ROUTE.exec(pathOf(error.url));
  if (!route) return false;
  if (ALWAYS_ANSWERED.has(route[1]!) && route[2] === undefined) return true;
  const said = (body as { error?: unknown } | undefined)?.error;
  return typeof said === 'string' && said.startsWith('No route for ');
}

function pathOf(url: string | undefined): string {
  try {
    return new URL(url ?? '').pathname;
  } catch {
    return '';
  }
}

/** The registrar URL a request went to: its URL without the route. */
function registrarOrigin(url: string | undefined): string {
  try {
    const parsed = new URL(url ?? '');
    return `${parsed.origin}${parsed.pathname.replace(ROUTE, '')}`;
  } catch {
    return 'it';
  }
}
