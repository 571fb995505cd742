import { canonicalHttpUrl } from '../http-url.js';
import type { Instance } from './types.js';

/** True when a value read back from disk or etcd has every field of an Instance. */
export function isInstance(value: unknown): value is Instance {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.name === 'string' &&
    typeof v.url === 'string' &&
    typeof v.registeredAt === 'number' &&
    typeof v.lastHeartbeat === 'number' &&
    typeof v.expiresAt === 'number' &&
    typeof v.metadata === 'object' &&
    v.metadata !== null &&
    !Array.isArray(v.metadata)
  );
}

/**
 * Instances read back from a catalog saved before service URLs were kept in one spelling: each
 * under its canonical URL, and two spellings of one address merged into the one renewed last (and
 * registered first). Without this, a heartbeat, which is now put in the canonical spelling, would
 * not find the instance and would register a second one. A URL that does not parse stays as it is.
 */
export function inOneSpelling(instances: readonly Instance[]): Instance[] {
  const byAddress = new Map<string, Instance>();
  for (const instance of instances) {
    const url = canonicalHttpUrl(instance.url) ?? instance.url;
    const address = `${instance.name}\n${url}`;
    const read = url === instance.url ? instance : { ...instance, url };
    const seen = byAddress.get(address);
    if (!seen) {
      byAddress.set(address, read);
      continue;
    }
    const latest = seen.lastHeartbeat >= read.lastHeartbeat ? seen : read;
    byAddress.set(address, { ...latest, registeredAt: Math.min(seen.registeredAt, read.registeredAt) });
  }
  return [...byAddress.values()];
}
