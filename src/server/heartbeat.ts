import { z } from 'zod';
import type { HostPolicy } from '../allow-hosts.js';
import type { Registry } from '../registry/registry.js';
import { ApiError } from './errors.js';
import type { RegistrarMetrics } from './metrics.js';
import { httpUrl, metadata, optional, serviceName } from './validation.js';

/** A name, or one instance of it: the body of POST /deregister. */
export const instanceRef = z.object({ service_name: serviceName, service_url: optional(httpUrl) });

/**
 * The body of POST /heartbeat: the instance, and the metadata to register it with should the
 * registrar have lost it (a restart of a memory store), which a plain heartbeat cannot restore.
 */
export const heartbeatBody = instanceRef.extend({ metadata: optional(metadata) });

export type HeartbeatBody = z.infer<typeof heartbeatBody>;

/** Set on a heartbeat's answer when it registered the instance again: a sender may re-read the TTL. */
export const REREGISTERED_HEADER = 'x-svcmesh-registered';

/** Refuses a service URL whose host `--allow-hosts` leaves out. */
export function checkServiceHost(policy: HostPolicy | undefined, url: string): void {
  // Without --allow-hosts there is nothing to check: no URL parse on every heartbeat.
  if (!policy) return;
  const hostname = new URL(url).hostname;
  if (!policy.allows(hostname)) {
    throw new ApiError(403, `service_url host ${hostname} is not allowed here (--allow-hosts ${policy.description})`);
  }
}

export interface HeartbeatDeps {
  registry: Registry;
  hostPolicy?: HostPolicy;
  metrics?: RegistrarMetrics;
}

/**
 * Renews what a heartbeat names and says so; both the Hono route and the registrar's fast path
 * answer with it. A name the registry does not know, sent without its URL, is a 404.
 */
export async function acceptHeartbeat(deps: HeartbeatDeps, body: HeartbeatBody): Promise<{ message: string; reregistered: boolean }> {
  if (body.service_url) checkServiceHost(deps.hostPolicy, body.service_url);
  const outcome = await deps.registry.heartbeat(body.service_name, body.service_url, body.metadata);
  deps.metrics?.heartbeat(outcome);
  if (outcome === 'unknown') {
    throw new ApiError(
      404,
      // Never registered, or evicted since: the registrar cannot tell, so not "again".
      `Service ${body.service_name} is not registered: register it (POST /register), or send service_url with the heartbeat, which registers it`,
    );
  }
  return { message: `Heartbeat received from ${body.service_name}`, reregistered: outcome === 'reregistered' };
}
