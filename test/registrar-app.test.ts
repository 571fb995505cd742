/**
 * The registrar's HTTP API in-process (`app.request()`), with the real forwarder talking to real
 * target servers on 127.0.0.1, since forwarding needs sockets.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../src/registry/memory.js';
import { Registry } from '../src/registry/registry.js';
import { createForwarder, type Forwarder } from '../src/server/forwarder.js';
import { createRegistrarApp } from '../src/server/registrar.js';

const T0 = Date.UTC(2025, 0, 20, 10, 0, 0);
const TTL_S = 300;

const cleanups: Array<() => Promise<unknown> | unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.restoreAllMocks();
});

beforeEach(() => {
  // The forwarder logs every failed attempt; the assertions are on the answers.
  vi.spyOn(console, 'error').mockImplementation(() => {});
});

interface Setup {
  app: Hono;
  registry: Registry;
  forwarder: Forwarder;
  clock: { now(): number; set(t: number): void };
}

function setup(options: { token?: string; timeoutMs?: number; maxAnswerBytes?: number } = {}): Setup {
  let t = T0;
  const clock = { now: () => t, set: (time: number) => void (t = time) };
  const registry = new Registry(new MemoryStore({ ttlSeconds: TTL_S, clock }), { clock });
  const forwarder = createForwarder({ registry, timeoutMs: options.timeoutMs ?? 5_000, maxAnswerBytes: options.maxAnswerBytes });
  const app = createRegistrarApp({ registry, forwarder, ttlSeconds: TTL_S, token: options.token });
  cleanups.push(() => forwarder.close(), () => registry.close());
  return { app, registry, forwarder, clock };
}

function post(app: Hono, path: string, body: unknown, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function json(response: Response): Promise<Record<string, unknown>> {
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  return (await response.json()) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Real targets on 127.0.0.1.

interface Target {
  url: string;
  /** What each `/receive` call carried: path and parsed body. */
  received: Array<{ path: string; body: unknown }>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void | Promise<void>;

async function startTarget(handler: Handler): Promise<Target> {
  const received: Target['received'] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      received.push({ path: req.url ?? '', body: text ? JSON.parse(text) : undefined });
      void handler(req, res, text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

function answering(status: number, text: string, contentType = 'application/json'): Handler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
}

/** A port nothing listens on (it did a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A promise with its resolve, to let a target go on when the test says so. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

/** Reads an NDJSON body one line at a time, as the caller would see them arrive. */
function lineReader(response: Response) {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  return async function nextLine(): Promise<string | undefined> {
    for (;;) {
      const newline = buffer.indexOf('\n');
      if (newline !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) {
        const rest = buffer;
        buffer = '';
        return rest === '' ? undefined : rest;
      }
      buffer += decoder.decode(value, { stream: true });
    }
  };
}

async function allLines(response: Response): Promise<string[]> {
  const next = lineReader(response);
  const lines: string[] = [];
  for (let line = await next(); line !== undefined; line = await next()) lines.push(line);
  return lines;
}

// ---------------------------------------------------------------------------------------------

describe("the seed's API, byte for byte", () => {
  it('registers, lists and takes heartbeats with the exact seed bodies', async () => {
    const { app } = setup();
    const registered = await post(app, '/register', { service_name: 'ollama_service', service_url: 'http://127.0.0.1:5000' });
    expect(registered.status).toBe(200);
    expect(await registered.text()).toBe('{"message":"Service ollama_service registered at http://127.0.0.1:5000"}');

    const services = await app.request('/services');
    expect(services.status).toBe(200);
    expect(services.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await services.text()).toBe('{"services":{"ollama_service":"http://127.0.0.1:5000"}}');

    const heartbeat = await post(app, '/heartbeat', { service_name: 'ollama_service' });
    expect(heartbeat.status).toBe(200);
    expect(await heartbeat.text()).toBe('{"message":"Heartbeat received from ollama_service"}');
  });

  it("forwards to the target's /receive and answers its body and status as they came", async () => {
    const { app } = setup();
    const answer = '{"message": "Artificial Intelligence (AI) is \u2026"}'; // spacing kept as the target sent it
    const target = await startTarget(answering(200, answer));
    await post(app, '/register', { service_name: 'ollama_service', service_url: target.url });

    const response = await post(app, '/forward', { from: 'test_service', to: 'ollama_service', message: 'What is AI?' });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(answer);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('x-svcmesh-instance')).toBe(target.url);
    expect(target.received).toEqual([{ path: '/receive', body: { from: 'test_service', message: 'What is AI?' } }]);
  });

  it('keeps a path prefix of the service URL in front of /receive', async () => {
    const { app } = setup();
    const target = await startTarget(answering(200, '{"message":"ok"}'));
    await post(app, '/register', { service_name: 'prefixed', service_url: `${target.url}/api/v1/` });
    const response = await post(app, '/forward', { from: 'x', to: 'prefixed', message: 'hi' });
    expect(response.status).toBe(200);
    expect(target.received[0]!.path).toBe('/api/v1/receive');
  });
});

describe('reads and the rest of the API', () => {
  it('describes one service with all its instances', async () => {
    const { app, clock } = setup();
    await post(app, '/register', { service_name: 'ollama_service', service_url: 'http://127.0.0.1:5000', metadata: { model: 'llama3.2' } });
    clock.set(T0 + 1_500);
    await post(app, '/register', { service_name: 'ollama_service', service_url: 'http://127.0.0.1:5002' });

    const response = await app.request('/services/ollama_service');
    expect(response.status).toBe(200);
    expect(await json(response)).toEqual({
      name: 'ollama_service',
      instances: [
        {
          url: 'http://127.0.0.1:5000',
          registered_at: '2025-01-20T10:00:00.000Z',
          last_heartbeat: '2025-01-20T10:00:00.000Z',
          expires_at: '2025-01-20T10:05:00.000Z',
          metadata: { model: 'llama3.2' },
        },
        {
          url: 'http://127.0.0.1:5002',
          registered_at: '2025-01-20T10:00:01.500Z',
          last_heartbeat: '2025-01-20T10:00:01.500Z',
          expires_at: '2025-01-20T10:05:01.500Z',
          metadata: {},
        },
      ],
    });

    const missing = await app.request('/services/nobody');
    expect(missing.status).toBe(404);
    expect((await json(missing)).error).toMatch(/nobody/);
  });

  it('deregisters one instance or a whole service, and answers 404 for what is not there', async () => {
    const { app } = setup();
    await post(app, '/register', { service_name: 'a', service_url: 'http://127.0.0.1:1' });
    await post(app, '/register', { service_name: 'a', service_url: 'http://127.0.0.1:2' });
    await post(app, '/register', { service_name: 'b', service_url: 'http://127.0.0.1:3' });

    const one = await post(app, '/deregister', { service_name: 'a', service_url: 'http://127.0.0.1:1' });
    expect(one.status).toBe(200);
    expect(await json(one)).toHaveProperty('message');
    expect(await (await app.request('/services')).text()).toBe('{"services":{"a":"http://127.0.0.1:2","b":"http://127.0.0.1:3"}}');

    expect((await post(app, '/deregister', { service_name: 'b' })).status).toBe(200);
    expect(await (await app.request('/services')).text()).toBe('{"services":{"a":"http://127.0.0.1:2"}}');

    const again = await post(app, '/deregister', { service_name: 'b' });
    expect(again.status).toBe(404);
    expect((await json(again)).error).toMatch(/b.*not registered/);
    const wrongUrl = await post(app, '/deregister', { service_name: 'a', service_url: 'http://127.0.0.1:9' });
    expect(wrongUrl.status).toBe(404);
    expect(await (await app.request('/services')).text()).toBe('{"services":{"a":"http://127.0.0.1:2"}}');
  });

  it('reports health with the store and counts', async () => {
    const { app } = setup();
    await post(app, '/register', { service_name: 'a', service_url: 'http://127.0.0.1:1' });
    await post(app, '/register', { service_name: 'a', service_url: 'http://127.0.0.1:2' });
    const response = await app.request('/health');
    expect(response.status).toBe(200);
    expect(await json(response)).toMatchObject({ status: 'ok', store: 'memory', ttl_seconds: TTL_S, services: 1, instances: 2 });
  });

  it('drops an instance from /services exactly at its expiry', async () => {
    const { app, clock } = setup();
    await post(app, '/register', { service_name: 'a', service_url: 'http://127.0.0.1:1' });
    clock.set(T0 + TTL_S * 1000 - 1);
    expect(await (await app.request('/services')).text()).toBe('{"services":{"a":"http://127.0.0.1:1"}}');
    clock.set(T0 + TTL_S * 1000);
    expect(await (await app.request('/services')).text()).toBe('{"services":{}}');
  });
});

describe('heartbeats', () => {
  it('answers 404 for a name-only heartbeat of an unknown service, telling what to do', async () => {
    const { app } = setup();
    const response = await post(app, '/heartbeat', { service_name: 'ghost' });
    expect(response.status).toBe(404);
    const { error } = await json(response);
    expect(error).toMatch(/ghost is not registered: register it \(POST \/register\), or send service_url/);
    // It may never have been registered: the registrar cannot tell.
    expect(error).not.toContain('again');
    expect(await (await app.request('/services')).text()).toBe('{"services":{}}');
  });

  it('registers again an instance whose heartbeat names a url it does not know', async () => {
    const { app } = setup();
    const response = await post(app, '/heartbeat', { service_name: 'ollama_service', service_url: 'http://127.0.0.1:5000' });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('{"message":"Heartbeat received from ollama_service"}');
    expect(await (await app.request('/services')).text()).toBe('{"services":{"ollama_service":"http://127.0.0.1:5000"}}');
  });

  it('renews the instance so it outlives its first expiry', async () => {
    const { app, clock } = setup();
    await post(app, '/register', { service_name: 'a', service_url: 'http://127.0.0.1:1' });
    clock.set(T0 + 200_000);
    expect((await post(app, '/heartbeat', { service_name: 'a', service_url: 'http://127.0.0.1:1' })).status).toBe(200);
    clock.set(T0 + 400_000);
    expect(await (await app.request('/services')).text()).toBe('{"services":{"a":"http://127.0.0.1:1"}}');
  });
});

describe('one address, spelled several ways', () => {
  it('is one instance: registered as HTTP://LocalHost:80/, renewed as http://localhost, deregistered as http://localhost/', async () => {
    const { app, clock } = setup();
    expect((await post(app, '/register', { service_name: 'web', service_url: 'HTTP://LocalHost:80/' })).status).toBe(200);
    clock.set(T0 + 200_000);
    expect((await post(app, '/heartbeat', { service_name: 'web', service_url: 'http://localhost' })).status).toBe(200);
    // Past the first registration's expiry: the heartbeat renewed it rather than adding a second instance.
    clock.set(T0 + 400_000);
    expect(await (await app.request('/services')).text()).toBe('{"services":{"web":"http://localhost"}}');
    const listed = (await json(await app.request('/services/web'))) as { instances: Array<{ url: string }> };
    expect(listed.instances.map((instance) => instance.url)).toEqual(['http://localhost']);
    expect((await post(app, '/deregister', { service_name: 'web', service_url: 'http://localhost/' })).status).toBe(200);
    expect(await (await app.request('/services')).text()).toBe('{"services":{}}');
  });

  it('keeps a path, without its trailing slashes, and a query as they were', async () => {
    const { app } = setup();
    await post(app, '/register', { service_name: 'api', service_url: 'http://127.0.0.1:8080/v1//' });
    await post(app, '/register', { service_name: 'api', service_url: 'http://127.0.0.1:8080/v1' });
    await post(app, '/register', { service_name: 'tenant', service_url: 'http://127.0.0.1:8081/t/?id=7' });
    const catalog = (await json(await app.request('/catalog'))) as { services: Record<string, Array<{ url: string }>> };
    expect(catalog.services.api?.map((instance) => instance.url)).toEqual(['http://127.0.0.1:8080/v1']);
    expect(catalog.services.tenant?.map((instance) => instance.url)).toEqual(['http://127.0.0.1:8081/t?id=7']);
  });

  it('drops a fragment, which never reaches the service: one instance, deregistered without it', async () => {
    const { app } = setup();
    for (const url of ['http://127.0.0.1:8090', 'http://127.0.0.1:8090#a', 'http://127.0.0.1:8090/#b']) {
      expect((await post(app, '/register', { service_name: 'frag', service_url: url })).status).toBe(200);
    }
    const listed = (await json(await app.request('/services/frag'))) as { instances: Array<{ url: string }> };
    expect(listed.instances.map((instance) => instance.url)).toEqual(['http://127.0.0.1:8090']);
    expect((await post(app, '/deregister', { service_name: 'frag', service_url: 'http://127.0.0.1:8090' })).status).toBe(200);
    expect((await app.request('/services/frag')).status).toBe(404);
  });
});

describe('bad input', () => {
  const valid = { service_name: 'ollama_service', service_url: 'http://127.0.0.1:5000' };
  const cases: Array<[string, string, string | unknown, number, RegExp]> = [
    ['malformed JSON', '/register', '{"service_name": "x", ', 400, /JSON.*malformed/],
    ['an empty body', '/register', '', 400, /empty body/],
    ['a JSON array', '/register', '[{"service_name": "x"}]', 400, /JSON object/],
    ['a JSON string', '/register', '"ollama_service"', 400, /JSON object/],
    ['a missing service_name', '/register', { service_url: 'http://127.0.0.1:5000' }, 400, /`service_name` is required/],
    ['a number as service_name', '/register', { service_name: 42, service_url: 'http://127.0.0.1:5000' }, 400, /`service_name` must be a string/],
    ['a service_name with a slash', '/register', { service_name: 'a/b', service_url: 'http://127.0.0.1:5000' }, 400, /`service_name` must be/],
    ['a missing service_url', '/register', { service_name: 'x' }, 400, /`service_url` is required/],
    ['an ftp:// URL', '/register', { service_name: 'x', service_url: 'ftp://127.0.0.1/x' }, 400, /`service_url` must be an http\(s\) URL/],
    ['a URL with credentials', '/register', { service_name: 'x', service_url: 'http://user:secret@127.0.0.1:5000' }, 400, /`service_url` must not carry a user name or password/],
    // One slash: the URL parser still finds the credentials, which must not slip through unnoticed.
    ['a URL with credentials after one slash', '/register', { service_name: 'x', service_url: 'http:/user:secret@127.0.0.1:5000' }, 400, /`service_url` must not carry a user name or password/],
    ['a URL with port 0', '/register', { service_name: 'x', service_url: 'http://127.0.0.1:0' }, 400, /`service_url` must name the port the service listens on/],
    ['"not a url"', '/register', { service_name: 'x', service_url: 'not a url' }, 400, /`service_url` must be an http\(s\) URL/],
    ['metadata that is a string', '/register', { ...valid, metadata: 'gpu' }, 400, /`metadata` must be a JSON object/],
    ['metadata that is an array', '/register', { ...valid, metadata: ['gpu'] }, 400, /`metadata` must be a JSON object/],
    // Written back as JSON on every read and event, a value nested thousands deep overflowed the stack.
    ['metadata nested 5000 deep', '/register', `{"service_name":"x","service_url":"http://127.0.0.1:5001","metadata":{"a":${'['.repeat(5000)}${']'.repeat(5000)}}}`, 400, /`metadata` is nested more than 32 levels deep/],
    ['metadata over 64 KiB', '/register', { ...valid, metadata: { blob: 'x'.repeat(65 * 1024) } }, 400, /`metadata` is over 64 KiB/],
    ['metadata with a "__proto__" key (which a copy would lose)', '/register', '{"service_name":"x","service_url":"http://127.0.0.1:5001","metadata":{"__proto__":{"admin":true},"model":"x"}}', 400, /`metadata` has a key "__proto__"/],
    ['a heartbeat with a non-http url', '/heartbeat', { service_name: 'x', service_url: 'file:///etc/passwd' }, 400, /`service_url`/],
    ['a heartbeat without a name', '/heartbeat', {}, 400, /`service_name` is required/],
    ['a deregistration with a number as name', '/deregister', { service_name: 7 }, 400, /`service_name` must be a string/],
    ['a forward without a message', '/forward', { from: 'x', to: 'ollama_service' }, 400, /`message` is required/],
    ['a forward with an empty message', '/forward', { from: 'x', to: 'ollama_service', message: '' }, 400, /`message` must not be empty/],
    ['a forward with stream "yes"', '/forward', { to: 'ollama_service', message: 'hi', stream: 'yes' }, 400, /`stream` must be true or false/],
    ['a body over 1 MiB', '/register', { ...valid, metadata: { blob: 'x'.repeat(1024 * 1024) } }, 413, /larger than 1 MiB/],
  ];

  it.each(cases)('answers %s with a JSON error that names the problem, and changes nothing', async (_what, path, body, status, message) => {
    const { app, registry } = setup();
    await post(app, '/register', { service_name: 'ollama_service', service_url: 'http://127.0.0.1:5000' });
    const before = registry.servicesJson();
    const response = await post(app, path, body);
    expect(response.status).toBe(status);
    expect((await json(response)).error).toMatch(message);
    expect(registry.servicesJson()).toBe(before);
    expect(registry.instances('ollama_service')).toMatchObject([{ url: 'http://127.0.0.1:5000', metadata: {} }]);
    expect(registry.all().size).toBe(1);
  });

  it('answers 413 for a body over 1 MiB that announces its length', async () => {
    const { app, registry } = setup();
    const body = JSON.stringify({ service_name: 'x', service_url: 'http://127.0.0.1:5000', metadata: { blob: 'x'.repeat(1024 * 1024) } });
    const response = await app.request('/register', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      body,
    });
    expect(response.status).toBe(413);
    expect((await json(response)).error).toMatch(/larger than 1 MiB/);
    expect(registry.all().size).toBe(0);
  });

  it('accepts a body just under 1 MiB', async () => {
    const { app, registry } = setup();
    const response = await post(app, '/register', {
      service_name: 'x',
      service_url: 'http://127.0.0.1:5000',
      // A field the registrar does not know is left out, whatever its size.
      note: 'x'.repeat(1024 * 1024 - 200),
    });
    expect(response.status).toBe(200);
    expect(registry.all().size).toBe(1);
  });

  it('takes metadata as deep as 32 levels and as large as 64 KiB, and gives it back', async () => {
    const { app } = setup();
    let deep: unknown = 'bottom';
    for (let level = 1; level <= 32; level += 1) deep = { level, deeper: deep };
    const large = { blob: 'x'.repeat(64 * 1024 - 20) };
    for (const [name, metadata] of [['deep', deep], ['large', large]] as const) {
      const response = await post(app, '/register', { service_name: name, service_url: 'http://127.0.0.1:5000', metadata });
      expect(response.status, name).toBe(200);
      const shown = (await json(await app.request(`/services/${name}`))) as { instances: Array<{ metadata: unknown }> };
      expect(shown.instances[0]!.metadata, name).toEqual(metadata);
    }
  });

  it('takes an optional field sent as null (Python None) as left out', async () => {
    const { app, registry } = setup();
    expect((await post(app, '/register', { service_name: 'x', service_url: 'http://127.0.0.1:5000', metadata: null })).status).toBe(200);
    expect(registry.instances('x')).toMatchObject([{ metadata: {} }]);
    expect((await post(app, '/heartbeat', { service_name: 'x', service_url: null })).status).toBe(200);
    expect((await post(app, '/deregister', { service_name: 'x', service_url: null })).status).toBe(200);
    expect(registry.all().size).toBe(0);

    const target = await startTarget(answering(200, '{"message":"ok"}'));
    await post(app, '/register', { service_name: 'svc', service_url: target.url });
    const forwarded = await post(app, '/forward', { from: null, to: 'svc', message: 'hi', stream: null, history: null });
    expect(forwarded.status).toBe(200);
    // Passed on as if left out: the default sender, no stream, no history.
    expect(target.received.at(-1)!.body).toEqual({ from: 'anonymous', message: 'hi' });
    // A wrong type is still wrong.
    expect((await post(app, '/forward', { from: 5, to: 'svc', message: 'hi' })).status).toBe(400);
  });

  it('answers an unknown path with a JSON 404', async () => {
    const { app } = setup();
    for (const [method, path] of [
      ['GET', '/nope'],
      ['POST', '/services/x/y'],
    ] as const) {
      const response = await app.request(path, { method });
      expect(response.status).toBe(404);
      expect((await json(response)).error).toBe(`No route for ${method} ${path}`);
    }
  });

  it('answers a known path asked with the wrong method with 405, Allow, and the method to use', async () => {
    const { app, registry } = setup();
    for (const [method, path, allow, use] of [
      ['GET', '/register', 'POST', 'POST /register'],
      ['POST', '/services', 'GET, HEAD', 'GET /services'],
      ['DELETE', '/services/ollama_service', 'GET, HEAD', 'GET /services/ollama_service'],
      ['PUT', '/forward', 'POST', 'POST /forward'],
    ] as const) {
      const response = await app.request(path, { method });
      expect(response.status, `${method} ${path}`).toBe(405);
      expect(response.headers.get('allow')).toBe(allow);
      expect((await json(response)).error).toBe(`${method} ${path} is not answered here: use ${use}`);
    }
    expect(registry.all().size).toBe(0);
  });
});

describe('forwarding', () => {
  it('a 502 after many instances names a few and counts the rest, so its size does not grow with the fleet', async () => {
    const { app } = setup();
    const port = await closedPort();
    const urls = Array.from({ length: 40 }, (_, i) => `http://127.0.0.1:${port}/i${i}`);
    for (const url of urls) await post(app, '/register', { service_name: 'fleet', service_url: url });
    const response = await post(app, '/forward', { from: 'x', to: 'fleet', message: 'hi' });
    expect(response.status).toBe(502);
    expect(response.headers.get('x-svcmesh-attempts')).toBe('40');
    const { error } = await json(response);
    expect(error).toMatch(/^Failed to reach fleet at (http:\/\/127\.0\.0\.1:\d+\/i\d+, ){4}http:\/\/127\.0\.0\.1:\d+\/i\d+ and 35 more$/);
  });

  it('a 404 for a name registered in another case says which, since names are case-sensitive', async () => {
    const { app } = setup();
    await post(app, '/register', { service_name: 'web', service_url: 'http://127.0.0.1:8080' });
    const forward = await post(app, '/forward', { from: 'x', to: 'WEB', message: 'hi' });
    expect(forward.status).toBe(404);
    expect((await json(forward)).error).toBe('Service WEB is not registered (did you mean web? Names are case-sensitive; GET /services lists the ones that are)');
    const lookup = await app.request('/services/Web');
    expect(lookup.status).toBe(404);
    expect((await json(lookup)).error).toBe('Service Web is not registered (did you mean web? Names are case-sensitive)');
    const unrelated = await post(app, '/forward', { from: 'x', to: 'api', message: 'hi' });
    expect((await json(unrelated)).error).toBe('Service api is not registered (GET /services lists the ones that are)');
  });

  it('answers 404 when the target is not registered', async () => {
    const { app } = setup();
    const response = await post(app, '/forward', { from: 'x', to: 'ollama_service', message: 'hi' });
    expect(response.status).toBe(404);
    expect((await json(response)).error).toMatch(/ollama_service is not registered/);
  });

  it('answers 502 naming the service and url when nothing listens there', async () => {
    const { app, registry } = setup();
    const url = `http://127.0.0.1:${await closedPort()}`;
    await post(app, '/register', { service_name: 'ollama_service', service_url: url });
    const response = await post(app, '/forward', { from: 'x', to: 'ollama_service', message: 'hi' });
    expect(response.status).toBe(502);
    expect(await json(response)).toEqual({ error: `Failed to reach ollama_service at ${url}` });
    expect(response.headers.get('x-svcmesh-attempts')).toBe('1');
    expect(registry.totalInFlight).toBe(0);
  });

  it('answers 504 when the target does not start answering in time', async () => {
    const { app } = setup({ timeoutMs: 150 });
    const target = await startTarget(() => {
      /* never answers */
    });
    await post(app, '/register', { service_name: 'slow', service_url: target.url });
    const response = await post(app, '/forward', { from: 'x', to: 'slow', message: 'hi' });
    expect(response.status).toBe(504);
    expect((await json(response)).error).toMatch(/slow/);
    expect(response.headers.get('x-svcmesh-attempts')).toBe('1');
  });

  it('passes over an instance that hangs, once it has timed out, instead of waiting on it every other forward', async () => {
    const { app } = setup({ timeoutMs: 300 });
    const hung = await startTarget(() => {
      /* accepts, never answers: a frozen process */
    });
    const live = await startTarget(answering(200, '{"message":"alive"}'));
    await post(app, '/register', { service_name: 'svc', service_url: hung.url });
    await post(app, '/register', { service_name: 'svc', service_url: live.url });
    const attempts: string[] = [];
    for (let i = 0; i < 6; i += 1) {
      const response = await post(app, '/forward', { from: 'x', to: 'svc', message: `q${i}` });
      expect(response.status).toBe(200);
      expect(response.headers.get('x-svcmesh-instance')).toBe(live.url);
      attempts.push(response.headers.get('x-svcmesh-attempts')!);
    }
    // At most the one forward that found it hung paid the timeout; the others went straight to the live one.
    expect(attempts.filter((a) => a !== '1').length).toBeLessThanOrEqual(1);
    expect(hung.received.length).toBeLessThanOrEqual(1);
  });

  it('sends every forward to the live instance when the other is down', async () => {
    const { app } = setup();
    const down = `http://127.0.0.1:${await closedPort()}`;
    const live = await startTarget(answering(200, '{"message":"alive"}'));
    await post(app, '/register', { service_name: 'svc', service_url: down });
    await post(app, '/register', { service_name: 'svc', service_url: live.url });

    for (let i = 0; i < 6; i += 1) {
      const response = await post(app, '/forward', { from: 'x', to: 'svc', message: `q${i}` });
      expect(response.status).toBe(200);
      expect(response.headers.get('x-svcmesh-instance')).toBe(live.url);
      expect(await response.text()).toBe('{"message":"alive"}');
    }
    expect(live.received).toHaveLength(6);
  });

  it('passes over an instance that answers 503 (its Ollama down, say) to one that can answer, streamed or not', async () => {
    const { app } = setup();
    const unavailable = '{"error":"Ollama is not reachable at http://127.0.0.1:11434"}';
    const sick = await startTarget(answering(503, unavailable));
    const well = await startTarget(answering(200, '{"message":"well"}'));
    await post(app, '/register', { service_name: 'svc', service_url: sick.url });
    await post(app, '/register', { service_name: 'svc', service_url: well.url });
    for (const stream of [false, true, false, true]) {
      const response = await post(app, '/forward', { from: 'x', to: 'svc', message: 'q', stream });
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('{"message":"well"}');
      expect(response.headers.get('x-svcmesh-instance')).toBe(well.url);
    }
    // Turns alternate, so the sick instance was asked first about half the time, and passed over.
    expect(sick.received.length).toBeGreaterThan(0);
    expect(well.received).toHaveLength(4);
  });

  it("gives the instance's own 503 when no instance can answer, rather than a bare 502", async () => {
    const { app } = setup();
    const unavailable = '{"error":"Ollama is not reachable at http://127.0.0.1:11434"}';
    const sick = await startTarget(answering(503, unavailable));
    await post(app, '/register', { service_name: 'alone', service_url: sick.url });
    const alone = await post(app, '/forward', { from: 'x', to: 'alone', message: 'q' });
    expect(alone.status).toBe(503);
    expect(await alone.text()).toBe(unavailable);

    // A 503 and then an instance that cannot be reached: the 503 says more than "Failed to reach".
    const { app: other } = setup();
    await post(other, '/register', { service_name: 'svc', service_url: sick.url });
    await post(other, '/register', { service_name: 'svc', service_url: `http://127.0.0.1:${await closedPort()}` });
    for (const stream of [false, true]) {
      for (let i = 0; i < 2; i += 1) {
        const response = await post(other, '/forward', { from: 'x', to: 'svc', message: 'q', stream });
        expect(response.status).toBe(503);
        expect(await response.text()).toBe(unavailable);
        expect(response.headers.get('x-svcmesh-instance')).toBe(sick.url);
        // Both were tried: the count says so, not only the try whose 503 it is.
        expect(response.headers.get('x-svcmesh-attempts')).toBe('2');
      }
    }
  });

  it('relays a whole answer byte for byte, as a streamed one is: bytes that are not UTF-8 included', async () => {
    const { app } = setup();
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41, 0xe9]);
    const binary = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(bytes);
    });
    await post(app, '/register', { service_name: 'bin', service_url: binary.url });
    for (const stream of [false, true]) {
      const response = await post(app, '/forward', { from: 'x', to: 'bin', message: 'q', stream });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/octet-stream');
      expect(Buffer.from(await response.arrayBuffer()).equals(bytes), `stream: ${stream}`).toBe(true);
    }
  });

  it('tries every instance before a 502: three that cannot be reached, then the fourth, which answers', async () => {
    const { app } = setup();
    for (let i = 0; i < 3; i += 1) await post(app, '/register', { service_name: 'svc', service_url: `http://127.0.0.1:${await closedPort()}` });
    const live = await startTarget(answering(200, '{"message":"alive"}'));
    await post(app, '/register', { service_name: 'svc', service_url: live.url });
    const response = await post(app, '/forward', { from: 'x', to: 'svc', message: 'q' });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('{"message":"alive"}');
  });

  it('passes over an instance it could not reach for a while, then tries it again; one that registers again at once', async () => {
    const { app, registry, clock } = setup();
    const one = await startTarget(answering(200, '{"message":"one"}'));
    const two = await startTarget(answering(200, '{"message":"two"}'));
    await post(app, '/register', { service_name: 'svc', service_url: one.url });
    await post(app, '/register', { service_name: 'svc', service_url: two.url });
    const instanceTwo = registry.instances('svc').find((i) => i.url === two.url)!;
    const forwards = async (n: number) => {
      for (let i = 0; i < n; i += 1) expect((await post(app, '/forward', { from: 'x', to: 'svc', message: 'q' })).status).toBe(200);
    };

    // A forward could not reach it (it was restarting, say): the others get the forwards...
    registry.reportReachable(instanceTwo, false);
    await forwards(4);
    expect(two.received).toHaveLength(0);
    // ...until the wait is over: it is tried in its turn again, answers, and is no longer down.
    clock.set(T0 + 5_000);
    await forwards(4);
    expect(two.received).toHaveLength(2);
    expect(registry.isDown(instanceTwo)).toBe(false);

    // Registering again (a restarted instance) takes it back at once.
    registry.reportReachable(instanceTwo, false);
    await forwards(2);
    expect(two.received).toHaveLength(2);
    await post(app, '/register', { service_name: 'svc', service_url: two.url });
    expect(registry.isDown(instanceTwo)).toBe(false);
    await forwards(4);
    expect(two.received).toHaveLength(4);
  });

  it('starts the error line of a streamed answer cut in the middle of a line on a line of its own', async () => {
    const { app } = setup();
    const target = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('{"message":"whole"}\n{"message":"ha');
      setTimeout(() => res.destroy(), 50);
    });
    await post(app, '/register', { service_name: 'cut', service_url: target.url });
    const response = await post(app, '/forward', { from: 'x', to: 'cut', message: 'q', stream: true });
    const lines = (await response.text()).split('\n');
    expect(lines.slice(0, 2)).toEqual(['{"message":"whole"}', '{"message":"ha']);
    expect(JSON.parse(lines[2]!)).toEqual({ error: expect.stringMatching(/^Lost cut at .* in the middle of the answer/) });
    expect(lines.slice(3)).toEqual(['']);
  });

  it('registers an instance a heartbeat names with the metadata it carries, once, and says it did', async () => {
    const { app, registry } = setup();
    const beat = (metadata: Record<string, unknown>) => post(app, '/heartbeat', { service_name: 'ollama_service', service_url: 'http://127.0.0.1:5000', metadata });
    const first = await beat({ model: 'llama3.2' });
    expect(first.status).toBe(200);
    expect(await json(first)).toEqual({ message: 'Heartbeat received from ollama_service' });
    expect(first.headers.get('x-svcmesh-registered')).toBe('true');
    expect(registry.instances('ollama_service')).toMatchObject([{ metadata: { model: 'llama3.2' } }]);
    // A renewal: nothing registered, and the metadata it carries changes nothing.
    const second = await beat({ model: 'other' });
    expect(second.headers.get('x-svcmesh-registered')).toBeNull();
    expect(registry.instances('ollama_service')).toMatchObject([{ metadata: { model: 'llama3.2' } }]);
  });

  it('spreads forwards over two live instances', async () => {
    const { app } = setup();
    const one = await startTarget(answering(200, '{"message":"one"}'));
    const two = await startTarget(answering(200, '{"message":"two"}'));
    await post(app, '/register', { service_name: 'svc', service_url: one.url });
    await post(app, '/register', { service_name: 'svc', service_url: two.url });
    for (let i = 0; i < 6; i += 1) expect((await post(app, '/forward', { from: 'x', to: 'svc', message: 'q' })).status).toBe(200);
    expect([one.received.length, two.received.length]).toEqual([3, 3]);
  });

  it('answers 502 for an answer too long to hold whole, announced or not, and tries no other instance', async () => {
    const { app, registry } = setup({ maxAnswerBytes: 1024 });
    const long = JSON.stringify({ message: 'x'.repeat(2000) });
    const announced = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(long) });
      res.end(long);
    });
    const chunked = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(long.slice(0, 900));
      setTimeout(() => res.end(long.slice(900)), 10);
    });
    await registry.register({ name: 'announced', url: announced.url });
    await registry.register({ name: 'chunked', url: chunked.url });
    await registry.register({ name: 'chunked', url: announced.url });
    for (const [name, url] of [['announced', announced.url], ['chunked', chunked.url]]) {
      const response = await post(app, '/forward', { to: name, message: 'hi' });
      expect(response.status).toBe(502);
      expect((await json(response)).error).toBe(`${name} at ${url} answered more than 1024 bytes: send "stream": true to get a long answer as it comes`);
    }
    expect(chunked.received).toHaveLength(1);
    expect(announced.received).toHaveLength(1);

    // Streamed, the same answer goes through whole.
    const streamed = await post(app, '/forward', { to: 'announced', message: 'hi', stream: true });
    expect(streamed.status).toBe(200);
    expect(await streamed.text()).toBe(long);
  });

  it("passes a target's 500 through as it came", async () => {
    const { app } = setup();
    const target = await startTarget(answering(500, '{"error":"model crashed"}'));
    await post(app, '/register', { service_name: 'svc', service_url: target.url });
    const response = await post(app, '/forward', { from: 'x', to: 'svc', message: 'hi' });
    expect(response.status).toBe(500);
    expect(await response.text()).toBe('{"error":"model crashed"}');
  });

  it('streams NDJSON lines through in order, as the target writes them', async () => {
    const { app, registry } = setup();
    const lastLine = gate();
    const lines = ['{"message":"Artificial "}', '{"message":"Intelligence "}', '{"message":"is …"}', '{"done":true}'];
    const target = await startTarget(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      for (const line of lines.slice(0, -1)) {
        res.write(`${line}\n`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await lastLine.opened;
      res.end(`${lines.at(-1)}\n`);
    });
    await post(app, '/register', { service_name: 'ollama_service', service_url: target.url });

    const response = await post(app, '/forward', { from: 'x', to: 'ollama_service', message: 'What is AI?', stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    expect(target.received[0]!.body).toEqual({ from: 'x', message: 'What is AI?', stream: true });

    const next = lineReader(response);
    // The first lines arrive while the target is still holding back its last one.
    expect([await next(), await next(), await next()]).toEqual(lines.slice(0, 3));
    expect(registry.totalInFlight).toBe(1);
    lastLine.open();
    expect(await next()).toBe(lines[3]);
    expect(await next()).toBeUndefined();
    expect(registry.totalInFlight).toBe(0);
  });

  it('ends a stream with an error line when the target dies mid-answer', async () => {
    const { app, registry } = setup();
    const die = gate();
    const target = await startTarget(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('{"message":"Half "}\n');
      await die.opened;
      res.socket?.destroy();
    });
    await post(app, '/register', { service_name: 'ollama_service', service_url: target.url });

    const response = await post(app, '/forward', { from: 'x', to: 'ollama_service', message: 'hi', stream: true });
    expect(response.status).toBe(200);
    const next = lineReader(response);
    expect(await next()).toBe('{"message":"Half "}');
    die.open();
    const rest: string[] = [];
    for (let line = await next(); line !== undefined; line = await next()) rest.push(line);
    expect(rest).toHaveLength(1);
    const last = JSON.parse(rest[0]!) as { error?: string };
    expect(last.error).toMatch(/ollama_service/);
    expect(last.error).toContain(target.url);
    expect(registry.totalInFlight).toBe(0);
  });

  it('passes a non-streamed answer through when stream was asked for', async () => {
    const { app } = setup();
    const target = await startTarget(answering(200, '{"message":"whole"}'));
    await post(app, '/register', { service_name: 'svc', service_url: target.url });
    const response = await post(app, '/forward', { from: 'x', to: 'svc', message: 'hi', stream: true });
    expect(response.status).toBe(200);
    expect(await allLines(response)).toEqual(['{"message":"whole"}']);
  });
});

describe('with a token', () => {
  const TOKEN = 's3cret';
  const requests: Array<[string, unknown]> = [
    ['/register', { service_name: 'svc', service_url: 'http://127.0.0.1:5000' }],
    ['/heartbeat', { service_name: 'svc' }],
    ['/deregister', { service_name: 'svc' }],
    ['/forward', { from: 'x', to: 'svc', message: 'hi' }],
  ];

  it.each(requests)('refuses %s without the right bearer token', async (path, body) => {
    const { app, registry } = setup({ token: TOKEN });
    await registry.register({ name: 'svc', url: 'http://127.0.0.1:5000' });
    const before = registry.servicesJson();
    const attempts: Array<Record<string, string>> = [{}, { authorization: 'Bearer wrong' }, { authorization: 's3cret' }, { authorization: 'Basic czNjcmV0' }, { authorization: 'Bearer s3cret2' }];
    for (const headers of attempts) {
      const response = await post(app, path, body, headers);
      expect(response.status).toBe(401);
      expect((await json(response)).error).toMatch(/token/i);
    }
    expect(registry.servicesJson()).toBe(before);
  });

  it('accepts the right token on every mutating route and /forward', async () => {
    const { app } = setup({ token: TOKEN });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const target = await startTarget(answering(200, '{"message":"ok"}'));
    expect((await post(app, '/register', { service_name: 'svc', service_url: target.url }, auth)).status).toBe(200);
    expect((await post(app, '/heartbeat', { service_name: 'svc' }, auth)).status).toBe(200);
    const forwarded = await post(app, '/forward', { from: 'x', to: 'svc', message: 'hi' }, auth);
    expect(forwarded.status).toBe(200);
    expect(await forwarded.text()).toBe('{"message":"ok"}');
    expect((await post(app, '/deregister', { service_name: 'svc' }, auth)).status).toBe(200);
  });

  it('keeps reads open', async () => {
    const { app, registry } = setup({ token: TOKEN });
    await registry.register({ name: 'svc', url: 'http://127.0.0.1:5000' });
    const services = await app.request('/services');
    expect(services.status).toBe(200);
    expect(await services.text()).toBe('{"services":{"svc":"http://127.0.0.1:5000"}}');
    expect((await app.request('/services/svc')).status).toBe(200);
    expect((await app.request('/health')).status).toBe(200);
  });
});
