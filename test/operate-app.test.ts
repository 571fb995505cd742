/**
 * Operating a registrar (#5), in-process with `app.request()`: tokens on every protected route,
 * protected reads, where forwards may go (`--allow-hosts`), the token passed on to targets, the
 * `/events` stream, `/metrics` after a known sequence of calls, and the log lines. Forwards need
 * sockets, so targets are real servers on 127.0.0.1; time is a fake clock, so nothing sleeps.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HostPolicyError, type HostPolicy, parseAllowHosts } from '../src/allow-hosts.js';
import { TargetTokenError, parseTargetTokens, targetHeaders } from '../src/target-tokens.js';
import { HttpError } from '../src/client/http.js';
import { parseEventStream, type ServerSentEvent, watchEvents } from '../src/client/event-stream.js';
import { MemoryStore } from '../src/registry/memory.js';
import { Registry } from '../src/registry/registry.js';
import { createForwarder } from '../src/server/forwarder.js';
import { createRegistrarMetrics } from '../src/server/metrics.js';
import { createRegistrarApp } from '../src/server/registrar.js';
import { createLogger, type LogFormat, type Logger } from '../src/server/request-log.js';
import { createRegistrarFastPath } from '../src/server/registrar-fast-path.js';
import { type FastPath, startServer } from '../src/server/start.js';
import { waitFor } from './support/fake-ollama.js';
import { startSilentServer } from './support/silent-server.js';

const T0 = Date.UTC(2025, 0, 20, 10, 0, 0);
const TTL_S = 300;
const TOKEN = 's3cret';
const AUTH = { authorization: `Bearer ${TOKEN}` };

const cleanups: Array<() => Promise<unknown> | unknown> = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.restoreAllMocks();
});

beforeEach(() => {
  // The forwarder logs every failed attempt on stderr; the assertions are on answers and events.
  vi.spyOn(console, 'error').mockImplementation(() => {});
});

interface SetupOptions {
  token?: string;
  protectReads?: boolean;
  hostPolicy?: HostPolicy;
  targetToken?: string;
  targetTokenFor?: string[];
  eventBacklog?: { events?: number; bytes?: number };
  logFormat?: LogFormat;
}

/** A registrar wired the way `svcmesh registrar` wires it, with a fake clock and collected log text. */
function setup(options: SetupOptions = {}) {
  let t = T0;
  const clock = { now: () => t, set: (time: number) => void (t = time) };
  const store = new MemoryStore({ ttlSeconds: TTL_S, clock });
  const registry = new Registry(store);
  const metrics = createRegistrarMetrics(registry);
  const hostPolicy = options.hostPolicy;
  const forwarder = createForwarder({
    registry,
    timeoutMs: 5_000,
    observer: metrics.forwards,
    allowHost: hostPolicy && ((host) => hostPolicy.allows(host)),
    targetHeaders: targetHeaders(options.targetToken, parseTargetTokens(options.targetTokenFor ?? [])),
  });
  let logText = '';
  const logger = options.logFormat ? createLogger(options.logFormat, (text) => (logText += text)) : undefined;
  const shutdown = new AbortController();
  const app = createRegistrarApp({
    registry,
    forwarder,
    token: options.token,
    protectReads: options.protectReads,
    ttlSeconds: TTL_S,
    hostPolicy,
    metrics,
    logger,
    shutdown: shutdown.signal,
    eventBacklog: options.eventBacklog,
  });
  cleanups.push(() => shutdown.abort(), () => forwarder.close(), () => registry.close());
  /** The log lines written so far; the logger flushes on setImmediate, so wait for that first. */
  const logLines = async () => {
    await new Promise((resolve) => setImmediate(resolve));
    return logText.split('\n').filter(Boolean);
  };
  const fastPath = createRegistrarFastPath({
    registry,
    forwarder,
    token: options.token,
    protectReads: options.protectReads,
    hostPolicy,
    metrics,
  });
  return { app, store, registry, clock, shutdown, logLines, logger, fastPath };
}

function post(app: Hono, path: string, body: unknown, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

async function errorOf(response: Response): Promise<string> {
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await response.json()) as { error?: unknown };
  expect(typeof body.error).toBe('string');
  return body.error as string;
}

// ---------------------------------------------------------------------------------------------
// Real targets on 127.0.0.1 that count what reaches them.

interface Target {
  url: string;
  port: number;
  /** Every request that reached `/receive`, with its Authorization header and parsed body. */
  received: Array<{ path: string; authorization: string | undefined; body: { stream?: boolean } }>;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: { stream?: boolean }) => void;

/** Answers `{"message":"ok"}`, or three NDJSON lines when the forward asked for a stream. */
const echo: Handler = (_req, res, body) => {
  if (body.stream) {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.write('{"message":"o"}\n');
    setTimeout(() => res.end('{"message":"k"}\n{"done":true}\n'), 5);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end('{"message":"ok"}');
};

async function startTarget(options: { host?: string; port?: number; handler?: Handler } = {}): Promise<Target> {
  const host = options.host ?? '127.0.0.1';
  const handler = options.handler ?? echo;
  const received: Target['received'] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? (JSON.parse(text) as { stream?: boolean }) : {};
      received.push({ path: req.url ?? '', authorization: req.headers.authorization, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closed = false;
  const close = () =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      closed = true;
      server.close(() => resolve());
      server.closeAllConnections();
    });
  cleanups.push(close);
  return { url: `http://${host}:${port}`, port, received, close };
}

/** A port nothing listens on (something did a moment ago). */
async function closedPort(): Promise<number> {
  const target = await startTarget();
  await target.close();
  return target.port;
}

// ---------------------------------------------------------------------------------------------
// Tokens.

describe('the registrar token', () => {
  type Route = { path: string; body: unknown; right: number };
  const protectedRoutes: Route[] = [
    { path: '/register', body: { service_name: 'svc', service_url: 'http://127.0.0.1:5999' }, right: 200 },
    { path: '/heartbeat', body: { service_name: 'svc' }, right: 200 },
    { path: '/deregister', body: { service_name: 'svc' }, right: 200 },
    { path: '/forward', body: { from: 'test', to: 'svc', message: 'hi' }, right: 200 },
  ];
  const cases = [
    { case: 'missing', headers: {}, message: /requires a token.*Authorization: Bearer/ },
    { case: 'wrong', headers: { authorization: 'Bearer s3cret-not' }, message: /token is not valid/ },
    { case: 'not a bearer', headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` }, message: /uses the Basic scheme.*send Authorization: Bearer <token>/ },
    { case: 'bare, without Bearer', headers: { authorization: TOKEN }, message: /no scheme \(the word Bearer before the token is missing\)/ },
    { case: 'Bearer alone', headers: { authorization: 'Bearer' }, message: /no token after Bearer/ },
    { case: 'right', headers: AUTH, message: undefined },
  ] as const;
  const table = protectedRoutes.flatMap((route) => cases.map((c) => ({ ...route, ...c })));

  it.each(table)('POST $path with a $case token', async ({ path, body, right, headers, message }) => {
    const target = await startTarget();
    const { app, registry } = setup({ token: TOKEN });
    await registry.register({ name: 'svc', url: target.url });
    const before = registry.servicesJson();
    const response = await post(app, path, body, headers);
    if (message === undefined) {
      expect(response.status).toBe(right);
      return;
    }
    expect(response.status).toBe(401);
    // RFC 6750: a 401 names the scheme it wants.
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="svcmesh"');
    const error = await errorOf(response);
    expect(error).toMatch(message);
    // Whatever was sent, the answer never repeats it: it may be the secret itself.
    expect(error).not.toContain(TOKEN);
    expect(error).not.toContain(Buffer.from(`x:${TOKEN}`).toString('base64'));
    // Refused means refused: nothing changed, nothing was forwarded.
    expect(registry.servicesJson()).toBe(before);
    expect(target.received).toHaveLength(0);
  });

  it('cannot be sidestepped by spelling the path differently', async () => {
    const { app, registry } = setup({ token: TOKEN });
    const body = { service_name: 'svc', service_url: 'http://127.0.0.1:5999' };
    for (const path of ['/%72egister', '/register?token=s3cret', '/register/', '//register', '/Register']) {
      const response = await post(app, path, body);
      expect([401, 404], path).toContain(response.status);
    }
    expect(registry.counts()).toEqual({ services: 0, instances: 0 });
  });

  const reads = ['/services', '/services/svc', '/catalog', '/events', '/metrics'];

  it.each(reads)('leaves GET %s open without --protect-reads', async (path) => {
    const { app, registry } = setup({ token: TOKEN });
    await registry.register({ name: 'svc', url: 'http://127.0.0.1:5999' });
    const response = await app.request(path);
    expect(response.status).toBe(200);
    await response.body?.cancel();
  });

  it.each(reads)('with --protect-reads, GET %s needs the token', async (path) => {
    const { app, registry } = setup({ token: TOKEN, protectReads: true });
    await registry.register({ name: 'svc', url: 'http://127.0.0.1:5999' });
    const missing = await app.request(path);
    expect(missing.status).toBe(401);
    expect(await errorOf(missing)).toMatch(/requires a token/);
    const wrong = await app.request(path, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(await errorOf(wrong)).toMatch(/not valid/);
    const right = await app.request(path, { headers: AUTH });
    expect(right.status).toBe(200);
    await right.body?.cancel();
  });

  it('keeps /health open with --protect-reads', async () => {
    const { app } = setup({ token: TOKEN, protectReads: true });
    const response = await app.request('/health');
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: 'ok' });
  });

  it('/health says whether a token is required and, when one is sent, whether it is this one', async () => {
    const { app } = setup({ token: TOKEN });
    const health = async (headers: Record<string, string> = {}) => (await app.request('/health', { headers })).json() as Promise<Record<string, unknown>>;
    expect(await health()).toMatchObject({ token_required: true });
    expect(await health()).not.toHaveProperty('token_accepted');
    expect(await health(AUTH)).toMatchObject({ token_required: true, token_accepted: true });
    expect(await health({ authorization: 'Bearer wrong' })).toMatchObject({ token_required: true, token_accepted: false });
    expect(await health({ authorization: TOKEN })).toMatchObject({ token_accepted: false });
    const open = setup().app;
    expect(await (await open.request('/health', { headers: AUTH })).json()).toEqual(expect.not.objectContaining({ token_accepted: expect.anything() }));
  });
});

// ---------------------------------------------------------------------------------------------
// Where forwards may go.

describe('--allow-hosts', () => {
  const policy = () => parseAllowHosts(['127.0.0.1', '10.0.0.0/8', 'svc.internal']);

  it.each([
    ['127.0.0.1', true],
    ['127.0.0.2', false],
    ['10.0.0.1', true],
    ['10.255.255.254', true],
    ['11.0.0.1', false],
    ['9.255.255.255', false],
    ['svc.internal', true],
    ['SVC.Internal', true],
    ['evil.svc.internal', false],
    ['svc.internal.evil.com', false],
    ['localhost', false],
    ['[::1]', false],
    ['169.254.169.254', false],
  ])('allows %s: %s', (host, allowed) => {
    expect(policy().allows(host)).toBe(allowed);
  });

  it('matches IPv6 addresses and CIDRs, as URLs give them (in brackets)', () => {
    const v6 = parseAllowHosts(['::1', 'fd00::/8']);
    expect(v6.allows('[::1]')).toBe(true);
    expect(v6.allows('::1')).toBe(true);
    expect(v6.allows('[fd12:3456::1]')).toBe(true);
    expect(v6.allows('[fe80::1]')).toBe(false);
    expect(v6.allows('127.0.0.1')).toBe(false);
    // The hostname exactly as the registrar will see it.
    expect(v6.allows(new URL('http://[fd00::abcd]:5000').hostname)).toBe(true);
  });

  it('takes an IPv6 entry written in brackets, as it is written in a URL', () => {
    const bracketed = parseAllowHosts(['[::1]', '[fd00::]/8']);
    expect(bracketed.allows('[::1]')).toBe(true);
    expect(bracketed.allows('[fd00::7]')).toBe(true);
    expect(bracketed.allows('[::2]')).toBe(false);
  });

  it('takes comma-separated lists, as SVCMESH_ALLOW_HOSTS gives them', () => {
    const listed = parseAllowHosts(['127.0.0.1, svc.internal', '10.0.0.0/8']);
    expect(listed.allows('svc.internal')).toBe(true);
    expect(listed.allows('10.1.1.1')).toBe(true);
  });

  it.each(['10.0.0.0/', '10.0.0.0/33', '10.0.0.0/x', '10.0.0.0/8/9', 'svc.internal/8', '/8', 'fd00::/129', '10.0.0.0/-1'])(
    'refuses the malformed CIDR %s instead of guessing',
    (entry) => {
      expect(() => parseAllowHosts([entry])).toThrow(HostPolicyError);
    },
  );

  it('lets `*.domain` allow any name under the domain, but not the domain or look-alikes', () => {
    const wildcard = parseAllowHosts(['*.svc.internal']);
    expect(wildcard.allows('api.svc.internal')).toBe(true);
    expect(wildcard.allows('a.b.svc.internal')).toBe(true);
    expect(wildcard.allows('API.SVC.Internal.')).toBe(true);
    expect(wildcard.allows('svc.internal')).toBe(false);
    expect(wildcard.allows('evilsvc.internal')).toBe(false);
    expect(wildcard.allows('api.svc.internal.evil.com')).toBe(false);
  });

  it.each([
    ['127.0.0.1:5000', /has a port/],
    ['svc.internal:80', /has a port/],
    ['[::1]:5000', /has a port/],
    ['http://svc.internal', /is a URL/],
    ['svc.*.internal', /"\*"/],
    ['*', /"\*"/],
    ['svc internal', /is not a host name/],
  ])('refuses %s, which no host could ever match, and says why', (entry, why) => {
    expect(() => parseAllowHosts([entry])).toThrow(why);
    expect(() => parseAllowHosts([entry])).toThrow(/list a host name/);
  });

  it('answers 403 naming the host to a registration elsewhere, and registers nothing', async () => {
    const { app, registry } = setup({ hostPolicy: policy() });
    for (const url of ['http://192.168.1.10:5000', 'http://localhost:5000', 'https://evil.example.com', 'http://[::1]:5000']) {
      const response = await post(app, '/register', { service_name: 'svc', service_url: url });
      expect(response.status, url).toBe(403);
      expect(await errorOf(response)).toContain(`host ${new URL(url).hostname} is not allowed`);
    }
    expect(registry.counts()).toEqual({ services: 0, instances: 0 });
    expect(await (await app.request('/services')).json()).toEqual({ services: {} });
  });

  it('registers what it allows: an exact address, an address in a CIDR, a name, an IPv6 address', async () => {
    const { app, registry } = setup({ hostPolicy: parseAllowHosts(['127.0.0.1', '10.0.0.0/8', 'svc.internal', '::1']) });
    for (const url of ['http://127.0.0.1:5000', 'http://10.2.3.4:5000', 'https://svc.internal/api', 'http://[::1]:5000']) {
      expect((await post(app, '/register', { service_name: 'svc', service_url: url })).status, url).toBe(200);
    }
    expect(registry.instances('svc')).toHaveLength(4);
  });

  it('accepts only http(s) service URLs', async () => {
    const { app, registry } = setup();
    for (const url of ['ftp://127.0.0.1/x', 'file:///etc/passwd', 'javascript:alert(1)', '127.0.0.1:5000', 'gopher://127.0.0.1:70']) {
      const response = await post(app, '/register', { service_name: 'svc', service_url: url });
      expect(response.status, url).toBe(400);
      await errorOf(response);
    }
    expect(registry.counts().instances).toBe(0);
  });

  it('answers 403 to a heartbeat whose service_url is elsewhere, and registers nothing', async () => {
    const { app, registry } = setup({ hostPolicy: policy() });
    const response = await post(app, '/heartbeat', { service_name: 'svc', service_url: 'http://192.168.1.10:5000' });
    expect(response.status).toBe(403);
    expect(await errorOf(response)).toContain('192.168.1.10');
    expect(registry.counts().instances).toBe(0);
  });

  it('never contacts an instance on a host it does not allow, even one already in the store', async () => {
    // 127.0.0.2 is loopback too, so a forward there would really arrive: the count proves it did not.
    const outside = await startTarget({ host: '127.0.0.2' });
    const { app, store } = setup({ hostPolicy: policy() });
    await store.register({ name: 'svc', url: outside.url });
    const response = await post(app, '/forward', { from: 'test', to: 'svc', message: 'hi' });
    expect(response.status).toBe(403);
    expect(await errorOf(response)).toMatch(/allow-hosts/);
    expect(outside.received).toHaveLength(0);
  });

  it('forwards only to the allowed instance when a service has both', async () => {
    const outside = await startTarget({ host: '127.0.0.2' });
    const inside = await startTarget();
    const { app, store } = setup({ hostPolicy: policy() });
    await store.register({ name: 'svc', url: outside.url });
    await store.register({ name: 'svc', url: inside.url });
    for (let i = 0; i < 4; i++) {
      const response = await post(app, '/forward', { from: 'test', to: 'svc', message: `hi ${i}` });
      expect(response.status).toBe(200);
      expect(response.headers.get('x-svcmesh-instance')).toBe(inside.url);
      await response.text();
    }
    expect(inside.received).toHaveLength(4);
    expect(outside.received).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------
// The token a protected /receive asks for.

describe('--target-token', () => {
  it("reaches the target's /receive as Authorization: Bearer, streamed or not", async () => {
    const target = await startTarget();
    const { app, registry } = setup({ token: TOKEN, targetToken: 'r3c' });
    await registry.register({ name: 'svc', url: target.url });
    const whole = await post(app, '/forward', { from: 'test', to: 'svc', message: 'hi' }, AUTH);
    expect(whole.status).toBe(200);
    await whole.text();
    const streamed = await post(app, '/forward', { from: 'test', to: 'svc', message: 'hi', stream: true }, AUTH);
    expect(streamed.status).toBe(200);
    await streamed.text();
    // The target gets its own token, never the registrar's.
    expect(target.received.map((r) => r.authorization)).toEqual(['Bearer r3c', 'Bearer r3c']);
  });

  it("sends a service its own token (--target-token-for), the others the default", async () => {
    const [ollama, other, plain] = [await startTarget(), await startTarget(), await startTarget()];
    const { app, registry } = setup({ token: TOKEN, targetToken: 'shared', targetTokenFor: ['ollama_service=s3cret=='] });
    await registry.register({ name: 'ollama_service', url: ollama.url });
    await registry.register({ name: 'other', url: other.url });
    for (const to of ['ollama_service', 'other']) {
      const response = await post(app, '/forward', { from: 'test', to, message: 'hi', stream: to === 'other' }, AUTH);
      expect(response.status).toBe(200);
      await response.text();
    }
    // The part after the first "=" is the secret, padding and all.
    expect(ollama.received.map((r) => r.authorization)).toEqual(['Bearer s3cret==']);
    expect(other.received.map((r) => r.authorization)).toEqual(['Bearer shared']);

    // Without a default, a service with no token of its own gets none.
    const only = setup({ token: TOKEN, targetTokenFor: ['ollama_service=s3cret'] });
    await only.registry.register({ name: 'plain', url: plain.url });
    await (await post(only.app, '/forward', { from: 'test', to: 'plain', message: 'hi' }, AUTH)).text();
    expect(plain.received[0]?.authorization).toBeUndefined();
  });

  it.each([
    [['s3cret'], /takes SERVICE=SECRET/],
    [['ollama_service='], /not SERVICE=SECRET/],
    [['=s3cret'], /not SERVICE=SECRET/],
    [['bad name=s3cret'], /not SERVICE=SECRET/],
    [['a=xyzzy1', 'a=xyzzy2'], /names a twice/],
  ])('refuses --target-token-for %j without echoing the secret', (entries, why) => {
    expect(() => parseTargetTokens(entries)).toThrow(TargetTokenError);
    expect(() => parseTargetTokens(entries)).toThrow(why);
    expect(() => parseTargetTokens(entries)).not.toThrow(/s3cret|xyzzy/);
  });

  it("does not pass the caller's registrar token on to the target", async () => {
    const target = await startTarget();
    const { app, registry } = setup({ token: TOKEN });
    await registry.register({ name: 'svc', url: target.url });
    const response = await post(app, '/forward', { from: 'test', to: 'svc', message: 'hi' }, AUTH);
    expect(response.status).toBe(200);
    await response.text();
    expect(target.received[0]?.authorization).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// GET /events.

interface EventReader {
  /** The next event, or undefined when the stream has ended. Fails after `timeoutMs`. */
  next(timeoutMs?: number): Promise<ServerSentEvent | undefined>;
  close(): Promise<void>;
}

async function openEvents(app: Hono, headers: Record<string, string> = {}): Promise<EventReader> {
  const response = await app.request('/events', { headers });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  // Our own reader over the body, so that closing can cancel it even while a read is pending.
  const body = response.body!.getReader();
  const chunks = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const { done, value } = await body.read();
        if (done) return;
        yield value;
      }
    },
  };
  const events = parseEventStream(chunks);
  const reader: EventReader = {
    async next(timeoutMs = 2_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no event within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        const result = await Promise.race([events.next(), timeout]);
        return result.done ? undefined : result.value;
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await body.cancel().catch(() => {});
    },
  };
  cleanups.push(() => reader.close());
  return reader;
}

type EventData = { type: string; name?: string; instance?: { url: string; metadata: Record<string, unknown> }; services?: Record<string, Array<{ url: string; down?: boolean }>> };

/** Reads a watcher's events up to the next snapshot (at most 40): the changes before it, and it. */
async function untilSnapshot(events: Awaited<ReturnType<typeof openEvents>>): Promise<{ missed: string[]; resync: EventData | undefined }> {
  const missed: string[] = [];
  for (let i = 0; i < 40; i++) {
    const event = await events.next();
    if (event?.event === 'snapshot') return { missed, resync: JSON.parse(event.data) as EventData };
    missed.push(event!.event);
  }
  return { missed, resync: undefined };
}

describe('GET /events', () => {
  it('sends a watcher that stopped reading a fresh snapshot instead of every change it missed', async () => {
    const { app } = setup({ eventBacklog: { events: 5 } });
    await post(app, '/register', { service_name: 'first', service_url: 'http://127.0.0.1:6001' });
    const events = await openEvents(app);
    expect((await events.next())?.event).toBe('snapshot');

    // The watcher reads nothing while 30 instances register.
    for (let i = 0; i < 30; i++) await post(app, '/register', { service_name: 'burst', service_url: `http://127.0.0.1:${7000 + i}` });
    const { missed, resync } = await untilSnapshot(events);
    // A few changes were already on their way; the registrar held no more than 5 of the others.
    expect(missed.length).toBeLessThanOrEqual(8);
    expect(resync?.services?.burst).toHaveLength(30);
    expect(Object.keys(resync?.services ?? {}).sort()).toEqual(['burst', 'first']);

    // And it carries on with changes, after the snapshot.
    await post(app, '/register', { service_name: 'after', service_url: 'http://127.0.0.1:6002' });
    const next = await events.next();
    expect(next?.event).toBe('registered');
    expect((JSON.parse(next!.data) as EventData).name).toBe('after');
  });

  it('counts what the held changes weigh too: heavy metadata sends a watcher that stopped reading a snapshot sooner', async () => {
    const { app } = setup({ eventBacklog: { bytes: 64 * 1024 } });
    const events = await openEvents(app);
    expect((await events.next())?.event).toBe('snapshot');

    // 30 changes of 10 KB each: 300 KB, past the 64 KB a watcher may have held for it.
    const heavy = { notes: 'x'.repeat(10 * 1024) };
    for (let i = 0; i < 30; i++) await post(app, '/register', { service_name: 'heavy', service_url: `http://127.0.0.1:${7100 + i}`, metadata: heavy });
    const { missed, resync } = await untilSnapshot(events);
    // A few were on their way; the registrar held no more than six of the others (6 × 10 KB < 64 KB).
    expect(missed.length).toBeLessThanOrEqual(10);
    expect(resync?.services?.heavy).toHaveLength(30);
  });

  it('sends a snapshot first, then every change in order: registered, updated, deregistered, evicted, down, up', async () => {
    const { app, clock } = setup({ token: TOKEN });
    // Before anyone watches: `pre` (deregistered later) and `doomed` (evicted later), at T0.
    await post(app, '/register', { service_name: 'pre', service_url: 'http://127.0.0.1:6001' }, AUTH);
    await post(app, '/register', { service_name: 'doomed', service_url: 'http://127.0.0.1:6002' }, AUTH);
    clock.set(T0 + 100_000); // what is registered from now on outlives `doomed`

    const events = await openEvents(app);
    const snapshot = await events.next();
    expect(snapshot?.event).toBe('snapshot');
    const snapshotData = JSON.parse(snapshot!.data) as EventData;
    expect(snapshotData.type).toBe('snapshot');
    expect(Object.keys(snapshotData.services ?? {})).toEqual(['pre', 'doomed']);
    expect(snapshotData.services?.pre?.[0]?.url).toBe('http://127.0.0.1:6001');

    // registered, then updated (metadata change); a plain heartbeat is no news.
    await post(app, '/register', { service_name: 'svc', service_url: 'http://127.0.0.1:6003', metadata: { v: 1 } }, AUTH);
    await post(app, '/heartbeat', { service_name: 'svc' }, AUTH);
    await post(app, '/register', { service_name: 'svc', service_url: 'http://127.0.0.1:6003', metadata: { v: 2 } }, AUTH);
    // deregistered
    await post(app, '/deregister', { service_name: 'pre' }, AUTH);
    // evicted: past doomed's expiry, and a read sweeps.
    clock.set(T0 + TTL_S * 1000 + 1);
    await app.request('/services');

    // down, then up: `echo` has an instance on a closed port and a live one.
    const deadPort = await closedPort();
    const dead = `http://127.0.0.1:${deadPort}`;
    const live = await startTarget();
    await post(app, '/register', { service_name: 'echo', service_url: dead }, AUTH);
    await post(app, '/register', { service_name: 'echo', service_url: live.url }, AUTH);
    const forwarded = await post(app, '/forward', { from: 'test', to: 'echo', message: 'hi' }, AUTH);
    expect(forwarded.status).toBe(200);
    expect(forwarded.headers.get('x-svcmesh-instance')).toBe(live.url);
    expect(forwarded.headers.get('x-svcmesh-attempts')).toBe('2');
    await forwarded.text();
    // The dead instance comes back; with the live one gone, the next forward goes to it.
    const revived = await startTarget({ port: deadPort });
    await post(app, '/deregister', { service_name: 'echo', service_url: live.url }, AUTH);
    const again = await post(app, '/forward', { from: 'test', to: 'echo', message: 'hi' }, AUTH);
    expect(again.status).toBe(200);
    await again.text();
    expect(revived.received).toHaveLength(1);

    const expected: Array<[string, string, string]> = [
      ['registered', 'svc', 'http://127.0.0.1:6003'],
      ['updated', 'svc', 'http://127.0.0.1:6003'],
      ['deregistered', 'pre', 'http://127.0.0.1:6001'],
      ['evicted', 'doomed', 'http://127.0.0.1:6002'],
      ['registered', 'echo', dead],
      ['registered', 'echo', live.url],
      ['down', 'echo', dead],
      ['deregistered', 'echo', live.url],
      ['up', 'echo', dead],
    ];
    const seen: Array<[string, string, string]> = [];
    const ids: number[] = [Number(snapshot!.id)];
    for (let i = 0; i < expected.length; i++) {
      const event = await events.next();
      const data = JSON.parse(event!.data) as EventData;
      // The SSE event name and the data's type agree, so a reader of either knows what happened.
      expect(data.type).toBe(event!.event);
      seen.push([event!.event, data.name!, data.instance!.url]);
      ids.push(Number(event!.id));
      if (data.type === 'updated') expect(data.instance?.metadata).toEqual({ v: 2 });
    }
    expect(seen).toEqual(expected);
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    await expect(events.next(100)).rejects.toThrow(/no event/);
  });

  it('starts each watcher with a snapshot of what is registered at that moment', async () => {
    const { app } = setup();
    const first = await openEvents(app);
    expect(JSON.parse((await first.next())!.data)).toEqual({ type: 'snapshot', services: {} });
    await post(app, '/register', { service_name: 'svc', service_url: 'http://127.0.0.1:6003' });
    const second = await openEvents(app);
    const snapshot = JSON.parse((await second.next())!.data) as EventData;
    expect(Object.keys(snapshot.services ?? {})).toEqual(['svc']);
    // Both watchers see the next change; the second does not see the registration its snapshot holds.
    await post(app, '/deregister', { service_name: 'svc' });
    expect((await first.next())?.event).toBe('registered');
    expect((await first.next())?.event).toBe('deregistered');
    expect((await second.next())?.event).toBe('deregistered');
  });

  it('hands watchers connecting together one snapshot, and a new one after any change, down marks included', async () => {
    const { app } = setup();
    await post(app, '/register', { service_name: 'svc', service_url: 'http://127.0.0.1:6004' });
    const [a, b] = await Promise.all([openEvents(app), openEvents(app)]);
    const [snapshotA, snapshotB] = [(await a.next())!.data, (await b.next())!.data];
    expect(snapshotB).toBe(snapshotA);

    const dead = `http://127.0.0.1:${await closedPort()}`;
    await post(app, '/register', { service_name: 'gone', service_url: dead });
    const afterRegister = JSON.parse((await (await openEvents(app)).next())!.data) as EventData;
    expect(Object.keys(afterRegister.services ?? {}).sort()).toEqual(['gone', 'svc']);
    expect(afterRegister.services?.gone?.[0]?.down).toBeUndefined();

    // Marked down by a failed forward: not a change to the catalog, but news to a new watcher.
    expect((await post(app, '/forward', { to: 'gone', message: 'hi' })).status).toBe(502);
    const afterDown = JSON.parse((await (await openEvents(app)).next())!.data) as EventData;
    expect(afterDown.services?.gone?.[0]?.down).toBe(true);
  });

  it('ends every stream when the server shuts down', async () => {
    const { app, shutdown, registry } = setup();
    const a = await openEvents(app);
    const b = await openEvents(app);
    expect((await a.next())?.event).toBe('snapshot');
    expect((await b.next())?.event).toBe('snapshot');
    shutdown.abort();
    expect(await a.next()).toBeUndefined();
    expect(await b.next()).toBeUndefined();
    // A stream opened after shutdown gets its snapshot and ends at once.
    const late = await openEvents(app);
    expect((await late.next())?.event).toBe('snapshot');
    expect(await late.next()).toBeUndefined();
    // Nothing stays subscribed: a change afterwards reaches no stream and throws nowhere.
    await registry.register({ name: 'svc', url: 'http://127.0.0.1:6003' });
  });

  it('stops listening to the registry when the watcher goes away', async () => {
    const { app, registry } = setup();
    const subscribe = registry.subscribe.bind(registry);
    let subscribed = 0;
    vi.spyOn(registry, 'subscribe').mockImplementation((listener) => {
      subscribed += 1;
      const off = subscribe(listener);
      return () => {
        subscribed -= 1;
        return off();
      };
    });
    const events = await openEvents(app);
    expect((await events.next())?.event).toBe('snapshot');
    expect(subscribed).toBe(1);
    await events.close();
    await waitFor(() => subscribed === 0, 2_000, 'the event stream to unsubscribe');
  });
});

describe('GET /events, more closely', () => {
  it('does not follow the snapshot with an eviction the snapshot already left out', async () => {
    const { app, clock, registry } = setup();
    await registry.register({ name: 'doomed', url: 'http://127.0.0.1:6002' });
    clock.set(T0 + 100_000);
    await registry.register({ name: 'svc', url: 'http://127.0.0.1:6003' });
    // doomed has expired, but nothing has read the catalog since: opening the stream is the first read.
    clock.set(T0 + TTL_S * 1000 + 1);
    const events = await openEvents(app);
    const snapshot = JSON.parse((await events.next())!.data) as EventData;
    expect(Object.keys(snapshot.services ?? {})).toEqual(['svc']);
    await registry.deregister('svc');
    const next = await events.next();
    expect([next?.event, JSON.parse(next!.data).name]).toEqual(['deregistered', 'svc']);
  });

  it('sends a keep-alive comment on a quiet stream, which the parser skips', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { app, registry } = setup();
    const response = await app.request('/events');
    const body = response.body!.getReader();
    cleanups.push(() => body.cancel());
    const decoder = new TextDecoder();
    const read = async () => decoder.decode((await body.read()).value);
    expect(await read()).toMatch(/^event: snapshot\ndata: \{"type":"snapshot","services":\{\}\}\nid: 1\n\n$/);
    vi.advanceTimersByTime(15_000);
    expect(await read()).toBe(': keep-alive\n\n');
    await registry.register({ name: 'svc', url: 'http://127.0.0.1:6003' });
    expect(await read()).toMatch(/^event: registered\ndata: \{"type":"registered","name":"svc",.*\nid: 2\n\n$/);
  });

  it('parses events split anywhere across chunks: CRLF, several data lines, comments, ids, UTF-8', async () => {
    const text = 'event: a\r\ndata: 1\r\ndata: 2\r\n\r\n: a comment\n\nid: 7\ndata:x é ✓\n\ndata: no end';
    const bytes = new TextEncoder().encode(text);
    async function* oneByteAtATime() {
      for (const byte of bytes) yield new Uint8Array([byte]);
    }
    const events: ServerSentEvent[] = [];
    for await (const event of parseEventStream(oneByteAtATime())) events.push(event);
    // The last event never ended with a blank line, so it was never sent whole: dropped, as in a browser.
    expect(events).toEqual([
      { event: 'a', data: '1\n2', id: undefined },
      { event: 'message', data: 'x é ✓', id: '7' },
    ]);
  });
});

/** A fetch that reaches whichever registrar app is current, and fails like a refused connection when there is none. */
function switchableFetch() {
  const state: { app: Hono | undefined; calls: number } = { app: undefined, calls: 0 };
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    state.calls += 1;
    if (!state.app) throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    const response = await state.app.request(String(input), init);
    // Like a real fetch, aborting the signal errors the body being read.
    const body = response.body && response.body.pipeThrough(new TransformStream(), { signal: init?.signal ?? undefined });
    return new Response(body, { status: response.status, headers: response.headers });
  }) as typeof fetch;
  return { state, fetchImpl };
}

describe('watchEvents (what `services --watch` runs on)', () => {
  it('reconnects by itself after the registrar restarts, and starts over with a fresh snapshot', async () => {
    const { state, fetchImpl } = switchableFetch();
    const first = setup();
    await post(first.app, '/register', { service_name: 'a', service_url: 'http://127.0.0.1:6001' });
    state.app = first.app;
    const controller = new AbortController();
    const disconnects: string[] = [];
    const events = watchEvents({
      url: 'http://registrar.test/events',
      fetch: fetchImpl,
      signal: controller.signal,
      onDisconnect: (error) => disconnects.push(error.message),
      maxRetryMs: 20,
    });
    const next = async () => {
      const { value } = await events.next();
      return value && (JSON.parse(value.data) as EventData);
    };
    expect(await next()).toMatchObject({ type: 'snapshot', services: { a: [{ url: 'http://127.0.0.1:6001' }] } });
    await post(first.app, '/register', { service_name: 'b', service_url: 'http://127.0.0.1:6002' });
    expect(await next()).toMatchObject({ type: 'registered', name: 'b' });

    // The registrar goes away (its streams end) and stays away for a few attempts.
    state.app = undefined;
    first.shutdown.abort();
    const reconnected = next();
    await waitFor(() => disconnects.length >= 3, 2_000, 'a few failed reconnection attempts');
    const second = setup();
    await post(second.app, '/register', { service_name: 'c', service_url: 'http://127.0.0.1:6003' });
    state.app = second.app;

    expect(await reconnected).toEqual({ type: 'snapshot', services: { c: [expect.objectContaining({ url: 'http://127.0.0.1:6003' })] } });
    expect(disconnects[0]).toMatch(/closed the event stream/);
    expect(disconnects[1]).toMatch(/Cannot reach http:\/\/registrar\.test\/events: ECONNREFUSED/);
    await post(second.app, '/register', { service_name: 'd', service_url: 'http://127.0.0.1:6004' });
    expect(await next()).toMatchObject({ type: 'registered', name: 'd' });

    controller.abort();
    expect(await events.next()).toEqual({ done: true, value: undefined });
  });

  it('gives up at once on a 401 rather than retrying a wrong token forever', async () => {
    const { state, fetchImpl } = switchableFetch();
    state.app = setup({ token: TOKEN, protectReads: true }).app;
    const events = watchEvents({ url: 'http://registrar.test/events', fetch: fetchImpl, signal: new AbortController().signal });
    const error = await events.next().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect(error).toMatchObject({ status: 401 });
    expect((error as Error).message).toMatch(/requires a token/);
    expect(state.calls).toBe(1);
  });

  it('sends the token it is given, which a registrar protecting reads wants', async () => {
    const { state, fetchImpl } = switchableFetch();
    state.app = setup({ token: TOKEN, protectReads: true }).app;
    const controller = new AbortController();
    const events = watchEvents({ url: 'http://registrar.test/events', headers: AUTH, fetch: fetchImpl, signal: controller.signal });
    expect((await events.next()).value?.event).toBe('snapshot');
    controller.abort();
    expect((await events.next()).done).toBe(true);
  });

  it('stops at once when aborted while waiting to reconnect', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { fetchImpl } = switchableFetch(); // no registrar at all
    const controller = new AbortController();
    let waiting = false;
    const events = watchEvents({
      url: 'http://registrar.test/events',
      fetch: fetchImpl,
      signal: controller.signal,
      onDisconnect: () => (waiting = true),
    });
    const ended = events.next();
    for (let i = 0; i < 100 && !waiting; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(waiting).toBe(true);
    // The fake clock never moves: only the abort can end the wait.
    controller.abort();
    let settled = false;
    void ended.then(() => (settled = true));
    for (let i = 0; i < 100 && !settled; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(true);
    expect(await ended).toEqual({ done: true, value: undefined });
  });

  /**
   * A registrar on 127.0.0.1 whose /events sends a snapshot (numbered by the connection), then
   * `then(res)` (nothing, by default: a stopped registrar, a partition, a stuck proxy).
   */
  async function eventsServer(then: (res: ServerResponse) => void = () => {}) {
    const target = await startTarget({
      handler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`event: snapshot\ndata: {"type":"snapshot","connection":${target.received.length}}\n\n`);
        then(res);
      },
    });
    const controller = new AbortController();
    const disconnects: string[] = [];
    // Registered after the server: the watch stops first, so it does not reconnect to a closed port.
    cleanups.push(() => controller.abort());
    const watch = (silenceMs: number) =>
      watchEvents({ url: `${target.url}/events`, signal: controller.signal, silenceMs, maxRetryMs: 20, onDisconnect: (error) => disconnects.push(error.message) });
    const data = async (events: AsyncGenerator<ServerSentEvent>) => JSON.parse((await events.next()).value?.data ?? 'null') as { type: string; connection?: number };
    return { target, controller, disconnects, watch, data };
  }

  it('takes a registrar that keeps the connection open and sends nothing for gone, says so, and connects again', async () => {
    const { target, controller, disconnects, watch, data } = await eventsServer();
    const events = watch(300);
    expect(await data(events)).toEqual({ type: 'snapshot', connection: 1 });
    const reconnected = data(events);
    await waitFor(() => disconnects.length > 0, 5_000, 'the silent connection to be reported lost');
    expect(disconnects[0]).toBe('the registrar sent nothing for 0.3 s, not even a keep-alive');
    expect(await reconnected).toEqual({ type: 'snapshot', connection: 2 });
    expect(target.received).toHaveLength(2);
    controller.abort();
    expect(await events.next()).toEqual({ done: true, value: undefined });
  });

  it('takes a registrar that accepts the connection and never answers (a stopped one, on reconnecting) for gone too', async () => {
    const server = await startSilentServer();
    const controller = new AbortController();
    cleanups.push(
      () => server.close(),
      () => controller.abort(),
    );
    const disconnects: string[] = [];
    const url = `${server.url}/events`;
    const events = watchEvents({ url, signal: controller.signal, silenceMs: 300, maxRetryMs: 20, onDisconnect: (error) => disconnects.push(error.message) });
    const ended = events.next();
    await waitFor(() => disconnects.length >= 2, 5_000, 'two silent connections to be reported lost');
    expect(disconnects.slice(0, 2)).toEqual(['the registrar sent nothing for 0.3 s, not even a keep-alive', 'the registrar sent nothing for 0.3 s, not even a keep-alive']);
    expect(server.connections()).toBeGreaterThanOrEqual(2);
    controller.abort();
    expect(await ended).toEqual({ done: true, value: undefined });
  });

  it('keeps a quiet stream whose keep-alive comments come within the limit', async () => {
    const { target, controller, disconnects, watch, data } = await eventsServer((res) => {
      // 15 keep-alives, 1.5 s in all, then an event: the stream outlives its 1 s limit many times over.
      let sent = 0;
      const timer = setInterval(() => {
        sent += 1;
        if (sent <= 15) res.write(': keep-alive\n\n');
        else res.write('event: registered\ndata: {"type":"registered"}\n\n');
        if (sent > 15) clearInterval(timer);
      }, 100);
      res.on('close', () => clearInterval(timer));
    });
    const events = watch(1_000);
    expect(await data(events)).toEqual({ type: 'snapshot', connection: 1 });
    expect(await data(events)).toEqual({ type: 'registered' });
    expect(disconnects).toEqual([]);
    expect(target.received).toHaveLength(1);
    controller.abort();
  });

  it('does not count the time its reader takes over an event as the registrar keeping silent', async () => {
    const { target, controller, disconnects, watch, data } = await eventsServer((res) => {
      const timer = setInterval(() => res.write('event: registered\ndata: {"type":"registered"}\n\n'), 50);
      res.on('close', () => clearInterval(timer));
    });
    const events = watch(300);
    expect(await data(events)).toEqual({ type: 'snapshot', connection: 1 });
    // A reader held up (a `--watch --json` piped into a paused pager) while the events pile up.
    await new Promise((resolve) => setTimeout(resolve, 900));
    expect(await data(events)).toEqual({ type: 'registered' });
    expect(disconnects).toEqual([]);
    expect(target.received).toHaveLength(1);
    controller.abort();
  });
});

// ---------------------------------------------------------------------------------------------
// GET /metrics.

/** `name{label="v",…} value` lines into a map keyed by name and sorted labels. */
function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels = (match[2] ?? '').match(/\w+="(?:[^"\\]|\\.)*"/g) ?? [];
    values.set(`${match[1]}${labels.length ? `{${[...labels].sort().join(',')}}` : ''}`, Number(match[3]));
  }
  return values;
}

describe('GET /metrics', () => {
  it("exports the process's own memory, CPU, open files and start time too, as Prometheus users expect of any process", async () => {
    const { app } = setup();
    const metrics = parseMetrics(await (await app.request('/metrics')).text());
    expect(metrics.get('process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
    expect(metrics.get('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(metrics.get('process_open_fds')).toBeGreaterThan(0);
    expect(metrics.get('nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(metrics.get('process_start_time_seconds')).toBeLessThanOrEqual(Date.now() / 1000);
  });

  it('counts exactly what happened after a known sequence of calls', async () => {
    const target = await startTarget();
    const { app, clock } = setup();
    // 2 registrations at T0: `echo` is kept alive by heartbeats, `doomed` is not.
    expect((await post(app, '/register', { service_name: 'echo', service_url: target.url })).status).toBe(200);
    expect((await post(app, '/register', { service_name: 'doomed', service_url: 'http://127.0.0.1:6002' })).status).toBe(200);

    const before = parseMetrics(await (await app.request('/metrics')).text());
    expect(before.get('svcmesh_instances{service="echo"}')).toBe(1);
    expect(before.get('svcmesh_instances{service="doomed"}')).toBe(1);

    // At T0 a heartbeat for a name the registrar does not know (404), then one with its URL that
    // registers it again (its TTL runs out with doomed's).
    expect((await post(app, '/heartbeat', { service_name: 'ghost' })).status).toBe(404);
    expect((await post(app, '/heartbeat', { service_name: 'ghost', service_url: 'http://127.0.0.1:6003' })).status).toBe(200);
    // 3 heartbeats (at T0 + 200 s), then 2 evictions: doomed's and ghost's TTL run out, echo's does not.
    clock.set(T0 + 200_000);
    for (let i = 0; i < 3; i++) expect((await post(app, '/heartbeat', { service_name: 'echo' })).status).toBe(200);
    clock.set(T0 + TTL_S * 1000 + 1);
    expect(await (await app.request('/services')).json()).toEqual({ services: { echo: target.url } });

    // 2 forwards to echo (200), 2 to names nothing registered (404), 1 streamed to echo.
    for (let i = 0; i < 2; i++) {
      const response = await post(app, '/forward', { from: 'test', to: 'echo', message: 'hi' });
      expect(response.status).toBe(200);
      await response.text();
    }
    expect((await post(app, '/forward', { from: 'test', to: 'nope', message: 'hi' })).status).toBe(404);
    expect((await post(app, '/forward', { from: 'test', to: 'nope2', message: 'hi' })).status).toBe(404);
    const streamed = await post(app, '/forward', { from: 'test', to: 'echo', message: 'hi', stream: true });
    expect(streamed.status).toBe(200);
    expect(await streamed.text()).toBe('{"message":"o"}\n{"message":"k"}\n{"done":true}\n');

    const response = await app.request('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const metrics = parseMetrics(text);
    expect({
      registrations: metrics.get('svcmesh_registrations_total'),
      deregistrations: metrics.get('svcmesh_deregistrations_total'),
      heartbeatsRenewed: metrics.get('svcmesh_heartbeats_total{outcome="renewed"}'),
      heartbeatsReregistered: metrics.get('svcmesh_heartbeats_total{outcome="reregistered"}'),
      heartbeatsUnknown: metrics.get('svcmesh_heartbeats_total{outcome="unknown"}'),
      evictions: metrics.get('svcmesh_evictions_total'),
      echo200: metrics.get('svcmesh_forwards_total{status="200",target="echo"}'),
      unregistered404: metrics.get('svcmesh_forwards_total{status="404",target="(unregistered)"}'),
      latencyEcho: metrics.get('svcmesh_forward_duration_seconds_count{target="echo"}'),
      latencyUnregistered: metrics.get('svcmesh_forward_duration_seconds_count{target="(unregistered)"}'),
      latencyEchoInf: metrics.get('svcmesh_forward_duration_seconds_bucket{le="+Inf",target="echo"}'),
      firstChunkEcho: metrics.get('svcmesh_forward_first_chunk_seconds_count{target="echo"}'),
      inFlightEcho: metrics.get('svcmesh_forwards_in_flight{target="echo"}'),
      inFlightUnregistered: metrics.get('svcmesh_forwards_in_flight{target="(unregistered)"}'),
      instancesEcho: metrics.get('svcmesh_instances{service="echo"}'),
      instancesDoomed: metrics.get('svcmesh_instances{service="doomed"}'),
    }).toEqual({
      // echo and doomed, and ghost brought back by its heartbeat.
      registrations: 3,
      deregistrations: 0,
      heartbeatsRenewed: 3,
      heartbeatsReregistered: 1,
      heartbeatsUnknown: 1,
      evictions: 2,
      // The streamed forward is a 200 to echo as well: 2 + 1.
      echo200: 3,
      // Names nobody registered share one series: a caller cannot grow the registrar's memory.
      unregistered404: 2,
      latencyEcho: 3,
      latencyUnregistered: 2,
      latencyEchoInf: 3,
      firstChunkEcho: 1,
      inFlightEcho: 0,
      inFlightUnregistered: 0,
      instancesEcho: 1,
      // An evicted service leaves the gauge rather than staying at 0 forever.
      instancesDoomed: undefined,
    });
    // Only those two label sets were ever counted.
    expect([...metrics.keys()].filter((k) => k.startsWith('svcmesh_forwards_total')).sort()).toEqual([
      'svcmesh_forwards_total{status="200",target="echo"}',
      'svcmesh_forwards_total{status="404",target="(unregistered)"}',
    ]);
    expect([...metrics.keys()].filter((k) => k.includes('nope'))).toEqual([]);
    // Every metric the issue names is described for Prometheus.
    for (const name of [
      'svcmesh_instances gauge',
      'svcmesh_registrations_total counter',
      'svcmesh_heartbeats_total counter',
      'svcmesh_evictions_total counter',
      'svcmesh_forwards_total counter',
      'svcmesh_forward_duration_seconds histogram',
      'svcmesh_forwards_in_flight gauge',
      'svcmesh_forward_first_chunk_seconds histogram',
    ]) {
      expect(text).toContain(`# TYPE ${name}\n`);
    }
  });

  it('shows a forward in flight while its answer streams, and 0 once it is done', async () => {
    let finish!: () => void;
    const target = await startTarget({
      handler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write('{"message":"first"}\n');
        finish = () => res.end('{"done":true}\n');
      },
    });
    const { app } = setup();
    await post(app, '/register', { service_name: 'echo', service_url: target.url });
    const response = await post(app, '/forward', { from: 'test', to: 'echo', message: 'hi', stream: true });
    const reader = response.body!.getReader();
    await reader.read();
    const during = parseMetrics(await (await app.request('/metrics')).text());
    expect(during.get('svcmesh_forwards_in_flight{target="echo"}')).toBe(1);
    expect(during.get('svcmesh_forward_first_chunk_seconds_count{target="echo"}')).toBe(1);
    finish();
    while (!(await reader.read()).done);
    const after = parseMetrics(await (await app.request('/metrics')).text());
    expect(after.get('svcmesh_forwards_in_flight{target="echo"}')).toBe(0);
  });

  it("drops a service's forward series once it is gone and its last forward is over", async () => {
    let finish!: () => void;
    const target = await startTarget({
      // The first answer streams until the test finishes it; the later ones end at once.
      handler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        if (finish === undefined) {
          res.write('{"message":"first"}\n');
          finish = () => res.end('{"done":true}\n');
        } else res.end('{"done":true}\n');
      },
    });
    const { app, clock } = setup();
    const forwardSeries = async (name: string) =>
      [...parseMetrics(await (await app.request('/metrics')).text()).keys()].filter((k) => k.startsWith('svcmesh_forward') && k.includes(`target="${name}"`));

    // `left` deregisters while one of its answers still streams; `silent` is evicted.
    await post(app, '/register', { service_name: 'left', service_url: target.url });
    await post(app, '/register', { service_name: 'silent', service_url: target.url });
    const streaming = await post(app, '/forward', { from: 'test', to: 'left', message: 'hi', stream: true });
    const reader = streaming.body!.getReader();
    await reader.read();
    await (await post(app, '/forward', { from: 'test', to: 'silent', message: 'hi' })).text();
    expect(await forwardSeries('silent')).not.toEqual([]);

    expect((await post(app, '/deregister', { service_name: 'left' })).status).toBe(200);
    // Still in flight: its gauge must show it until it ends.
    const during = parseMetrics(await (await app.request('/metrics')).text());
    expect(during.get('svcmesh_forwards_in_flight{target="left"}')).toBe(1);
    finish();
    while (!(await reader.read()).done);
    expect(await forwardSeries('left')).toEqual([]);

    clock.set(T0 + TTL_S * 1000 + 1);
    expect(await (await app.request('/services')).json()).toEqual({ services: {} });
    expect(await forwardSeries('silent')).toEqual([]);

    // Registered again, it is counted afresh.
    await post(app, '/register', { service_name: 'silent', service_url: target.url });
    await (await post(app, '/forward', { from: 'test', to: 'silent', message: 'hi' })).text();
    const again = parseMetrics(await (await app.request('/metrics')).text());
    expect(again.get('svcmesh_forwards_total{status="200",target="silent"}')).toBe(1);
  });

  it('counts a streamed answer that broke after it began, beside its 200', async () => {
    const { app } = setup();
    const target = await startTarget({
      handler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write('{"message":"half"}\n');
        setTimeout(() => res.destroy(), 20);
      },
    });
    await post(app, '/register', { service_name: 'flaky', service_url: target.url });
    const whole = await startTarget();
    await post(app, '/register', { service_name: 'steady', service_url: whole.url });
    for (const to of ['flaky', 'steady']) {
      const response = await post(app, '/forward', { from: 'test', to, message: 'hi', stream: true });
      expect(response.status).toBe(200);
      await response.text();
    }
    const metrics = parseMetrics(await (await app.request('/metrics')).text());
    expect(metrics.get('svcmesh_forwards_total{status="200",target="flaky"}')).toBe(1);
    expect(metrics.get('svcmesh_forward_streams_broken_total{target="flaky"}')).toBe(1);
    expect(metrics.get('svcmesh_forward_streams_broken_total{target="steady"}')).toBeUndefined();
  });

  it('counts a forward nothing answered as a 502 and brings in-flight back to 0', async () => {
    const { app } = setup();
    await post(app, '/register', { service_name: 'gone', service_url: `http://127.0.0.1:${await closedPort()}` });
    expect((await post(app, '/forward', { from: 'test', to: 'gone', message: 'hi' })).status).toBe(502);
    const metrics = parseMetrics(await (await app.request('/metrics')).text());
    expect(metrics.get('svcmesh_forwards_total{status="502",target="gone"}')).toBe(1);
    expect(metrics.get('svcmesh_forwards_in_flight{target="gone"}')).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Logs.

describe('log lines', () => {
  const SECRET = 'sekrit-token';

  /**
   * The app behind a real server, as `svcmesh registrar` runs it: request lines come from the
   * server, and /services and /forward are answered by the fast path. Returned with the app's
   * `request` shape so the helpers above work.
   */
  async function overSocket({ app, logger, fastPath }: { app: Hono; logger?: Logger; fastPath: FastPath }): Promise<Hono> {
    const handle = await startServer(app, { host: '127.0.0.1', port: 0, logger, fastPath });
    cleanups.push(() => handle.close(100));
    return { request: (path: string, init?: RequestInit) => fetch(`${handle.url}${path}`, init) } as unknown as Hono;
  }

  /** Request lines are written when the server has closed the answer: wait for all of them. */
  async function linesWhen(logLines: () => Promise<string[]>, count: number): Promise<string[]> {
    await waitFor(async () => (await logLines()).length >= count, 5_000, `${count} log lines`);
    return logLines();
  }

  /** Forwards and reads the whole answer, so the request is over before the next one. */
  async function forwardStatus(app: Hono, headers: Record<string, string>): Promise<number> {
    const response = await post(app, '/forward', { from: 'test', to: 'svc', message: 'hi' }, headers);
    await response.text();
    return response.status;
  }

  /** A mix of requests: authorised, refused, a read, a forward (which sends the target token), a 404. */
  async function traffic(app: Hono, targetUrl: string) {
    const auth = { authorization: `Bearer ${SECRET}` };
    const statuses = [
      (await post(app, '/register', { service_name: 'svc', service_url: targetUrl }, auth)).status,
      (await post(app, '/register', { service_name: 'svc', service_url: targetUrl }, { authorization: 'Bearer sekrit-token-wrong' })).status,
      (await post(app, '/heartbeat', { service_name: 'svc' }, auth)).status,
      (await app.request(`/services?token=${SECRET}`, { headers: auth })).status,
      await forwardStatus(app, auth),
      (await post(app, '/deregister', { service_name: 'svc' }, auth)).status,
      (await post(app, '/deregister', { service_name: 'svc' }, auth)).status,
    ];
    expect(statuses).toEqual([200, 401, 200, 200, 200, 200, 404]);
  }

  it('--log-format json: one JSON line per request and per registry change, never the token', async () => {
    const target = await startTarget();
    const registrar = setup({ token: SECRET, targetToken: `${SECRET}-target`, logFormat: 'json' });
    await traffic(await overSocket(registrar), target.url);
    expect(target.received[0]?.authorization).toBe(`Bearer ${SECRET}-target`);
    const lines = await linesWhen(registrar.logLines, 9);
    const records = lines.map((line) => JSON.parse(line) as { time: string; msg: string; ms?: number });
    for (const record of records) expect(Number.isNaN(Date.parse(record.time))).toBe(false);
    expect(records.map((r) => r.msg)).toEqual([
      `registered svc ${target.url}`,
      'POST /register 200',
      'POST /register 401',
      'POST /heartbeat 200',
      'GET /services 200',
      'POST /forward 200',
      `deregistered svc ${target.url}`,
      'POST /deregister 200',
      'POST /deregister 404',
    ]);
    for (const record of records.filter((r) => /^(GET|POST) /.test(r.msg))) expect(typeof record.ms).toBe('number');
    // What the message says is in fields of its own too, for log pipelines that filter on them.
    expect(records[4]).toMatchObject({ method: 'GET', path: '/services', status: 200 });
    expect(records[2]).toMatchObject({ method: 'POST', path: '/register', status: 401 });
    expect(records[0]).toMatchObject({ event: 'registered', service: 'svc', url: target.url });
    for (const line of lines) expect(line).not.toContain(SECRET);
  });

  it('text format: readable lines, never the token', async () => {
    const target = await startTarget();
    const registrar = setup({ token: SECRET, targetToken: `${SECRET}-target`, logFormat: 'text' });
    await traffic(await overSocket(registrar), target.url);
    const lines = await linesWhen(registrar.logLines, 9);
    expect(lines).toHaveLength(9);
    expect(lines[1]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z POST \/register 200 ms=[\d.]+$/);
    expect(lines[0]).toMatch(new RegExp(`Z registered svc ${target.url}$`));
    for (const line of lines) {
      expect(line).not.toContain(SECRET);
      expect(() => JSON.parse(line)).toThrow();
    }
  });

  it('logs a refused request with a huge or odd Authorization header without echoing it', async () => {
    const registrar = setup({ token: SECRET, logFormat: 'json' });
    const odd = `Bearer ${SECRET} ${'x'.repeat(10_000)}`;
    const response = await (await overSocket(registrar)).request('/register', { method: 'POST', headers: { authorization: odd }, body: '{}' });
    expect(response.status).toBe(401);
    const lines = await linesWhen(registrar.logLines, 1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(SECRET);
  });
});
