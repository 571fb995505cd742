import type { MiddlewareHandler } from 'hono';
import { isIP } from 'node:net';
import { ApiError } from './errors.js';

/**
 * Refuses a request a web page made a browser send, unless it is a page of this server opened by
 * its address. A form can POST to any address (a registrar on localhost included) with a body
 * that reads as JSON, and the browser sends the user's network position along: without a token,
 * such a page could register, deregister and forward. Programs (curl, svcmesh, services) send
 * neither Origin nor Sec-Fetch-Site, and are not concerned.
 *
 * A browser's request from another site says so (Origin, Sec-Fetch-Site). One that claims to come
 * from this very server may come from a page under a name an attacker made resolve here (DNS
 * rebinding, as in Ollama's CVE-2024-28224): it is taken only when the server was reached by an
 * address or by localhost, names no one else can point here. The server's own pages (the
 * dashboard) only ever read, so this costs them nothing.
 */
export function refuseCrossSite(origin: string | undefined, fetchSite: string | undefined, host: string | undefined): void {
  if (fetchSite === 'cross-site' || fetchSite === 'same-site') throw refusal(origin ?? 'another site');
  if (origin === undefined && fetchSite === undefined) return;
  if (origin !== undefined && hostOf(origin) !== host) throw refusal(origin);
  if (!reachedByAddress(host)) throw rebindingRefusal(origin ?? `http://${host}`);
}

/** The origin's host:port, or undefined for `null` (a sandboxed frame, a file:// page) or worse. */
function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

function reachedByAddress(host: string | undefined): boolean {
  if (!host) return false;
  let hostname: string;
  try {
    hostname = new URL(`http://${host}`).hostname;
  } catch {
    return false;
  }
  const bare = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  return isIP(bare) !== 0 || bare === 'localhost' || bare.endsWith('.localhost');
}

function refusal(origin: string): ApiError {
  return new ApiError(
    403,
    `Refused a request sent by a web page at ${origin}: this server takes writes from programs (curl, svcmesh, services), not from other sites' pages`,
  );
}

function rebindingRefusal(origin: string): ApiError {
  return new ApiError(
    403,
    `Refused a request sent by a web page at ${origin}: a browser's writes are taken only from a page opened by this server's address (or localhost), since a page under another name may be a DNS-rebinding attack. Programs (curl, svcmesh, services) are not concerned`,
  );
}

/** refuseCrossSite for the POSTs of a Hono route (the registrar's node fast path calls it itself). */
export const refuseBrowserWrites: MiddlewareHandler = async (c, next) => {
  if (c.req.method === 'POST') refuseCrossSite(c.req.header('origin'), c.req.header('sec-fetch-site'), c.req.header('host') ?? new URL(c.req.url).host);
  await next();
};
