/**
 * What POST /register accepts as a service's name, URL and metadata, as plain functions: the HTTP
 * layer's schemas and the file store's loader both apply them, so a catalog file can never hold an
 * instance the API would have refused.
 */

import { isServiceName, SERVICE_NAME_RULE } from '../service-name.js';

export const serviceNameProblem = (name: string): string | undefined => (isServiceName(name) ? undefined : `must be ${SERVICE_NAME_RULE}`);

/** What is wrong with a service URL, given as parsed by `parsedHttpUrl` (undefined: not http(s)). */
export function serviceUrlProblem(url: URL | undefined): string | undefined {
  if (url === undefined) return 'must be an http(s) URL such as http://127.0.0.1:5000';
  // Credentials in a service URL would be listed by /services and written to the logs.
  if (url.username !== '' || url.password !== '') return 'must not carry a user name or password';
  if (url.port === '0') return 'must name the port the service listens on (port 0 cannot be reached)';
  return undefined;
}

export const MAX_METADATA_DEPTH = 32;
export const MAX_METADATA_BYTES = 64 * 1024;

/**
 * What is wrong with a metadata object: kept small, because every read of the catalog and every
 * event carries it, and writing a value nested thousands deep back as JSON would overflow the
 * stack on each of them.
 */
export function metadataProblem(value: Readonly<Record<string, unknown>>): string | undefined {
  const protoKey = protoKeyProblem(value);
  if (protoKey) return protoKey;
  if (deeperThan(value, MAX_METADATA_DEPTH)) {
    return `is nested more than ${MAX_METADATA_DEPTH} levels deep: keep it to a few fields, e.g. {"model": "llama3.2"}`;
  }
  if (Buffer.byteLength(JSON.stringify(value)) > MAX_METADATA_BYTES) {
    return `is over ${MAX_METADATA_BYTES / 1024} KiB as JSON: keep it to a few fields, e.g. {"model": "llama3.2"}`;
  }
  return undefined;
}

/**
 * JSON can carry a "__proto__" key, but copying the object makes it the copy's prototype instead:
 * the key would vanish without a word.
 */
export function protoKeyProblem(value: object): string | undefined {
  return Object.hasOwn(value, '__proto__') ? 'has a key "__proto__", which cannot be kept: rename it' : undefined;
}

/** Whether objects and arrays nest past `limit` levels; a loop, not recursion, whatever the depth. */
function deeperThan(value: unknown, limit: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 1]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth > limit) return true;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}
