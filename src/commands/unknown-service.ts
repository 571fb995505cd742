import type { RegistrarClient } from '../client/registrar-client.js';

/** How many close names a hint offers, and how many registered names it lists when none is close. */
const MAX_SUGGESTIONS = 3;
const MAX_LISTED = 8;

/**
 * A 404 for a service the registrar does not know, with the line a person needs next: the
 * registered names close to the one typed (a typo, another case), as git does for a mistyped
 * command; or else what is registered there, which also shows a registrar other than the one
 * meant. The hint goes on the error (`hint`), printed under its message. Any other error, and a
 * 404 for a name that is registered (the answer of the instance itself), is returned as it came.
 */
export async function withServiceHint(error: unknown, client: RegistrarClient, name: string): Promise<unknown> {
  const e = error as { name?: string; status?: number; hint?: string; message: string };
  if (e?.name !== 'HttpError' || e.status !== 404) return error;
  let names: string[];
  try {
    names = Object.keys((await client.services()).json.services ?? {});
  } catch {
    return error;
  }
  if (names.includes(name)) return error;
  // The registrar's own advice to HTTP callers ("did you mean …", GET /services): the hint
  // below says it in the terms of this command line, once.
  e.message = e.message.replace(/(is not registered) \((?:did you mean|GET \/services)[^)]*\)$/, '$1');
  const close = closeNames(name, names);
  if (close.length > 0) e.hint = `Did you mean ${orList(close)}?`;
  else if (names.length === 0) e.hint = await nothingRegistered(client);
  else {
    const sorted = [...names].sort();
    const more = sorted.length > MAX_LISTED ? `, and ${sorted.length - MAX_LISTED} more (svcmesh services lists them)` : '';
    e.hint = `Registered at ${client.baseUrl}: ${sorted.slice(0, MAX_LISTED).join(', ')}${more}`;
  }
  return error;
}

/**
 * A 404 for one instance (`deregister NAME URL`) of a name that is registered: the URLs it is
 * registered at, since the one given is most likely another spelling or an old address.
 */
export async function withInstanceHint(error: unknown, client: RegistrarClient, name: string, url: string): Promise<unknown> {
  const e = error as { name?: string; status?: number; hint?: string };
  if (e?.name !== 'HttpError' || e.status !== 404) return error;
  let urls: string[];
  try {
    urls = (await client.service(name)).json.instances.map((instance) => instance.url);
  } catch {
    // The name itself is unknown: the usual hint for names.
    return withServiceHint(error, client, name);
  }
  if (urls.length === 0 || urls.includes(url)) return error;
  const more = urls.length > MAX_LISTED ? `, and ${urls.length - MAX_LISTED} more (svcmesh services ${name} lists them)` : '';
  e.hint = `${name} is registered at ${urls.slice(0, MAX_LISTED).join(', ')}${more}: give one of those, or only the name to remove every instance`;
  return error;
}

/**
 * A registrar that started this recently may simply not have heard from its services yet: within
 * its TTL (every service that heartbeats does so within it), at most five minutes.
 */
const RECENT_START_SECONDS = 300;

/**
 * An empty registrar: most often the wrong one, but one that just restarted on a memory store is
 * empty until its services' next heartbeats (the Ollama service sends one every two minutes).
 */
async function nothingRegistered(client: RegistrarClient): Promise<string> {
  const nothing = `Nothing is registered at ${client.baseUrl}`;
  try {
    const { uptime_seconds: uptime, ttl_seconds: ttl } = (await client.health()).json;
    const recent = typeof ttl === 'number' && ttl > 0 ? Math.min(ttl, RECENT_START_SECONDS) : RECENT_START_SECONDS;
    if (typeof uptime === 'number' && uptime < recent) {
      return `${nothing} yet: it started ${uptime} s ago, and services register again with their next heartbeat (or is that not the registrar you meant?)`;
    }
  } catch {
    // No health to read: the plain question it is.
  }
  return `${nothing}: is that the registrar you meant?`;
}

/**
 * The names a typo of `typed` could be: another case of it, one that starts with it, or one a few
 * edits away (more for a longer name); the closest first.
 */
export function closeNames(typed: string, names: readonly string[]): string[] {
  const wanted = typed.toLowerCase();
  const allowed = wanted.length <= 4 ? 1 : wanted.length <= 8 ? 2 : 3;
  return names
    .map((name) => {
      const lower = name.toLowerCase();
      const distance = lower.startsWith(wanted) && wanted.length >= 3 ? 0.5 : editDistance(wanted, lower);
      return { name, distance };
    })
    .filter(({ distance }) => distance <= allowed)
    .sort((a, b) => a.distance - b.distance || a.name.localeCompare(b.name))
    .slice(0, MAX_SUGGESTIONS)
    .map(({ name }) => name);
}

/** Insertions, deletions, substitutions and swaps of two neighbours (optimal string alignment). */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Number.POSITIVE_INFINITY;
  let beforeLast: number[] = [];
  let last = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const row = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(last[j]! + 1, row[j - 1]! + 1, last[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, beforeLast[j - 2]! + 1);
      row.push(best);
    }
    beforeLast = last;
    last = row;
  }
  return last[b.length]!;
}

function orList(names: string[]): string {
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}
