/**
 * The registry core with an injected clock: expiry to the millisecond, heartbeats, events,
 * the seed's `/services` body and the order a forward tries instances in. Nothing sleeps for a TTL.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Catalog } from '../src/registry/catalog.js';
import { MemoryStore } from '../src/registry/memory.js';
import { Registry } from '../src/registry/registry.js';
import { createRegistrarMetrics } from '../src/server/metrics.js';
import type { Instance, RegistryEvent } from '../src/registry/types.js';
import { waitFor } from './support/fake-ollama.js';

const T0 = 1_700_000_000_000;
const TTL_S = 30;
const TTL = TTL_S * 1000;

/** A clock the test moves by hand. */
function manualClock(start = T0) {
  let t = start;
  return {
    now: () => t,
    set: (time: number) => {
      t = time;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}

const open: Array<{ close(): Promise<void> }> = [];

function memory(clock = manualClock(), ttlSeconds = TTL_S) {
  const store = new MemoryStore({ ttlSeconds, clock });
  open.push(store);
  return { clock, store, registry: new Registry(store, { clock }) };
}

function recordEvents(subscribe: (listener: (event: RegistryEvent) => void) => () => void) {
  const events: Array<[RegistryEvent['type'], string, string]> = [];
  subscribe((event) => events.push([event.type, event.instance.name, event.instance.url]));
  return events;
}

const urls = (instances: readonly Instance[]) => instances.map((i) => i.url);

afterEach(async () => {
  await Promise.all(open.splice(0).map((store) => store.close()));
});

describe('registration and expiry', () => {
  it('lists a registered instance with its times and metadata', async () => {
    const { store } = memory();
    const { instance, created } = await store.register({ name: 'ollama_service', url: 'http://127.0.0.1:5000', metadata: { model: 'llama3.2' } });

    expect(created).toBe(true);
    expect(instance).toEqual({
      name: 'ollama_service',
      url: 'http://127.0.0.1:5000',
      registeredAt: T0,
      lastHeartbeat: T0,
      expiresAt: T0 + TTL,
      metadata: { model: 'llama3.2' },
    });
    expect(store.instances('ollama_service')).toEqual([instance]);
    expect([...store.all().keys()]).toEqual(['ollama_service']);
    expect(store.instances('nobody')).toEqual([]);
  });

  it('expires an instance exactly TTL after its last heartbeat', async () => {
    const { clock, store } = memory();
    await store.register({ name: 'a', url: 'http://a:1' });

    clock.set(T0 + TTL - 1);
    expect(urls(store.instances('a'))).toEqual(['http://a:1']);
    clock.set(T0 + TTL);
    expect(store.instances('a')).toEqual([]);
    expect(store.all().size).toBe(0);
  });

  it('moves the expiry with each heartbeat', async () => {
    const { clock, store } = memory();
    await store.register({ name: 'a', url: 'http://a:1' });

    clock.set(T0 + 20_000);
    const [renewed] = await store.heartbeat('a');
    expect(renewed).toMatchObject({ registeredAt: T0, lastHeartbeat: T0 + 20_000, expiresAt: T0 + 20_000 + TTL });

    clock.set(T0 + TTL); // the old expiry has passed
    expect(urls(store.instances('a'))).toEqual(['http://a:1']);
    clock.set(T0 + 20_000 + TTL - 1);
    expect(urls(store.instances('a'))).toEqual(['http://a:1']);
    clock.set(T0 + 20_000 + TTL);
    expect(store.instances('a')).toEqual([]);
  });

  it('renews only the named instance when the heartbeat carries a url', async () => {
    const { clock, store } = memory();
    await store.register({ name: 'a', url: 'http://a:1' });
    await store.register({ name: 'a', url: 'http://a:2' });

    clock.set(T0 + 10_000);
    expect(urls(await store.heartbeat('a', 'http://a:2'))).toEqual(['http://a:2']);

    clock.set(T0 + TTL);
    expect(urls(store.instances('a'))).toEqual(['http://a:2']);
  });

  it('renews every instance of the name when the heartbeat has no url', async () => {
    const { clock, store } = memory();
    await store.register({ name: 'a', url: 'http://a:1' });
    await store.register({ name: 'a', url: 'http://a:2' });
    await store.register({ name: 'b', url: 'http://b:1' });

    clock.set(T0 + 10_000);
    expect(urls(await store.heartbeat('a'))).toEqual(['http://a:1', 'http://a:2']);

    clock.set(T0 + TTL);
    expect(urls(store.instances('a'))).toEqual(['http://a:1', 'http://a:2']);
    expect(store.instances('b')).toEqual([]);
    expect(await store.heartbeat('b')).toEqual([]);
  });

  it('keeps the metadata when an instance registers again, and counts it as registered last (as the seed and Eureka do)', async () => {
    const { clock, store } = memory();
    await store.register({ name: 'a', url: 'http://a:1', metadata: { zone: 'x' } });
    clock.set(T0 + 1_000);
    await store.register({ name: 'a', url: 'http://a:2' });
    expect(JSON.parse(store.servicesJson()).services.a).toBe('http://a:2');
    clock.set(T0 + 5_000);
    const { instance, created } = await store.register({ name: 'a', url: 'http://a:1' });
    expect(created).toBe(false);
    expect(instance).toMatchObject({ registeredAt: T0 + 5_000, lastHeartbeat: T0 + 5_000, expiresAt: T0 + 5_000 + TTL, metadata: { zone: 'x' } });
    expect(store.instances('a')).toHaveLength(2);
    // It moved back to a:1 and registered there again: a:1 is where the name is now.
    expect(JSON.parse(store.servicesJson()).services.a).toBe('http://a:1');
  });
});

describe('a mass expiry', () => {
  it('evicts thousands of instances of one name at once, with listeners that read the catalog as each goes (as the metrics do)', async () => {
    const { clock, registry } = memory();
    const metrics = createRegistrarMetrics(registry);
    const count = 5_000;
    for (let i = 0; i < count; i++) await registry.register({ name: 'web', url: `http://127.0.0.1:${20_000 + i}` });
    // A forward to the name is what made the metrics look the name up on every eviction.
    metrics.forwards.started('web');
    metrics.forwards.answered('web', 502, 0.01);
    metrics.forwards.finished('web');
    const seenDuring: number[] = [];
    registry.subscribe((event) => {
      if (event.type === 'evicted') seenDuring.push(registry.instances('web').length);
    });
    clock.set(T0 + TTL);
    expect(registry.instances('web')).toEqual([]);
    expect(seenDuring).toHaveLength(count);
    // Each listener saw the catalog as the pass had left it: one fewer each time.
    expect(seenDuring.at(0)).toBe(count - 1);
    expect(seenDuring.at(-1)).toBe(0);
    expect((await metrics.render()).body).toMatch(/^svcmesh_evictions_total 5000$/m);
    expect((await metrics.render()).body).not.toMatch(/svcmesh_forwards_total\{target="web"/);
  });
});

describe('Registry heartbeats that heal a lost registration', () => {
  it('renews a known instance', async () => {
    const { registry } = memory();
    await registry.register({ name: 'a', url: 'http://a:1' });
    expect(await registry.heartbeat('a', 'http://a:1')).toBe('renewed');
    expect(await registry.heartbeat('a')).toBe('renewed');
  });

  it('registers again an instance it does not know when the heartbeat names its url', async () => {
    const { clock, registry } = memory();
    expect(await registry.heartbeat('a', 'http://a:1')).toBe('reregistered');
    expect(registry.instances('a')).toMatchObject([{ url: 'http://a:1', registeredAt: T0, expiresAt: T0 + TTL }]);

    // Evicted, then the heartbeat comes back: registered again with a fresh TTL.
    clock.set(T0 + TTL);
    expect(registry.instances('a')).toEqual([]);
    expect(await registry.heartbeat('a', 'http://a:1')).toBe('reregistered');
    expect(registry.instances('a')).toMatchObject([{ url: 'http://a:1', registeredAt: T0 + TTL, expiresAt: T0 + 2 * TTL }]);

    // Another instance of a known name is added next to the first.
    expect(await registry.heartbeat('a', 'http://a:2')).toBe('reregistered');
    expect(urls(registry.instances('a'))).toEqual(['http://a:1', 'http://a:2']);
  });

  it("answers 'unknown' for a name-only heartbeat of a service it does not know, and registers nothing", async () => {
    const { registry } = memory();
    expect(await registry.heartbeat('ghost')).toBe('unknown');
    expect(registry.all().size).toBe(0);
    expect(registry.servicesJson()).toBe('{"services":{}}');
  });
});

describe('deregistration', () => {
  it('removes one instance by url, or every instance of the name', async () => {
    const { registry } = memory();
    await registry.register({ name: 'a', url: 'http://a:1' });
    await registry.register({ name: 'a', url: 'http://a:2' });
    await registry.register({ name: 'a', url: 'http://a:3' });
    await registry.register({ name: 'b', url: 'http://b:1' });

    expect(urls(await registry.deregister('a', 'http://a:2'))).toEqual(['http://a:2']);
    expect(urls(registry.instances('a'))).toEqual(['http://a:1', 'http://a:3']);

    expect(urls(await registry.deregister('a'))).toEqual(['http://a:1', 'http://a:3']);
    expect(registry.instances('a')).toEqual([]);
    expect(urls(registry.instances('b'))).toEqual(['http://b:1']);

    expect(await registry.deregister('a')).toEqual([]);
    expect(await registry.deregister('b', 'http://b:9')).toEqual([]);
    expect(urls(registry.instances('b'))).toEqual(['http://b:1']);
  });
});

describe('events', () => {
  it('emits registered, updated on a metadata change, deregistered — and nothing for renewals', async () => {
    const { clock, store } = memory();
    const events = recordEvents((l) => store.subscribe(l));

    await store.register({ name: 'a', url: 'http://a:1', metadata: { v: 1 } });
    await store.register({ name: 'a', url: 'http://a:2' });
    await store.register({ name: 'a', url: 'http://a:1', metadata: { v: 1 } }); // same metadata: a renewal
    clock.advance(1_000);
    await store.heartbeat('a');
    await store.heartbeat('a', 'http://a:2');
    await store.register({ name: 'a', url: 'http://a:1', metadata: { v: 2 } });
    await store.deregister('a');

    expect(events).toEqual([
      ['registered', 'a', 'http://a:1'],
      ['registered', 'a', 'http://a:2'],
      ['updated', 'a', 'http://a:1'],
      ['deregistered', 'a', 'http://a:1'],
      ['deregistered', 'a', 'http://a:2'],
    ]);
  });

  it('carries the new metadata on updated', async () => {
    const { store } = memory();
    const seen: RegistryEvent[] = [];
    store.subscribe((e) => seen.push(e));
    await store.register({ name: 'a', url: 'http://a:1', metadata: { v: 1 } });
    await store.register({ name: 'a', url: 'http://a:1', metadata: { v: 2 } });
    expect(seen.at(-1)).toMatchObject({ type: 'updated', instance: { metadata: { v: 2 } } });
  });

  it('emits evicted from catalog.sweep() with no read in between', () => {
    const clock = manualClock();
    const catalog = new Catalog(clock);
    const events = recordEvents((l) => catalog.subscribe(l));
    const instance = (url: string, heartbeat: number): Instance => ({
      name: 'a',
      url,
      registeredAt: T0,
      lastHeartbeat: heartbeat,
      expiresAt: heartbeat + TTL,
      metadata: {},
    });
    catalog.put(instance('http://a:1', T0));
    catalog.put(instance('http://a:2', T0 + 500));
    expect(catalog.renew('a', 'http://a:2', T0 + 700, T0 + 700 + TTL)).toMatchObject({ lastHeartbeat: T0 + 700 });
    expect(events).toEqual([
      ['registered', 'a', 'http://a:1'],
      ['registered', 'a', 'http://a:2'],
    ]);

    clock.set(T0 + TTL - 1);
    catalog.sweep();
    expect(events).toHaveLength(2);
    clock.set(T0 + TTL);
    catalog.sweep();
    expect(events.at(-1)).toEqual(['evicted', 'a', 'http://a:1']);
    clock.set(T0 + 700 + TTL - 1);
    catalog.sweep();
    expect(events).toHaveLength(3);
    clock.set(T0 + 700 + TTL);
    catalog.sweep();
    expect(events.at(-1)).toEqual(['evicted', 'a', 'http://a:2']);
    expect(catalog.size).toBe(0);
    expect(catalog.renew('a', 'http://a:2', clock.now(), clock.now() + TTL)).toBeUndefined();
  });

  it("emits evicted from the store's own timer, without any read", async () => {
    const clock = manualClock();
    const store = new MemoryStore({ ttlSeconds: TTL_S, clock, sweepIntervalMs: 5 });
    open.push(store);
    await store.open();
    const events = recordEvents((l) => store.subscribe(l));
    await store.register({ name: 'a', url: 'http://a:1' });

    clock.set(T0 + TTL);
    await waitFor(() => events.length === 2, 2_000, 'the eviction event');
    expect(events).toEqual([
      ['registered', 'a', 'http://a:1'],
      ['evicted', 'a', 'http://a:1'],
    ]);
  });

  it('stops calling a listener once it unsubscribes', async () => {
    const { store } = memory();
    const seen: RegistryEvent[] = [];
    const unsubscribe = store.subscribe((e) => seen.push(e));
    await store.register({ name: 'a', url: 'http://a:1' });
    unsubscribe();
    await store.register({ name: 'a', url: 'http://a:2' });
    expect(seen).toHaveLength(1);
  });
});

describe("servicesJson(): the seed's GET /services body", () => {
  it('maps each name to its newest live instance (as the seed kept the last registration) and follows every change', async () => {
    const { clock, store } = memory();
    expect(store.servicesJson()).toBe('{"services":{}}');

    await store.register({ name: 'ollama_service', url: 'http://127.0.0.1:5000' });
    expect(store.servicesJson()).toBe('{"services":{"ollama_service":"http://127.0.0.1:5000"}}');

    clock.set(T0 + 10_000);
    await store.register({ name: 'ollama_service', url: 'http://127.0.0.1:5002' });
    await store.register({ name: 'other', url: 'http://127.0.0.1:6000' });
    // A service that moved and registered again is shown where it is now.
    expect(JSON.parse(store.servicesJson())).toEqual({
      services: { ollama_service: 'http://127.0.0.1:5002', other: 'http://127.0.0.1:6000' },
    });
    // Its old address renewed (a heartbeat) does not take the name back.
    await store.heartbeat('ollama_service', 'http://127.0.0.1:5000');
    expect(JSON.parse(store.servicesJson()).services.ollama_service).toBe('http://127.0.0.1:5002');

    // The newest goes away (evicted): the one before stands for the name.
    clock.set(T0 + 10_000 + TTL - 1);
    await store.heartbeat('ollama_service', 'http://127.0.0.1:5000');
    clock.set(T0 + 10_000 + TTL);
    expect(JSON.parse(store.servicesJson())).toEqual({ services: { ollama_service: 'http://127.0.0.1:5000' } });

    await store.deregister('ollama_service');
    expect(store.servicesJson()).toBe('{"services":{}}');
  });

  it('shows an older instance while a forward finds the newest down, and the newest again once it is back', async () => {
    const { clock, registry } = memory();
    await registry.register({ name: 'a', url: 'http://a:1' });
    clock.set(T0 + 1_000);
    await registry.register({ name: 'a', url: 'http://a:2' });
    await registry.register({ name: 'b', url: 'http://b:1' });
    const newest = registry.instances('a').find((i) => i.url === 'http://a:2')!;
    expect(registry.servicesJson()).toBe('{"services":{"a":"http://a:2","b":"http://b:1"}}');
    registry.reportReachable(newest, false);
    expect(registry.servicesJson()).toBe('{"services":{"a":"http://a:1","b":"http://b:1"}}');
    // Every instance down: the newest still stands for the name (nothing better to give).
    const lone = registry.instances('b')[0]!;
    registry.reportReachable(lone, false);
    expect(JSON.parse(registry.servicesJson()).services.b).toBe('http://b:1');
    registry.reportReachable(newest, true);
    expect(registry.servicesJson()).toBe('{"services":{"a":"http://a:2","b":"http://b:1"}}');
  });

  it('does not mark down an instance that expired or left while a forward to it was under way: no "down" after its "evicted"', async () => {
    const { clock, registry } = memory();
    await registry.register({ name: 'a', url: 'http://a:1' });
    clock.set(T0 + 1_000);
    await registry.register({ name: 'b', url: 'http://b:1' });
    const [expiring] = registry.instances('a');
    const [leaving] = registry.instances('b');
    const events = recordEvents((listener) => registry.subscribe(listener));
    clock.set(T0 + TTL);
    expect(registry.instances('a')).toEqual([]);
    await registry.deregister('b');
    registry.reportReachable(expiring!, false);
    registry.reportReachable(leaving!, false);
    expect(events).toEqual([
      ['evicted', 'a', 'http://a:1'],
      ['deregistered', 'b', 'http://b:1'],
    ]);
    expect(registry.isDown(expiring!)).toBe(false);
  });

  it('follows a deregistration of the newest instance, and a registration after it', async () => {
    const { store } = memory();
    await store.register({ name: 'a', url: 'http://a:1' });
    await store.register({ name: 'a', url: 'http://a:2' });
    expect(store.servicesJson()).toBe('{"services":{"a":"http://a:2"}}');
    await store.deregister('a', 'http://a:2');
    expect(store.servicesJson()).toBe('{"services":{"a":"http://a:1"}}');
    await store.register({ name: 'a', url: 'http://a:3' });
    expect(store.servicesJson()).toBe('{"services":{"a":"http://a:3"}}');
    // Registered again where it already is, an instance keeps its place.
    await store.register({ name: 'a', url: 'http://a:1' });
    expect(store.servicesJson()).toBe('{"services":{"a":"http://a:3"}}');
  });
});

describe('candidates(): the order a forward tries instances in', () => {
  async function threeInstances() {
    const setup = memory();
    for (const port of [1, 2, 3]) await setup.registry.register({ name: 'a', url: `http://a:${port}` });
    return setup;
  }

  function firstPicks(registry: Registry, name: string, calls: number): Record<string, number> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < calls; i += 1) {
      const first = registry.candidates(name)[0]!.url;
      counts[first] = (counts[first] ?? 0) + 1;
    }
    return counts;
  }

  it('returns every live instance, and none for an unknown name', async () => {
    const { registry } = await threeInstances();
    expect(urls(registry.candidates('a')).sort()).toEqual(['http://a:1', 'http://a:2', 'http://a:3']);
    expect(registry.candidates('nobody')).toEqual([]);
  });

  it('spreads first picks evenly over equally busy instances', async () => {
    const { registry } = await threeInstances();
    expect(firstPicks(registry, 'a', 300)).toEqual({ 'http://a:1': 100, 'http://a:2': 100, 'http://a:3': 100 });
  });

  it('puts the least busy first and rotates among the equally idle ones', async () => {
    const { registry } = await threeInstances();
    const busy = registry.instances('a').find((i) => i.url === 'http://a:1')!;
    const end = registry.begin(busy);

    for (let i = 0; i < 10; i += 1) expect(registry.candidates('a').at(-1)!.url).toBe('http://a:1');
    expect(firstPicks(registry, 'a', 10)).toEqual({ 'http://a:2': 5, 'http://a:3': 5 });

    end();
    expect(firstPicks(registry, 'a', 30)).toEqual({ 'http://a:1': 10, 'http://a:2': 10, 'http://a:3': 10 });
  });

  it('orders by requests in flight', async () => {
    const { registry } = await threeInstances();
    const [i1, i2, i3] = registry.instances('a') as [Instance, Instance, Instance];
    registry.begin(i1);
    registry.begin(i1);
    registry.begin(i2);
    expect(urls(registry.candidates('a'))).toEqual([i3.url, i2.url, i1.url]);
  });

  it('keeps each service round-robin when forwards to several services interleave', async () => {
    const { registry } = memory();
    for (const name of ['a', 'b']) {
      await registry.register({ name, url: `http://${name}:1` });
      await registry.register({ name, url: `http://${name}:2` });
    }
    const picks: Record<string, number> = {};
    for (let i = 0; i < 20; i += 1) {
      for (const name of ['a', 'b']) {
        const first = registry.candidates(name)[0]!.url;
        picks[first] = (picks[first] ?? 0) + 1;
      }
    }
    expect(picks).toEqual({ 'http://a:1': 10, 'http://a:2': 10, 'http://b:1': 10, 'http://b:2': 10 });
  });

  it('counts requests with begin() until the returned function is called, once', async () => {
    const { registry } = await threeInstances();
    const [i1, i2] = registry.instances('a') as [Instance, Instance];
    const endA = registry.begin(i1);
    const endB = registry.begin(i1);
    const endC = registry.begin(i2);
    expect(registry.inFlight(i1)).toBe(2);
    expect(registry.inFlight(i2)).toBe(1);
    expect(registry.totalInFlight).toBe(3);

    endA();
    endA(); // a second call is ignored
    expect(registry.inFlight(i1)).toBe(1);
    endB();
    endC();
    expect(registry.inFlight(i1)).toBe(0);
    expect(registry.totalInFlight).toBe(0);
  });

  it('never offers an expired instance', async () => {
    const { clock, registry } = memory();
    await registry.register({ name: 'a', url: 'http://a:1' });
    clock.set(T0 + 1_000);
    await registry.register({ name: 'a', url: 'http://a:2' });
    clock.set(T0 + TTL);
    for (let i = 0; i < 5; i += 1) expect(urls(registry.candidates('a'))).toEqual(['http://a:2']);
  });
});

/** Counts the elements any Set yields while `fn` runs: how much of the catalog a sweep touches. */
function countSetVisits(fn: () => void): number {
  const original = Set.prototype[Symbol.iterator];
  let visited = 0;
  Set.prototype[Symbol.iterator] = function (this: Set<unknown>) {
    const inner = original.call(this);
    return {
      next() {
        const result = inner.next();
        if (!result.done) visited += 1;
        return result;
      },
      [Symbol.iterator]() {
        return this;
      },
    } as SetIterator<unknown>;
  } as typeof original;
  try {
    fn();
  } finally {
    Set.prototype[Symbol.iterator] = original;
  }
  return visited;
}

describe('a large registry', () => {
  it('evicts only what is due, touching only that, among 100k instances', async () => {
    const clock = manualClock();
    const catalog = new Catalog(clock);
    const evicted: string[] = [];
    catalog.subscribe((e) => {
      if (e.type === 'evicted') evicted.push(e.instance.url);
    });
    const put = (url: string) =>
      catalog.put({ name: 'bulk', url, registeredAt: clock.now(), lastHeartbeat: clock.now(), expiresAt: clock.now() + TTL, metadata: {} });

    for (let i = 0; i < 10; i += 1) put(`http://early:${i}`);
    clock.set(T0 + 10_000);
    for (let i = 0; i < 100_000; i += 1) put(`http://bulk:${i}`);
    expect(catalog.size).toBe(100_010);

    // Nothing due: a sweep looks at (almost) nothing.
    clock.set(T0 + 15_500);
    expect(countSetVisits(() => catalog.sweep())).toBeLessThan(50);
    expect(evicted).toEqual([]);

    // The ten early ones are due: exactly they go, and the other 100k are not walked through.
    clock.set(T0 + TTL + 500);
    expect(countSetVisits(() => catalog.sweep())).toBeLessThan(100);
    expect(evicted).toHaveLength(10);
    expect(evicted.every((url) => url.startsWith('http://early:'))).toBe(true);
    expect(catalog.size).toBe(100_000);

    clock.set(T0 + 10_000 + TTL - 1);
    expect(countSetVisits(() => catalog.sweep())).toBeLessThan(50);
    expect(catalog.size).toBe(100_000);

    clock.set(T0 + 10_000 + TTL);
    catalog.sweep();
    expect(evicted).toHaveLength(100_010);
    expect(catalog.size).toBe(0);
    expect(catalog.servicesJson()).toBe('{"services":{}}');
  });
});
