import type { Instance } from '../registry/types.js';

/** The wire shape of an instance: snake_case and ISO times, like the seed's API. */
export function instanceJson(instance: Instance) {
  return {
    url: instance.url,
    registered_at: new Date(instance.registeredAt).toISOString(),
    last_heartbeat: new Date(instance.lastHeartbeat).toISOString(),
    expires_at: new Date(instance.expiresAt).toISOString(),
    metadata: instance.metadata,
  };
}

export type InstanceJson = ReturnType<typeof instanceJson>;

/** Every instance, grouped by service name: the body of `/catalog` and the events' snapshot. */
export function catalogJson(all: ReadonlyMap<string, readonly Instance[]>): { services: Record<string, InstanceJson[]> } {
  const services: Record<string, InstanceJson[]> = {};
  for (const [name, instances] of all) services[name] = instances.map(instanceJson);
  return { services };
}
