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
  if (error.name === 'HttpError' && error.status === undefined) {
    return '\n  Is the registrar running there? Start it with `svcmesh registrar`, or point --registrar / SVCMESH_REGISTRAR at it.';
  }
  if (error.name === 'HttpError' && error.status === 401) {
    return "\n  Pass the registrar's token with --token, SVCMESH_TOKEN or `svcmesh config set token <token>`.";
  }
  return '';
}
