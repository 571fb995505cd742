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
  if (error.name === 'HttpError' && error.status === undefined) {
    return '\n  Is the registrar running there? Start it with `svcmesh registrar`, or point --registrar / SVCMESH_REGISTRAR at it.';
  }
  if (error.name === 'HttpError' && error.status === 401) {
    // The registrar's own message names the flag and the variable already.
    if (error.message.includes('SVCMESH_TOKEN')) return '\n  To keep it for every command: `svcmesh config set token <token>`.';
    return "\n  Pass the registrar's token with --token, SVCMESH_TOKEN or `svcmesh config set token <token>`.";
  }
  if (error.name === 'HttpError' && error.status === 404 && notARegistrar(error as Error & { url?: string; body?: unknown })) {
    const origin = registrarOrigin((error as { url?: string }).url);
    return `\n  Is ${origin} a svcmesh registrar? A registrar answers every one of its routes, and with JSON: point --registrar / SVCMESH_REGISTRAR at one (its default port is 5001).`;
  }
  return '';
}

/** Routes a registrar always has: a 404 there, or a 404 that is not JSON, is from something else. */
const ALWAYS_ANSWERED = new Set(['/services', '/catalog', '/health', '/register', '/events', '/metrics']);

function notARegistrar(error: { url?: string; body?: unknown }): boolean {
  if (typeof error.body === 'string') return true;
  try {
    return ALWAYS_ANSWERED.has(new URL(error.url ?? '').pathname.replace(/^.*(\/[a-z]+)$/, '$1'));
  } catch {
    return false;
  }
}

function registrarOrigin(url: string | undefined): string {
  try {
    const parsed = new URL(url ?? '');
    return `${parsed.origin}${parsed.pathname.replace(/\/[a-z]+$/, '')}`;
  } catch {
    return 'it';
  }
}
