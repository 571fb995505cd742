import type { Instance, RegistrationInput, RegistryListener, StoreHealth } from './types.js';

/**
 * Where the catalog lives. Writes may go over the network (etcd); reads never do: every store
 * keeps a local copy so that `/services` and `/forward` never wait on anything.
 */
export interface Store {
  /** A short description for logs and `/health`, e.g. `memory`, `file:/var/lib/svcmesh.json`. */
  readonly description: string;
  /** Loads whatever the store already holds; call once before serving. */
  open(): Promise<void>;
  /** Adds the instance, or refreshes it (heartbeat and metadata) when it exists. */
  register(input: RegistrationInput): Promise<{ instance: Instance; created: boolean }>;
  /**
   * Renews one instance (with `url`) or every instance of `name`. Returns the renewed instances:
   * empty when there was nothing to renew.
   */
  heartbeat(name: string, url?: string): Promise<Instance[]>;
  /** Removes one instance (with `url`) or every instance of `name`; returns what was removed. */
  deregister(name: string, url?: string): Promise<Instance[]>;
  /** Live instances of one name, oldest registration first. */
  instances(name: string): readonly Instance[];
  /** Every live instance, grouped by name in registration order. */
  all(): ReadonlyMap<string, readonly Instance[]>;
  /** How many services and instances are live. */
  counts(): { services: number; instances: number };
  /** The seed's `GET /services` body, serialised once per change. */
  servicesJson(): string;
  subscribe(listener: RegistryListener): () => void;
  health(): StoreHealth;
  close(): Promise<void>;
}

/** Thrown by a store whose backend cannot take a write right now (HTTP 503). */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}
