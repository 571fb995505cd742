/** The advice printed under an error, by `svcmesh <command>` and by the `ask` prompt alike. */
import { describe, expect, it } from 'vitest';
import { HttpError } from '../src/client/http.js';
import type { RegistrarClient } from '../src/client/registrar-client.js';
import { withServiceHint } from '../src/commands/unknown-service.js';
import { hintFor } from '../src/error-hint.js';

describe('the line under an error', () => {
  it('points at a registrar that is not there, and at the token one wants', () => {
    expect(hintFor(new HttpError('Cannot reach http://127.0.0.1:5001/forward: ECONNREFUSED', { url: 'http://127.0.0.1:5001/forward' }))).toMatch(
      /^\n {2}Is the registrar running there\? Start it with `svcmesh registrar`/,
    );
    expect(hintFor(new HttpError('http://127.0.0.1:5001/forward answered 401: …', { status: 401, url: 'http://127.0.0.1:5001/forward' }))).toMatch(
      /^\n {2}Pass the registrar's token with --token, SVCMESH_TOKEN/,
    );
  });

  it('says a registrar that took the connection and sent nothing may be stopped or swamped, not that it is not running', () => {
    const silent = new HttpError('Cannot reach http://127.0.0.1:5001/catalog: no answer in time', { url: 'http://127.0.0.1:5001/catalog' });
    expect(hintFor(silent)).toBe(
      '\n  Nothing came back in time: is the registrar there stopped or overloaded (a paused process, a machine under load), or is a firewall dropping the connection? (--timeout gives a slow one longer)',
    );
  });

  it('says an https URL pointed at a plain-http registrar is the wrong scheme, not a registrar that is not running', () => {
    const tls = new HttpError('Cannot reach https://127.0.0.1:5001/catalog: EPROTO', { url: 'https://127.0.0.1:5001/catalog' });
    expect(hintFor(tls)).toMatch(/^\n {2}Something answers there, but not over TLS: a registrar speaks plain http, so use http:\/\//);
  });

  it('does not repeat the flag and the variable the 401 message names already', () => {
    const named = new HttpError('http://127.0.0.1:5001/services answered 401: Missing or wrong token (svcmesh --token or SVCMESH_TOKEN)', { status: 401, url: 'http://127.0.0.1:5001/services' });
    expect(hintFor(named)).toBe('\n  To keep it for every command: `svcmesh config set token <token>`.');
    const refused = new HttpError('http://127.0.0.1:5001/services answered 401: The token is not valid: check --token, SVCMESH_TOKEN or `svcmesh config get token`', { status: 401, url: 'http://127.0.0.1:5001/services' });
    expect(hintFor(refused)).toBe('');
  });

  it('asks whether a URL that answers 404 on a route every registrar has, or a 404 page, is a registrar at all', () => {
    const noRoute = new HttpError('http://127.0.0.1:5000/catalog answered 404: No route for GET /catalog', { status: 404, url: 'http://127.0.0.1:5000/catalog', body: { error: 'No route for GET /catalog' } });
    expect(hintFor(noRoute)).toMatch(/^\n {2}Is http:\/\/127\.0\.0\.1:5000 a svcmesh registrar\?.*default port is 5001/);
    const page = new HttpError('http://127.0.0.1:8080/forward answered 404: <html>…', { status: 404, url: 'http://127.0.0.1:8080/forward', body: '<html>…' });
    expect(hintFor(page)).toMatch(/^\n {2}Is http:\/\/127\.0\.0\.1:8080 a svcmesh registrar\?/);
    // The Ollama service's port given for the registrar's: a route a registrar has, that it does not.
    const ollamaPort = new HttpError('http://127.0.0.1:5000/forward answered 404: No route for POST /forward', { status: 404, url: 'http://127.0.0.1:5000/forward', body: { error: 'No route for POST /forward' } });
    expect(hintFor(ollamaPort)).toMatch(/^\n {2}Is http:\/\/127\.0\.0\.1:5000 a svcmesh registrar\?/);
    const oneService = new HttpError('http://127.0.0.1:5000/services/web answered 404: No route for GET /services/web', { status: 404, url: 'http://127.0.0.1:5000/services/web', body: { error: 'No route for GET /services/web' } });
    expect(hintFor(oneService)).toMatch(/^\n {2}Is http:\/\/127\.0\.0\.1:5000 a svcmesh registrar\?/);
    // A service's own 404 page, relayed by a registrar (which names the instance): not about the registrar.
    const relayed = new HttpError('http://127.0.0.1:5001/forward answered 404: <html>', { status: 404, url: 'http://127.0.0.1:5001/forward', body: '<html>', instance: 'http://127.0.0.1:8080' });
    expect(hintFor(relayed)).toBe('');
    // A registrar's own 404 for a name it does not know is a different matter.
    const unknownName = new HttpError('… answered 404: Service olama is not registered', { status: 404, url: 'http://127.0.0.1:5001/forward', body: { error: 'Service olama is not registered' } });
    expect(hintFor(unknownName)).toBe('');
  });

  it("prefers the hint a command put on the error, and adds nothing to other errors", () => {
    const unknown = new HttpError('… answered 404: Service olama is not registered', { status: 404, url: 'http://127.0.0.1:5001/forward' });
    expect(hintFor(unknown)).toBe('');
    unknown.hint = 'Did you mean ollama_service?';
    expect(hintFor(unknown)).toBe('\n  Did you mean ollama_service?');
    expect(hintFor(new Error('something else'))).toBe('');
  });
});

describe('the hint for a name an empty registrar does not know', () => {
  const notRegistered = () => new HttpError('http://127.0.0.1:5001/forward answered 404: Service web is not registered', { status: 404, url: 'http://127.0.0.1:5001/forward' });
  /** What withServiceHint reads of a registrar: its names and its uptime. */
  const registrarUp = (uptimeSeconds: number, ttlSeconds?: number) =>
    ({
      baseUrl: 'http://127.0.0.1:5001',
      services: async () => ({ json: { services: {} }, text: '{"services":{}}', headers: { get: () => null } }),
      health: async () => ({ json: { status: 'ok', uptime_seconds: uptimeSeconds, ttl_seconds: ttlSeconds }, text: '', headers: { get: () => null } }),
    }) as unknown as RegistrarClient;

  it('says a registrar that just started may not have heard from its services yet', async () => {
    const error = (await withServiceHint(notRegistered(), registrarUp(12), 'web')) as HttpError;
    expect(error.hint).toBe(
      'Nothing is registered at http://127.0.0.1:5001 yet: it started 12 s ago, and services register again with their next heartbeat (or is that not the registrar you meant?)',
    );
  });

  it('counts "just started" within the TTL: with --ttl 30, services that heartbeat are back after 30 s', async () => {
    const early = (await withServiceHint(notRegistered(), registrarUp(20, 30), 'web')) as HttpError;
    expect(early.hint).toContain('yet: it started 20 s ago');
    const late = (await withServiceHint(notRegistered(), registrarUp(209, 30), 'web')) as HttpError;
    expect(late.hint).toBe('Nothing is registered at http://127.0.0.1:5001: is that the registrar you meant?');
    const defaultTtl = (await withServiceHint(notRegistered(), registrarUp(209, 300), 'web')) as HttpError;
    expect(defaultTtl.hint).toContain('yet: it started 209 s ago');
  });

  it('asks whether it is the registrar meant once it has been up a while', async () => {
    const error = (await withServiceHint(notRegistered(), registrarUp(3_600), 'web')) as HttpError;
    expect(error.hint).toBe('Nothing is registered at http://127.0.0.1:5001: is that the registrar you meant?');
  });
});
