import type { Clock, Instance, RegistryEvent, RegistryListener } from './types.js';

interface Entry {
  name: string;
  url: string;
  registeredAt: number;
  lastHeartbeat: number;
  expiresAt: number;
  metadata: Record<string, unknown>;
  bucket: number;
}

const BUCKET_MS = 1000;
const bucketOf = (time: number) => Math.floor(time / BUCKET_MS);

function snapshot(entry: Entry): Instance {
  return {
    name: entry.name,
    url: entry.url,
    registeredAt: entry.registeredAt,
    lastHeartbeat: entry.lastHeartbeat,
    expiresAt: entry.expiresAt,
    metadata: entry.metadata,
  };
}

const NO_METADATA: Readonly<Record<string, unknown>> = Object.freeze({});

/** Most instances carry no metadata: they all share one empty object. */
const copyMetadata = (metadata: Readonly<Record<string, unknown>>) =>
  Object.keys(metadata).length === 0 ? (NO_METADATA as Record<string, unknown>) : { ...metadata };

/**
 * A name's instances. Most names have one, and a Map per name costs far more memory than the
 * instance itself at 100 000 names, so a lone instance is stored as is.
 */
type Instances = Entry | Map<string, Entry>;

const entriesOf = (instances: Instances): Iterable<Entry> => (instances instanceof Map ? instances.values() : [instances]);
/** The instance registered last (of equals, the one put last): what GET /services shows. */
function newestOf(instances: Instances): Entry {
  if (!(instances instanceof Map)) return instances;
  let newest: Entry | undefined;
  for (const entry of instances.values()) if (!newest || entry.registeredAt >= newest.registeredAt) newest = entry;
  return newest!;
}

function sameMetadata(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The in-memory catalog every store serves reads from. Expiry uses one-second buckets so that a
 * heartbeat is O(1) and an eviction pass touches only what is due, not the whole registry.
 */
export class Catalog {
  readonly #byName = new Map<string, Instances>();
  readonly #buckets = new Map<number, Set<Entry>>();
  readonly #listeners = new Set<RegistryListener>();
  readonly #clock: Clock;
  #sweptBucket: number;
  /** Before this time nothing can be due, so a sweep is a single comparison. */
  #nextDue = Number.NEGATIVE_INFINITY;
  #size = 0;
  #servicesJson: string | undefined;
  #sweeping = false;

  constructor(clock: Clock) {
    this.#clock = clock;
    this.#sweptBucket = bucketOf(clock.now()) - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** How many services and instances are live, without copying the catalog. */
  counts(): { services: number; instances: number } {
    this.sweep();
    return { services: this.#byName.size, instances: this.#size };
  }

  /** Adds or replaces an instance as given; emits `registered` or `updated` (metadata change). */
  put(instance: Instance): { instance: Instance; created: boolean } {
    this.sweep();
    const existing = this.#find(instance.name, instance.url);
    if (existing) {
      const metadataChanged = !sameMetadata(existing.metadata, instance.metadata as Record<string, unknown>);
      // Registered again, it may now be the newest of its name.
      if (existing.registeredAt !== instance.registeredAt) this.#servicesJson = undefined;
      existing.registeredAt = instance.registeredAt;
      existing.metadata = copyMetadata(instance.metadata);
      this.#setExpiry(existing, instance.lastHeartbeat, instance.expiresAt);
      const current = snapshot(existing);
      if (metadataChanged) this.#emit({ type: 'updated', instance: current });
      return { instance: current, created: false };
    }
    const entry: Entry = { ...instance, metadata: copyMetadata(instance.metadata), bucket: Number.NaN };
    const instances = this.#byName.get(entry.name);
    // The newest instance is the one /services shows: it changes with every new instance.
    this.#servicesJson = undefined;
    if (!instances) {
      this.#byName.set(entry.name, entry);
    } else if (instances instanceof Map) {
      instances.set(entry.url, entry);
    } else {
      this.#byName.set(entry.name, new Map([[instances.url, instances], [entry.url, entry]]));
    }
    this.#size += 1;
    this.#setExpiry(entry, entry.lastHeartbeat, entry.expiresAt);
    const current = snapshot(entry);
    this.#emit({ type: 'registered', instance: current });
    return { instance: current, created: true };
  }

  /** Moves an instance's expiry; returns undefined when it is not (or no longer) here. */
  renew(name: string, url: string, lastHeartbeat: number, expiresAt: number): Instance | undefined {
    this.sweep();
    const entry = this.#find(name, url);
    if (!entry) return undefined;
    this.#setExpiry(entry, lastHeartbeat, expiresAt);
    return snapshot(entry);
  }

  get(name: string, url: string): Instance | undefined {
    this.sweep();
    const entry = this.#find(name, url);
    return entry && snapshot(entry);
  }

  remove(name: string, url: string, reason: 'deregistered' | 'evicted'): Instance | undefined {
    const entry = this.#find(name, url);
    if (!entry) return undefined;
    this.#delete(entry);
    const removed = snapshot(entry);
    this.#emit({ type: reason, instance: removed });
    return removed;
  }

  instances(name: string): Instance[] {
    this.sweep();
    const instances = this.#byName.get(name);
    if (!instances) return [];
    // Every forward asks this: a lone instance skips the iterator protocol.
    return instances instanceof Map ? Array.from(instances.values(), snapshot) : [snapshot(instances)];
  }

  all(): Map<string, Instance[]> {
    this.sweep();
    const result = new Map<string, Instance[]>();
    for (const [name, instances] of this.#byName) result.set(name, Array.from(entriesOf(instances), snapshot));
    return result;
  }

  /**
   * `{"services": {name: url}}` with the newest live instance of each name, cached until a change.
   * The newest, as the seed's one URL per name was the last registered: a service that moved
   * and registered again is shown where it is now, not where it was until that expires.
   */
  servicesJson(): string {
    this.sweep();
    if (this.#servicesJson === undefined) {
      const services: Record<string, string> = {};
      for (const [name, instances] of this.#byName) services[name] = newestOf(instances).url;
      this.#servicesJson = JSON.stringify({ services });
    }
    return this.#servicesJson;
  }

  /**
   * Evicts every instance whose expiry has passed. Cheap when nothing is due: it only looks at the
   * buckets between the last pass and now. Reads call it too, so expiry is exact to the
   * millisecond even between timer ticks.
   */
  sweep(): void {
    const now = this.#clock.now();
    // A listener told of an eviction may read the catalog (the metrics do): that read must not
    // start another pass inside this one, one level deeper per instance evicted, until a mass
    // expiry of a few hundred overflowed the stack. It sees the catalog as this pass has left it.
    if (now < this.#nextDue || this.#sweeping) return;
    this.#sweeping = true;
    try {
      this.#evictDue(now);
    } finally {
      this.#sweeping = false;
    }
  }

  #evictDue(now: number): void {
    const nowBucket = bucketOf(now);
    const due =
      nowBucket - this.#sweptBucket > this.#buckets.size
        ? [...this.#buckets.keys()].filter((b) => b <= nowBucket).sort((a, b) => a - b)
        : Array.from({ length: nowBucket - this.#sweptBucket + 1 }, (_, i) => this.#sweptBucket + i);
    for (const bucket of due) {
      const entries = this.#buckets.get(bucket);
      if (!entries) continue;
      for (const entry of entries) {
        if (entry.expiresAt <= now) this.remove(entry.name, entry.url, 'evicted');
      }
    }
    // The current bucket may still hold instances that expire later in this second.
    let nextDue = (nowBucket + 1) * BUCKET_MS;
    for (const entry of this.#buckets.get(nowBucket) ?? []) nextDue = Math.min(nextDue, entry.expiresAt);
    this.#sweptBucket = nowBucket;
    this.#nextDue = nextDue;
  }

  subscribe(listener: RegistryListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #setExpiry(entry: Entry, lastHeartbeat: number, expiresAt: number): void {
    entry.lastHeartbeat = lastHeartbeat;
    entry.expiresAt = expiresAt;
    const bucket = bucketOf(expiresAt);
    if (bucket === entry.bucket) return;
    this.#buckets.get(entry.bucket)?.delete(entry);
    if (this.#buckets.get(entry.bucket)?.size === 0) this.#buckets.delete(entry.bucket);
    let entries = this.#buckets.get(bucket);
    if (!entries) {
      entries = new Set();
      this.#buckets.set(bucket, entries);
    }
    entries.add(entry);
    entry.bucket = bucket;
    if (bucket < this.#sweptBucket) this.#sweptBucket = bucket;
    if (expiresAt < this.#nextDue) this.#nextDue = expiresAt;
  }

  #delete(entry: Entry): void {
    const instances = this.#byName.get(entry.name);
    if (instances === entry) this.#byName.delete(entry.name);
    else if (instances instanceof Map && instances.delete(entry.url)) {
      if (instances.size === 0) this.#byName.delete(entry.name);
    } else return;
    // Whichever instance goes: the next read rebuilds it, once however many went (rebuilding on
    // each deletion made a mass eviction of one name quadratic).
    this.#servicesJson = undefined;
    const entries = this.#buckets.get(entry.bucket);
    entries?.delete(entry);
    if (entries?.size === 0) this.#buckets.delete(entry.bucket);
    this.#size -= 1;
  }

  #find(name: string, url: string): Entry | undefined {
    const instances = this.#byName.get(name);
    if (instances instanceof Map) return instances.get(url);
    return instances?.url === url ? instances : undefined;
  }

  #emit(event: RegistryEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}
