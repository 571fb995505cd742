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
