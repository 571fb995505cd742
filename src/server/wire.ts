import { createHash } from 'node:crypto';
import type { Instance } from '../registry/types.js';
import type { InstanceJson } from '../wire-types.js';

/** What the registry knows of an instance beyond the store: whether forwards find it down. */
export interface Reachability {
  isDown(instance: Instance): boolean;
}

export type { InstanceJson };

/** The wire shape of an instance: snake_case and ISO times, like the seed's API. */
export function instanceJson(instance: Instance, reachability?: Reachability): InstanceJson {
  const json: InstanceJson = {
    url: instance.url,
    registered_at: new Date(instance.registeredAt).toISOString(),
    last_heartbeat: new Date(instance.lastHeartbeat).toISOString(),
    expires_at: new Date(instance.expiresAt).toISOString(),
    metadata: instance.metadata,
  };
  if (reachability?.isDown(instance)) json.down = true;
  return json;
}

/**
 * Every instance, grouped by service name: the body of `/catalog` and the events' snapshot. With
 * the down marks, so a watcher that (re)connects after a `down` event still sees it.
 */
export function catalogJson(all: ReadonlyMap<string, readonly Instance[]>, reachability?: Reachability): { services: Record<string, InstanceJson[]> } {
  const services: Record<string, InstanceJson[]> = {};
  for (const [name, instances] of all) services[name] = instances.map((instance) => instanceJson(instance, reachability));
  return { services };
}

export interface ServicesBody {
  text: string;
  bytes: Uint8Array<ArrayBuffer>;
  /** A strong validator of these bytes, for `If-None-Match`. */
  etag: string;
}

/**
 * The body of GET /services, as text and as bytes. The registry serialises the catalog once per
 * change; the bytes are kept too (one copy per registry, shared by every route that answers it),
 * since encoding a large catalog on every request costs more than the request. The ETag is a hash
 * of the bytes rather than a change counter: registrars sharing one etcd cluster count changes
 * each their own way, and a poller behind a load balancer must not get a 304 for another
 * registrar's catalog.
 */
export function servicesBody(registry: { servicesJson(): string }): ServicesBody {
  const text = registry.servicesJson();
  let cached = servicesBodies.get(registry);
  if (cached?.text !== text) {
    const bytes = new TextEncoder().encode(text);
    cached = { text, bytes, etag: `"${createHash('sha1').update(bytes).digest('base64url')}"` };
    servicesBodies.set(registry, cached);
  }
  return cached;
}

const servicesBodies = new WeakMap<object, ServicesBody>();

/** Whether an `If-None-Match` header names this ETag (or `*`); weak tags compare too, as on a GET. */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  for (const candidate of ifNoneMatch.split(',')) {
    const tag = candidate.trim();
    if (tag === '*' || tag === etag || (tag.startsWith('W/') && tag.slice(2) === etag)) return true;
  }
  return false;
}
