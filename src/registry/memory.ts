import { Catalog } from './catalog.js';
import type { Store } from './store.js';
import type { Clock, Instance, RegistrationInput, RegistryListener, StoreHealth } from './types.js';

export interface MemoryStoreOptions {
  /** Seconds an instance lives after its last heartbeat. */
  ttlSeconds: number;
  clock?: Clock;
  /** How often the eviction timer runs; reads also evict, so this only bounds event latency. */
  sweepIntervalMs?: number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The embedded default store: the catalog lives in this process and dies with it. */
export class MemoryStore implements Store {
  readonly description: string = 'memory';
  protected readonly catalog: Catalog;
  protected readonly clock: Clock;
  readonly #ttlMs: number;
  readonly #sweepIntervalMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryStoreOptions) {
    this.clock = options.clock ?? systemClock;
    this.catalog = new Catalog(this.clock);
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 250;
  }

  async open(): Promise<void> {
    this.#timer = setInterval(() => this.catalog.sweep(), this.#sweepIntervalMs);
    this.#timer.unref();
  }

  async register(input: RegistrationInput): Promise<{ instance: Instance; created: boolean }> {
    const now = this.clock.now();
    const existing = this.catalog.get(input.name, input.url);
    return this.catalog.put({
      name: input.name,
      url: input.url,
      // The last registration, as Eureka and the seed count it: an instance that registers again
      // (restarted, or moved back) is the one GET /services shows.
      registeredAt: now,
      lastHeartbeat: now,
      expiresAt: now + this.#ttlMs,
      metadata: input.metadata ?? existing?.metadata ?? {},
    });
  }

  async heartbeat(name: string, url?: string): Promise<Instance[]> {
    const now = this.clock.now();
    const urls = url === undefined ? this.catalog.instances(name).map((i) => i.url) : [url];
    const renewed: Instance[] = [];
    for (const target of urls) {
      const instance = this.catalog.renew(name, target, now, now + this.#ttlMs);
      if (instance) renewed.push(instance);
    }
    return renewed;
  }

  async deregister(name: string, url?: string): Promise<Instance[]> {
    const urls = url === undefined ? this.catalog.instances(name).map((i) => i.url) : [url];
    const removed: Instance[] = [];
    for (const target of urls) {
      const instance = this.catalog.remove(name, target, 'deregistered');
      if (instance) removed.push(instance);
    }
    return removed;
  }

  instances(name: string): readonly Instance[] {
    return this.catalog.instances(name);
  }

  all(): ReadonlyMap<string, readonly Instance[]> {
    return this.catalog.all();
  }

  counts() {
    return this.catalog.counts();
  }

  servicesJson(): string {
    return this.catalog.servicesJson();
  }

  subscribe(listener: RegistryListener): () => void {
    return this.catalog.subscribe(listener);
  }

  health(): StoreHealth {
    return { status: 'ok', store: this.description };
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
  }
}
