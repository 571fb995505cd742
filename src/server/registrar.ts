import { Hono } from 'hono';
import { z } from 'zod';
import type { Registry } from '../registry/registry.js';
import type { Instance } from '../registry/types.js';
import { VERSION } from '../version.js';
import type { HostPolicy } from '../allow-hosts.js';
import { requireToken, tokenCheck } from './auth.js';
import { refuseBrowserWrites } from './cross-site.js';
import { DASHBOARD_HTML } from './dashboard.js';
import { ApiError, onError, notFound, refuseOtherMethods } from './errors.js';
import { AbortFanout } from './abort-fanout.js';
import { type BacklogLimits, eventStream } from './events.js';
import { answerResponse, caseHint, type Forwarder } from './forwarder.js';
import { traceHeaders } from './trace-headers.js';
import { acceptHeartbeat, checkServiceHost, heartbeatBody, instanceRef, REREGISTERED_HEADER } from './heartbeat.js';
import type { RegistrarMetrics } from './metrics.js';
import type { Logger } from './request-log.js';
import { forwardBody, httpUrl, metadata, optional, parseJsonBody, serviceName } from './validation.js';
import { servicesAnswer } from './services-answer.js';
import { instanceJson, servicesBody, servicesText } from './wire.js';

export interface RegistrarDeps {
  registry: Registry;
  forwarder: Forwarder;
  /** When set, every mutating request and `/forward` needs `Authorization: Bearer <token>`. */
  token?: string;
  /** With a token, reads (`/services`, `/catalog`, `/events`, `/metrics`) need it too. */
  protectReads?: boolean;
  ttlSeconds: number;
  startedAt?: number;
  /** `--allow-hosts`: which hosts service URLs may point at. */
  hostPolicy?: HostPolicy;
  metrics?: RegistrarMetrics;
  logger?: Logger;
  /** Aborted when the server shuts down: ends the event streams so the drain is not held up. */
  shutdown?: AbortSignal;
  /** Changes held for a watcher of /events that is not reading (how many, how heavy), before it gets a fresh snapshot. */
  eventBacklog?: BacklogLimits;
}

/** The routes that change the catalog or reach a service: never for another site's page. */
const WRITE_ROUTES = ['/register', '/heartbeat', '/deregister', '/forward'];

const registerBody = z.object({
  service_name: serviceName,
  service_url: httpUrl,
  metadata: optional(metadata),
});

/** Builds the registrar's HTTP API; it never listens (see `startServer`). */
export function createRegistrarApp(deps: RegistrarDeps): Hono {
  const { registry, forwarder } = deps;
  const startedAt = deps.startedAt ?? Date.now();
  const app = new Hono();
  app.onError(onError());
  app.notFound(notFound);

  if (deps.logger) {
    // Requests are logged by the server (startServer's logger); the app logs what they change.
    const logger = deps.logger;
    registry.subscribe((event) =>
      logger.log(`${event.type} ${event.instance.name} ${event.instance.url}`, undefined, {
        event: event.type,
        service: event.instance.name,
        url: event.instance.url,
      }),
    );
  }
  for (const path of WRITE_ROUTES) app.use(path, refuseBrowserWrites);
  if (deps.token) {
    const auth = requireToken(deps.token);
    for (const path of WRITE_ROUTES) app.use(path, auth);
    if (deps.protectReads) for (const path of ['/services', '/services/*', '/catalog', '/events', '/metrics']) app.use(path, auth);
  }
  // Every watcher of /events ends at shutdown: one listener on the signal for all of them.
  const shutdown = new AbortFanout(deps.shutdown);

  app.get('/', (c) => c.html(DASHBOARD_HTML));
  app.get('/events', (c) => eventStream(c, registry, shutdown, deps.eventBacklog));
  app.get('/metrics', async (c) => {
    if (!deps.metrics) throw new ApiError(404, 'Metrics are not enabled on this registrar');
    const { body, contentType } = await deps.metrics.render();
    return c.body(body, 200, { 'content-type': contentType });
  });

  app.post('/register', async (c) => {
    const body = await parseJsonBody(c, registerBody);
    checkServiceHost(deps.hostPolicy, body.service_url);
    await registry.register({ name: body.service_name, url: body.service_url, metadata: body.metadata });
    return c.json({ message: `Service ${body.service_name} registered at ${body.service_url}` });
  });

  // The registrar's node fast path (registrar-fast-path.ts) answers this too, from the same bytes.
  app.get('/services', async (c) => {
    const answer = await servicesAnswer(servicesBody(registry), { acceptEncoding: c.req.header('accept-encoding'), ifNoneMatch: c.req.header('if-none-match') });
    if (answer.status === 304) return c.body(null, 304, answer.headers);
    // Hono takes the length from the bytes.
    const { 'content-length': _length, ...headers } = answer.headers;
    return c.body(answer.bytes as Uint8Array<ArrayBuffer>, 200, headers as Record<string, string>);
  });

  app.get('/services/:name', (c) => {
    const name = c.req.param('name');
    const instances = registry.instances(name);
    if (instances.length === 0) {
      const hint = caseHint(registry, name);
      throw new ApiError(404, `Service ${name} is not registered${hint ? ` (${hint})` : ''}`);
    }
    return c.json({ name, instances: instances.map((instance) => instanceJson(instance, registry)) });
  });

  app.get('/catalog', (c) => c.body(`{"services":${servicesText(registry.all(), registry)}}`, 200, { 'content-type': 'application/json' }));

  // Behind a real server the fast path answers /heartbeat; this route serves app.request().
  app.post('/heartbeat', async (c) => {
    const { message, reregistered } = await acceptHeartbeat(deps, await parseJsonBody(c, heartbeatBody));
    return c.json({ message }, 200, reregistered ? { [REREGISTERED_HEADER]: 'true' } : {});
  });

  app.post('/deregister', async (c) => {
    const body = await parseJsonBody(c, instanceRef);
    const removed = await registry.deregister(body.service_name, body.service_url);
    if (removed.length === 0) {
      const what = body.service_url ? `${body.service_name} at ${body.service_url}` : body.service_name;
      throw new ApiError(404, `Service ${what} is not registered`);
    }
    return c.json({ message: `Service ${body.service_name} deregistered (${removed.length} instance${removed.length === 1 ? '' : 's'})` });
  });

  // Behind a real server the fast path answers /forward; this route serves app.request() and
  // anything the fast path leaves.
  app.post('/forward', async (c) => {
    const body = await parseJsonBody(c, forwardBody);
    const answer = await forwarder.forward(
      { from: body.from, to: body.to, message: body.message, stream: body.stream === true, history: body.history, trace: traceHeaders((name) => c.req.header(name)) },
      c.req.raw.signal,
    );
    return answerResponse(answer);
  });

  const checkToken = deps.token ? tokenCheck(deps.token) : undefined;
  app.get('/health', (c) => {
    const authorization = c.req.header('authorization');
    const store = registry.health();
    const { services, instances } = registry.counts();
    return c.json({
      status: store.status,
      version: VERSION,
      store: store.store,
      ...(store.detail && { detail: store.detail }),
      ttl_seconds: deps.ttlSeconds,
      services,
      instances,
      uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
      // Whether /forward and the writes need a token: `ask` says so before its prompt.
      token_required: Boolean(deps.token),
      // Asked with a token: whether it is this registrar's, so a wrong one is said before a
      // session begins rather than at its first question. (/forward's 401 tells as much already.)
      ...(checkToken && authorization !== undefined && { token_accepted: accepts(checkToken, authorization) }),
      // Another value after a restart: a service tells a registrar that forgot it this way.
      started_at: new Date(startedAt).toISOString(),
    });
  });

  refuseOtherMethods(app, {
    '/': ['GET'],
    '/events': ['GET'],
    '/metrics': ['GET'],
    '/register': ['POST'],
    '/services': ['GET'],
    '/services/:name': ['GET'],
    '/catalog': ['GET'],
    '/heartbeat': ['POST'],
    '/deregister': ['POST'],
    '/forward': ['POST'],
    '/health': ['GET'],
  });

  return app;
}

function accepts(check: (header: string) => void, header: string): boolean {
  try {
    check(header);
    return true;
  } catch {
    return false;
  }
}
