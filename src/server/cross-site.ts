import { ApiError } from './errors.js';

/**
 * Refuses a request another site's page made a browser send. A form can POST to any address
 * (a registrar on localhost included) with a body that reads as JSON, and the browser sends the
 * user's network position along: without a token, such a page could register, deregister and
 * forward. Programs (curl, svcmesh, services) send no Origin; the dashboard's own requests come
 * from the registrar's origin; a browser marks every other one with Origin or Sec-Fetch-Site.
 */
export function refuseCrossSite(origin: string | undefined, fetchSite: string | undefined, host: string | undefined): void {
  if (fetchSite === 'cross-site') throw refusal(origin ?? 'another site');
  if (origin === undefined) return;
  let originHost: string | undefined;
  try {
    originHost = new URL(origin).host;
  } catch {
    // "null" (a sandboxed frame, a file:// page) or worse: no page of ours.
  }
  if (originHost === undefined || originHost !== host) throw refusal(origin);
}

function refusal(origin: string): ApiError {
  return new ApiError(
    403,
    `Refused a request sent by a web page at ${origin}: a registrar takes writes and forwards from programs (curl, svcmesh, services) and from its own dashboard, not from other sites' pages`,
  );
}
