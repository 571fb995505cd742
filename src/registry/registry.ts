import type { Store } from './store.js';
import type { Clock, Instance, RegistrationInput, RegistryEvent, RegistryListener, StoreHealth } from './types.js';

export interface RegistryOptions {
  /**
   * How long an instance a forward could not reach is passed over, before forwards try it again
   * in its turn: without a second chance, an instance that came back would never get a request
   * while others answer. A retry that fails costs a refused connection and goes to the next.
   */
  retryDownAfterMs?: number;
  clock?: Clock;
}

const RETRY_DOWN_AFTER_MS = 5_000;

export type HeartbeatOutcome = 'renewed' | 'reregistered' | 'unknown';

/**
 * The registry's rules on top of a store: heartbeats that heal a lost registration, and picking
 * an instance for a forward. Least-in-flight, ties broken round-robin: LLM answers vary from
 * milliseconds to minutes, so counting requests (round-robin alone) would pile new questions
 * onto an instance that is still busy with a long one.
 */
export class Registry {
  readonly store: Store;
  readonly #inFlight = new Map<string, number>();
  readonly #turns = new Map<string, number>();
  /** Instances the last forward could not reach, and when that was. */
  readonly #down = new Map<string, number>();
  readonly #listeners = new Set<RegistryListener>();
  /** Counts changes to the down marks, for what is built from them. */
  #downChanges = 0;
  #servicesJson: { fromStore: string; downChanges: number; text: string } | undefined;
  readonly #retryDownAfterMs: number;
  readonly #clock: Clock;
  #changes = 0;

  constructor(store: Store, options: RegistryOptions = {}) {
    this.store = store;
    this.#retryDownAfterMs = options.retryDownAfterMs ?? RETRY_DOWN_AFTER_MS;
    this.#clock = options.clock ?? { now: () => Date.now() };
    store.subscribe((event) => {
      if ((event.type === 'deregistered' || event.type === 'evicted') && this.#down.delete(key(event.instance))) this.#downChanges += 1;
      this.#emit(event);
    });
  }

  /** A registration is an instance saying it is (back) up: it is no longer passed over. */
  async register(input: RegistrationInput) {
    const result = await this.store.register(input);
    this.reportReachable(result.instance, true);
    return result;
  }

  /**
   * Renews `name` (one instance when `url` is given). A heartbeat that names an instance the
   * registry does not know — it restarted, or evicted it — registers it again in the same call,
   * with the metadata the heartbeat carries (a registrar that restarted has none of its own).
   */
  async heartbeat(name: string, url?: string, metadata?: Record<string, unknown>): Promise<HeartbeatOutcome> {
    const renewed = await this.store.heartbeat(name, url);
    if (renewed.length > 0) return 'renewed';
    if (url === undefined) return 'unknown';
    await this.register({ name, url, metadata });
    return 'reregistered';
  }

  deregister(name: string, url?: string): Promise<Instance[]> {
    return this.store.deregister(name, url);
  }

  instances(name: string): readonly Instance[] {
    return this.store.instances(name);
  }

  all(): ReadonlyMap<string, readonly Instance[]> {
    return this.store.all();
  }

  /**
   * A registered name that differs from `name` only in case: names are case-sensitive (as the
   * seed's were), and `Web` for `web` is nearly always a slip worth naming in a 404.
   */
  sameNameButCase(name: string): string | undefined {
    const lower = name.toLowerCase();
    for (const registered of this.store.all().keys()) if (registered !== name && registered.toLowerCase() === lower) return registered;
    return undefined;
  }

  counts(): { services: number; instances: number } {
    return this.store.counts();
  }

  /**
   * The seed's `{"services": {name: url}}`: each name's newest instance, unless a forward found it
   * down while an older one is not: a client that calls the URL itself should get one that answers.
   * Built again only when the catalog or the down marks change.
   */
  servicesJson(): string {
    const fromStore = this.store.servicesJson();
    if (this.#down.size === 0) return fromStore;
    const cached = this.#servicesJson;
    if (cached?.fromStore === fromStore && cached.downChanges === this.#downChanges) return cached.text;
    const services = (JSON.parse(fromStore) as { services: Record<string, string> }).services;
    for (const [name, url] of Object.entries(services)) {
      if (!this.#down.has(key({ name, url }))) continue;
      const reachable = this.store.instances(name).filter((instance) => !this.#down.has(key(instance)));
      const newest = reachable.reduce<Instance | undefined>((best, instance) => (!best || instance.registeredAt >= best.registeredAt ? instance : best), undefined);
      if (newest) services[name] = newest.url;
    }
    const text = JSON.stringify({ services });
    this.#servicesJson = { fromStore, downChanges: this.#downChanges, text };
    return text;
  }

  /** Changes to the catalog, plus `down`/`up` as forwards find instances unreachable or back. */
  subscribe(listener: RegistryListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Whether the last forward that tried this instance could not reach it (and none has since). */
  isDown(instance: Instance): boolean {
    return this.#down.size > 0 && this.#down.has(key(instance));
  }

  /** What a forward learnt about an instance: only a change is news. */
  reportReachable(instance: Instance, reachable: boolean): void {
    const k = key(instance);
    const wasDown = this.#down.has(k);
    // A forward under way when its instance expired or left: it is no longer there to be down,
    // and a "down" after its "evicted" put it back in every watcher's view as a ghost.
    if (!reachable && !wasDown && !this.store.instances(instance.name).some((each) => each.url === instance.url)) return;
    // Failing again restarts the wait before the next retry; only a change is news.
    if (!reachable) this.#down.set(k, this.#clock.now());
    else if (wasDown) this.#down.delete(k);
    if (reachable === wasDown) {
      this.#downChanges += 1;
      this.#emit({ type: reachable ? 'up' : 'down', instance });
    }
  }

  /** Down, and not yet due for another try. */
  #passedOver(k: string): boolean {
    const since = this.#down.get(k);
    return since !== undefined && this.#clock.now() - since < this.#retryDownAfterMs;
  }

  /** Counts every event (changes, and down/up): what was built from the registry is current while it holds. */
  get changes(): number {
    return this.#changes;
  }

  #emit(event: RegistryEvent): void {
    this.#changes += 1;
    for (const listener of this.#listeners) listener(event);
  }

  health(): StoreHealth {
    return this.store.health();
  }

  /** Live instances of `name` in the order a forward should try them. */
  candidates(name: string): readonly Instance[] {
    const instances = this.store.instances(name);
    if (instances.length === 0) this.#turns.delete(name);
    if (instances.length <= 1) return instances;
    // One turn per name: a counter shared by all names would hand every other turn of this name
    // to the same instance when forwards to two names interleave.
    const turn = this.#turns.get(name) ?? 0;
    this.#turns.set(name, turn + 1);
    // Rotate within each group of equally busy instances, not over all of them: rotating first and
    // sorting after gives the idle instance that follows a busy one the busy one's turns too.
    const byLoad = new Map<number, Instance[]>();
    for (const instance of instances) {
      // An instance a forward just failed to reach goes after every reachable one, for a while.
      const load = (this.#down.size > 0 && this.#passedOver(key(instance)) ? 1e9 : 0) + this.inFlight(instance);
      const group = byLoad.get(load);
      if (group) group.push(instance);
      else byLoad.set(load, [instance]);
    }
    return [...byLoad.keys()]
      .sort((a, b) => a - b)
      .flatMap((load) => {
        const group = byLoad.get(load)!;
        const offset = turn % group.length;
        return [...group.slice(offset), ...group.slice(0, offset)];
      });
  }

  inFlight(instance: Instance): number {
    return this.#inFlight.get(key(instance)) ?? 0;
  }

  /** Counts a request against an instance until the returned function is called. */
  begin(instance: Instance): () => void {
    const k = key(instance);
    this.#inFlight.set(k, (this.#inFlight.get(k) ?? 0) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = (this.#inFlight.get(k) ?? 1) - 1;
      if (left === 0) this.#inFlight.delete(k);
      else this.#inFlight.set(k, left);
    };
  }

  /** Sum of requests in flight to every instance: what a shutdown waits for. */
  get totalInFlight(): number {
    let total = 0;
    for (const n of this.#inFlight.values()) total += n;
    return total;
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

const key = (instance: Pick<Instance, 'name' | 'url'>) => `${instance.name}\u0000${instance.url}`;
