import { z } from 'zod';
import type { HostPolicy } from '../allow-hosts.js';
import type { Registry } from '../registry/registry.js';
import { ApiError } from './errors.js';
import type { RegistrarMetrics } from './metrics.js';
import { httpUrl, optional, serviceName } from './validation.js';

/** The body of POST /heartbeat (and of /deregister, which names instances the same way). */
export const heartbeatBody = z.object({ service_name: serviceName, service_url: optional(httpUrl) });

export type HeartbeatBody = z.infer<typeof heartbeatBody>;

/** Refuses a service URL whose host `--allow-hosts` leaves out. */
export function checkServiceHost(policy: HostPolicy | undefined, url: string): void {
  const hostname = new URL(url).hostname;
  if (policy && !policy.allows(hostname)) {
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
export async function acceptHeartbeat(deps: HeartbeatDeps, body: HeartbeatBody): Promise<{ message: string }> {
  if (body.service_url) checkServiceHost(deps.hostPolicy, body.service_url);
  const outcome = await deps.registry.heartbeat(body.service_name, body.service_url);
  deps.metrics?.heartbeat(outcome);
  if (outcome === 'unknown') {
    throw new ApiError(
      404,
      `Service ${body.service_name} is not registered: register it again (POST /register), or send service_url with the heartbeat`,
    );
  }
  return { message: `Heartbeat received from ${body.service_name}` };
}
