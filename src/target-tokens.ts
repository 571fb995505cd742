import { fitsInHeader } from './header-value.js';
import { serviceName } from './server/validation.js';

/**
 * The bearer token the registrar sends to each target's `/receive`: one per service where a
 * service has its own (`--target-token-for name=secret`), else the default (`--target-token`).
 * Services in one mesh need not share a secret.
 */
export type TargetHeaders = (service: { readonly name: string }) => Readonly<Record<string, string>> | undefined;

export class TargetTokenError extends Error {
  override readonly name = 'TargetTokenError';
}

/** `name=secret` entries; a name given twice, or an entry without both parts, is refused. */
export function parseTargetTokens(entries: readonly string[], source = '--target-token-for'): Map<string, string> {
  const tokens = new Map<string, string>();
  for (const entry of entries) {
    // Split at the first "=": names cannot hold one, secrets (base64 padding) often do.
    const at = entry.indexOf('=');
    const name = entry.slice(0, at).trim();
    const secret = entry.slice(at + 1).trim();
    if (at < 0) {
      throw new TargetTokenError(`${source} takes SERVICE=SECRET (e.g. ollama_service=<token>): an entry has no "=" (not shown, in case it is a secret)`);
    }
    if (!serviceName.safeParse(name).success || secret === '') {
      throw new TargetTokenError(`${source} entry "${redact(entry)}" is not SERVICE=SECRET (e.g. ollama_service=<token>)`);
    }
    if (!fitsInHeader(secret)) {
      throw new TargetTokenError(
        `${source} entry "${redact(entry)}" holds a line break, a control character, a letter outside ASCII (ä, ✓) or a space at its start or end, which HTTP clients do not all send as they are: give a secret of ASCII letters, digits and punctuation`,
      );
    }
    if (tokens.has(name)) throw new TargetTokenError(`${source} names ${name} twice: give each service one token`);
    tokens.set(name, secret);
  }
  return tokens;
}

export function targetHeaders(defaultToken: string | undefined, byService: ReadonlyMap<string, string>): TargetHeaders {
  const headerOf = (token: string) => Object.freeze({ authorization: `Bearer ${token}` });
  const fallback = defaultToken ? headerOf(defaultToken) : undefined;
  // Built once, so a forward only looks its headers up.
  const headers = new Map([...byService].map(([name, token]) => [name, headerOf(token)]));
  return (service) => headers.get(service.name) ?? fallback;
}

// An error message ends up in terminals and logs: never print a secret back.
function redact(entry: string): string {
  const at = entry.indexOf('=');
  return at < 0 ? '…' : `${entry.slice(0, at)}=…`;
}
