/**
 * The registrar client and the heartbeat loop, straight against an in-process registrar app
 * through an injected fetch (no socket), plus one real fetch to a closed port.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { startHeartbeatLoop, type HeartbeatLoop } from '../src/client/heartbeat-loop.js';
import { HttpError } from '../src/client/http.js';
import { createRegistrarClient } from '../src/client/registrar-client.js';
import { MemoryStore } from '../src/registry/memory.js';
import { Registry } from '../src/registry/registry.js';
import { createForwarder } from '../src/server/forwarder.js';
import { createRegistrarApp } from '../src/server/registrar.js';
import { waitFor } from './support/fake-ollama.js';
import { startSilentServer } from './support/silent-server.js';

const BASE = 'http://registrar.test';
const cleanups: Array<() => Promise<unknown> | unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function registrar(options: { token?: string; ttlSeconds?: number } = {}) {
  const ttlSeconds = options.ttlSeconds ?? 300;
  const registry = new Registry(new MemoryStore({ ttlSeconds }));
  const forwarder = createForwarder({ registry, timeoutMs: 5_000 });
  const app = createRegistrarApp({ registry, forwarder, ttlSeconds, token: options.token });
  cleanups.push(() => forwarder.close(), () => registry.close());
  return { app, registry };
}

interface Call {
  method: string;
  path: string;
  body: unknown;
}

/** A fetch that hands the request to the app in-process, and records what was asked. */
function inProcess(app: Hono, calls: Call[] = [], before?: (call: Call) => Promise<void>) {
  return async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(url, init);
    const text = init?.body === undefined ? undefined : String(init.body);
    const call = { method: request.method, path: new URL(request.url).pathname, body: text === undefined ? undefined : JSON.parse(text) };
    calls.push(call);
    await before?.(call);
    return app.fetch(request);
  };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('createRegistrarClient', () => {
  it('registers, lists, renews, describes and deregisters', async () => {
    const { app } = registrar();
    const client = createRegistrarClient({ baseUrl: `${BASE}/`, fetch: inProcess(app) });
    expect(client.baseUrl).toBe(BASE);

    const registered = await client.register('ollama_service', 'http://127.0.0.1:5000', { model: 'llama3.2' });
    expect(registered.json).toEqual({ message: 'Service ollama_service registered at http://127.0.0.1:5000' });
    expect(registered.text).toBe('{"message":"Service ollama_service registered at http://127.0.0.1:5000"}');

    const services = await client.services();
    expect(services.json).toEqual({ services: { ollama_service: 'http://127.0.0.1:5000' } });
    expect(services.text).toBe('{"services":{"ollama_service":"http://127.0.0.1:5000"}}');

    expect((await client.heartbeat('ollama_service')).json).toEqual({ message: 'Heartbeat received from ollama_service' });
    expect((await client.heartbeat('ollama_service', 'http://127.0.0.1:5000')).json).toEqual({ message: 'Heartbeat received from ollama_service' });

    const service = await client.service('ollama_service');
    expect(service.json.name).toBe('ollama_service');
    expect(service.json.instances).toMatchObject([{ url: 'http://127.0.0.1:5000', metadata: { model: 'llama3.2' } }]);

    expect((await client.health()).json).toMatchObject({ status: 'ok', services: 1, instances: 1 });

    await client.deregister('ollama_service');
    expect((await client.services()).json).toEqual({ services: {} });
  });

  it('throws an HttpError with the status and the server message on a non-2xx answer', async () => {
    const { app } = registrar();
    const client = createRegistrarClient({ baseUrl: BASE, fetch: inProcess(app) });

    const error = await client.heartbeat('ghost').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect(error).toMatchObject({ status: 404, url: `${BASE}/heartbeat` });
    expect((error as HttpError).message).toContain(`${BASE}/heartbeat answered 404`);
    expect((error as HttpError).message).toContain('Service ghost is not registered');
    expect((error as HttpError).body).toMatchObject({ error: expect.stringContaining('ghost') });

    const bad = await client.register('ollama_service', 'ftp://nowhere').catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(HttpError);
    expect((bad as HttpError).status).toBe(400);
    expect((bad as HttpError).message).toContain('`service_url` must be an http(s) URL');

    const missing = await client.service('nobody').catch((e: unknown) => e);
    expect((missing as HttpError).status).toBe(404);
  });

  it('sends the token, and reports a refused one as a 401', async () => {
    const { app } = registrar({ token: 's3cret' });
    const good = createRegistrarClient({ baseUrl: BASE, token: 's3cret', fetch: inProcess(app) });
    const wrong = createRegistrarClient({ baseUrl: BASE, token: 'nope', fetch: inProcess(app) });

    const refused = await wrong.register('a', 'http://127.0.0.1:1').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HttpError);
    expect((refused as HttpError).status).toBe(401);
    expect((await good.register('a', 'http://127.0.0.1:1')).json.message).toBe('Service a registered at http://127.0.0.1:1');
    expect((await wrong.services()).json).toEqual({ services: { a: 'http://127.0.0.1:1' } });
  });

  it('throws an HttpError without a status, naming the URL, when nothing answers', async () => {
    const base = `http://127.0.0.1:${await closedPort()}`;
    const client = createRegistrarClient({ baseUrl: base, timeoutMs: 5_000 });
    const error = await client.services().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).status).toBeUndefined();
    expect((error as HttpError).url).toBe(`${base}/services`);
    expect((error as HttpError).message).toContain(`Cannot reach ${base}/services`);
    expect((error as HttpError).message).toMatch(/ECONNREFUSED/);
  });
});

describe('the bound on a call that can also be cancelled', () => {
  it('still gives up on a registrar that never answers, however often the garbage collector runs meanwhile', async () => {
    // AbortSignal.any holds its signals weakly on Node 20: a timeout signal given only to it was
    // collected and never fired (nodejs/node#57736), and the heartbeat loop hung on a stalled registrar.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const silent = await startSilentServer();
    cleanups.push(() => silent.close());
    const client = createRegistrarClient({ baseUrl: silent.url, timeoutMs: 300 });
    const cancel = new AbortController();
    const outcome = client.heartbeat('web', 'http://127.0.0.1:8080', undefined, cancel.signal).then(
      () => 'answered',
      (error: Error) => error.message,
    );
    const collecting = setInterval(gc, 20);
    const settled = await Promise.race([outcome, new Promise((resolve) => setTimeout(() => resolve('still waiting after 5 s'), 5_000))]);
    clearInterval(collecting);
    expect(settled).toMatch(/no answer in time/);
  });
});

describe('startHeartbeatLoop', () => {
  const NAME = 'ollama_service';
  const URL_ = 'http://127.0.0.1:5000';
  const noop = () => {};

  function loop(app: Hono, calls: Call[], intervalMs = 20, before?: (call: Call) => Promise<void>, log: (line: string) => void = noop): HeartbeatLoop {
    const client = createRegistrarClient({ baseUrl: BASE, fetch: inProcess(app, calls, before) });
    const running = startHeartbeatLoop({ client, name: NAME, url: URL_, metadata: { model: 'llama3.2' }, intervalMs, retryMs: intervalMs, log, warn: noop });
    cleanups.push(() => running.stop());
    return running;
  }

  it('registers, then heartbeats with its url', async () => {
    const { app, registry } = registrar();
    const calls: Call[] = [];
    loop(app, calls);

    await waitFor(() => calls.length >= 4, 5_000, 'a registration and two heartbeats');
    expect(calls[0]).toEqual({ method: 'POST', path: '/register', body: { service_name: NAME, service_url: URL_, metadata: { model: 'llama3.2' } } });
    // The registrar's TTL, read once registered, to check the interval against.
    expect(calls[1]).toMatchObject({ method: 'GET', path: '/health' });
    // With the metadata, for a registrar that lost the instance to register it whole.
    expect(calls.slice(2, 4)).toEqual([
      { method: 'POST', path: '/heartbeat', body: { service_name: NAME, service_url: URL_, metadata: { model: 'llama3.2' } } },
      { method: 'POST', path: '/heartbeat', body: { service_name: NAME, service_url: URL_, metadata: { model: 'llama3.2' } } },
    ]);
    expect(registry.instances(NAME)).toMatchObject([{ url: URL_, metadata: { model: 'llama3.2' } }]);
  });

  it('brings the registration back, metadata and all, with the next heartbeat after the registrar lost it, and says so', async () => {
    const { app, registry } = registrar();
    const calls: Call[] = [];
    const logs: string[] = [];
    loop(app, calls, 20, undefined, (line) => logs.push(line));
    await waitFor(() => registry.instances(NAME).length === 1, 5_000, 'the registration');

    // A registrar restart, as seen from outside: the catalog no longer knows the instance.
    await registry.deregister(NAME);
    expect(registry.instances(NAME)).toEqual([]);
    const seen = calls.length;
    await waitFor(() => registry.instances(NAME).length === 1, 5_000, 'the registration to come back');
    expect(registry.instances(NAME)).toMatchObject([{ url: URL_, metadata: { model: 'llama3.2' } }]);
    expect(calls.slice(seen).some((call) => call.path === '/heartbeat')).toBe(true);
    expect(calls.slice(seen).some((call) => call.path === '/register')).toBe(false);
    await waitFor(() => logs.includes(`The registrar at ${BASE} had lost ${NAME} at ${URL_}: registered again`), 5_000, 'the log line');
  });

  it('registers again when a name-only registrar answers 404', async () => {
    const { app, registry } = registrar();
    const calls: Call[] = [];
    // A registrar that does not heal from the URL: the heartbeat reaches it without service_url.
    const stripUrl = async (url: string | URL | Request, init?: RequestInit) => {
      const body = init?.body === undefined ? undefined : (JSON.parse(String(init.body)) as Record<string, unknown>);
      if (new URL(String(url)).pathname === '/heartbeat') delete body!.service_url;
      return inProcess(app, calls)(url, { ...init, body: body === undefined ? undefined : JSON.stringify(body) });
    };
    const client = createRegistrarClient({ baseUrl: BASE, fetch: stripUrl });
    const running = startHeartbeatLoop({ client, name: NAME, url: URL_, intervalMs: 20, log: noop, warn: noop });
    cleanups.push(() => running.stop());
    await waitFor(() => registry.instances(NAME).length === 1, 5_000, 'the registration');
    await registry.deregister(NAME);
    await waitFor(() => calls.filter((c) => c.path === '/register').length >= 2, 5_000, 'a second registration');
    await waitFor(() => registry.instances(NAME).length === 1, 5_000, 'the registration to come back');
  });

  it('keeps trying when the registrar is unreachable, and registers once it answers', async () => {
    const { app, registry } = registrar();
    let down = true;
    const warnings: string[] = [];
    const flaky = async (url: string | URL | Request, init?: RequestInit) => {
      if (down) throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      return app.fetch(new Request(url, init));
    };
    const client = createRegistrarClient({ baseUrl: BASE, fetch: flaky });
    const running = startHeartbeatLoop({ client, name: NAME, url: URL_, intervalMs: 20, retryMs: 10, log: noop, warn: (line) => warnings.push(line) });
    cleanups.push(() => running.stop());
    await waitFor(() => warnings.length >= 2, 5_000, 'two failed attempts');
    expect(warnings[0]).toContain(`Cannot reach ${BASE}/register`);
    down = false;
    await waitFor(() => registry.instances(NAME).length === 1, 5_000, 'the registration');
  });

  it('deregisters on leaving after a registration that answered 503 but took effect (a file store that could not save)', async () => {
    const { app, registry } = registrar();
    const warnings: string[] = [];
    // The registrar applies the registration, then cannot save it: 503.
    const unsaved = async (url: string | URL | Request, init?: RequestInit) => {
      const response = await app.fetch(new Request(url, init));
      if (new URL(String(url)).pathname !== '/register') return response;
      return Response.json({ error: 'Could not save the change to the catalog file /x/c.json: EROFS' }, { status: 503 });
    };
    const client = createRegistrarClient({ baseUrl: BASE, fetch: unsaved });
    const running = startHeartbeatLoop({ client, name: NAME, url: URL_, intervalMs: 20, retryMs: 10, log: noop, warn: (line) => warnings.push(line) });
    await waitFor(() => warnings.length >= 1, 5_000, 'a failed registration');
    expect(warnings[0]).toMatch(/^Registration failed: .*EROFS\. Trying again in /);
    expect(registry.instances(NAME)).toHaveLength(1);
    await running.leave();
    expect(registry.instances(NAME)).toEqual([]);
  });

  it('registers again within its restart probe when a memory-store registrar restarted between beats, not a whole interval later', async () => {
    let current = registrar();
    const logs: string[] = [];
    // One URL, whichever registrar answers there: the first, then the one started after it.
    const fetchImpl = async (url: string | URL | Request, init?: RequestInit) => current.app.fetch(new Request(url, init));
    const client = createRegistrarClient({ baseUrl: BASE, fetch: fetchImpl });
    // Beats a minute apart: only the probe can bring the registration back within this test.
    const running = startHeartbeatLoop({ client, name: NAME, url: URL_, intervalMs: 60_000, restartProbeMs: 30, log: (line) => logs.push(line), warn: noop });
    cleanups.push(() => running.stop());
    await waitFor(() => current.registry.instances(NAME).length === 1, 5_000, 'the registration');

    await new Promise((resolve) => setTimeout(resolve, 5));
    current = registrar();
    expect(current.registry.instances(NAME)).toEqual([]);
    await waitFor(() => current.registry.instances(NAME).length === 1, 5_000, 'the registration on the restarted registrar');
    expect(logs).toContain(`The registrar at ${BASE} had lost ${NAME} at ${URL_}: registered again`);
  });

  it('stops at a first answer that says the URL is no registrar (5000 for 5001), but retries one once it has registered', async () => {
    const { app, registry } = registrar();
    let notARegistrar = true;
    // What the Ollama service on 5000, or Ollama itself, answers to POST /register.
    const fetchImpl = async (url: string | URL | Request, init?: RequestInit) =>
      notARegistrar ? new Response('404 page not found', { status: 404, headers: { 'content-type': 'text/plain' } }) : app.fetch(new Request(url, init));
    const client = createRegistrarClient({ baseUrl: BASE, fetch: fetchImpl });
    const start = (refused: HttpError[], warnings: string[]) => {
      const running = startHeartbeatLoop({ client, name: NAME, url: URL_, intervalMs: 20, retryMs: 10, onRefused: (error) => refused.push(error), log: noop, warn: (line) => warnings.push(line) });
      cleanups.push(() => running.stop());
    };

    const refusedAtStart: HttpError[] = [];
    const warnedAtStart: string[] = [];
    start(refusedAtStart, warnedAtStart);
    await waitFor(() => refusedAtStart.length === 1, 5_000, 'the refusal');
    expect(refusedAtStart[0]!.message).toBe(`${BASE}/register answered 404: 404 page not found`);
    expect(warnedAtStart).toEqual([]);

    // A registrar that took the registration, then sends the same for a while (a proxy's moment).
    notARegistrar = false;
    const refusedLater: HttpError[] = [];
    const warnedLater: string[] = [];
    start(refusedLater, warnedLater);
    await waitFor(() => registry.instances(NAME).length === 1, 5_000, 'the registration');
    notARegistrar = true;
    await waitFor(() => warnedLater.length >= 2, 5_000, 'two failed heartbeats');
    expect(refusedLater).toEqual([]);
    expect(warnedLater[0]).toContain('answered 404: 404 page not found. Trying again in');
  });

  it('leaves quietly after registrations that were refused or never arrived', async () => {
    const { app, registry } = registrar();
    const warnings: string[] = [];
    let call = 0;
    const paths: string[] = [];
    const refusedThenDown = async (url: string | URL | Request, init?: RequestInit) => {
      call += 1;
      paths.push(new URL(String(url)).pathname);
      if (call === 1) return Response.json({ error: 'Invalid request' }, { status: 400 });
      if (new URL(String(url)).pathname === '/register') throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      return app.fetch(new Request(url, init));
    };
    const client = createRegistrarClient({ baseUrl: BASE, fetch: refusedThenDown });
    const running = startHeartbeatLoop({ client, name: NAME, url: URL_, intervalMs: 20, retryMs: 10, log: noop, warn: (line) => warnings.push(line) });
    await waitFor(() => warnings.length >= 2, 5_000, 'two failed registrations');
    await running.leave();
    // No registration got an answer: none is taken to stand, so no deregistration is sent (and waited for).
    expect(paths).not.toContain('/deregister');
    expect(warnings.filter((line) => line.startsWith('Could not deregister'))).toEqual([]);
    expect(registry.instances(NAME)).toEqual([]);
  });

  it("keeps the documented 120 s against the default TTL of 300 s", async () => {
    const { app } = registrar();
    const logs: string[] = [];
    const client = createRegistrarClient({ baseUrl: BASE, fetch: inProcess(app) });
    const running = startHeartbeatLoop({ client, name: NAME, url: URL_, log: (line) => logs.push(line), warn: noop });
    cleanups.push(() => running.stop());
    await waitFor(() => logs.length >= 2, 5_000, 'the registration and the interval');
    expect(logs[1]).toBe('Heartbeat every 120 s (the registrar evicts after 300 s without one)');
  });

  it("fits its interval to the registrar's TTL, and again after a restart with another TTL", async () => {
    const before = registrar({ ttlSeconds: 0.9 });
    const after = registrar({ ttlSeconds: 1.5 });
    let app = before.app;
    const logs: string[] = [];
    const client = createRegistrarClient({ baseUrl: BASE, fetch: async (url, init) => app.fetch(new Request(url, init)) });
    // No interval given: 120 s would let a 0.9 s TTL evict the instance between beats.
    const running = startHeartbeatLoop({ client, name: NAME, url: URL_, log: (line) => logs.push(line), warn: noop });
    cleanups.push(() => running.stop());
    await waitFor(() => logs.includes('Heartbeat every 0.3 s (the registrar evicts after 0.9 s without one)'), 5_000, 'an interval of a third of 0.9 s');
    expect(before.registry.instances(NAME)).toHaveLength(1);

    // A restart with --ttl 1.5: the instance comes back from a heartbeat, and the interval follows.
    app = after.app;
    await waitFor(() => logs.includes('Heartbeat every 0.5 s (the registrar evicts after 1.5 s without one)'), 10_000, 'an interval of a third of 1.5 s');
    expect(after.registry.instances(NAME)).toHaveLength(1);
  });

  it('stops: stop() resolves and no call happens afterwards', async () => {
    const { app } = registrar();
    const calls: Call[] = [];
    const running = loop(app, calls);
    await waitFor(() => calls.some((call) => call.path === '/heartbeat'), 5_000, 'a heartbeat');
    await running.stop();
    const after = calls.length;
    await new Promise((resolve) => setTimeout(resolve, 100)); // five intervals
    expect(calls.length).toBe(after);
  });

  it('waits in stop() for a call in flight, so nothing registers after it returns', async () => {
    const { app, registry } = registrar();
    const calls: Call[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // Hold the very first call (the registration) until the test lets it go.
    const running = loop(app, calls, 20, async (call) => {
      if (call.path === '/register') await held;
    });
    await waitFor(() => calls.length === 1, 5_000, 'the registration to start');

    let stopped = false;
    const stopping = running.stop().then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(stopped).toBe(false);

    release();
    await stopping;
    // The registration that was in flight has landed; the shutdown can now deregister for good.
    expect(registry.instances(NAME)).toHaveLength(1);
    await registry.deregister(NAME);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(calls.filter((call) => call.method === 'POST')).toHaveLength(1);
    expect(registry.instances(NAME)).toEqual([]);
  });
});
