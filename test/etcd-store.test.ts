import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeCause, EtcdStore } from '../src/registry/etcd.js';
import { StoreUnavailableError } from '../src/registry/store.js';
import type { RegistryEvent } from '../src/registry/types.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from './support/etcd-cluster.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 20 ms; fails with `what` after `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(20);
  }
  return Date.now() - start;
}

function record(store: EtcdStore): RegistryEvent[] {
  const events: RegistryEvent[] = [];
  store.subscribe((event) => events.push(event));
  return events;
}

const summary = (events: RegistryEvent[]) => events.map((e) => `${e.type} ${e.instance.name} ${e.instance.url}`);

describeEtcd('EtcdStore on a three-member etcd cluster', () => {
  let cluster: EtcdCluster;
  let open: EtcdStore[] = [];
  let prefixes = 0;
  /** Every test works under its own prefix, so they do not see each other's instances. */
  const freshPrefix = () => `svcmesh-test/${process.pid}/${prefixes++}/`;

  async function store(prefix: string, options: { ttlSeconds?: number; endpoints?: string[] } = {}) {
    const s = new EtcdStore(options.endpoints ?? cluster.endpoints, { ttlSeconds: options.ttlSeconds ?? 10, prefix });
    open.push(s);
    await s.open();
    return s;
  }

  beforeAll(async () => {
    cluster = await startEtcdCluster({ members: 3 });
  });

  afterEach(async () => {
    await Promise.all(open.map((s) => s.close()));
    open = [];
  });

  afterAll(async () => {
    await cluster?.stopAll();
  });

  it('registers, renews and deregisters with the memory store semantics', async () => {
    const s = await store(freshPrefix());
    expect(s.description).toBe(`etcd://${cluster.endpoints.map((e) => e.replace('http://', '')).join(',')}`);
    expect(s.health()).toEqual({ status: 'ok', store: s.description });
    const events = record(s);

    const first = await s.register({ name: 'svc', url: 'http://127.0.0.1:5001', metadata: { zone: 'a' } });
    expect(first.created).toBe(true);
    expect(first.instance).toMatchObject({ name: 'svc', url: 'http://127.0.0.1:5001', metadata: { zone: 'a' } });
    expect(first.instance.lastHeartbeat).toBe(first.instance.registeredAt);
    expect(first.instance.expiresAt - first.instance.lastHeartbeat).toBe(10_000);
    expect(first.instance).not.toHaveProperty('lease');

    // Registering again refreshes: registeredAt is the last registration, metadata kept when not given, no event.
    await sleep(5);
    const again = await s.register({ name: 'svc', url: 'http://127.0.0.1:5001' });
    expect(again.created).toBe(false);
    expect(again.instance.registeredAt).toBeGreaterThan(first.instance.registeredAt);
    expect(again.instance.lastHeartbeat).toBeGreaterThan(first.instance.lastHeartbeat);
    expect(again.instance.metadata).toEqual({ zone: 'a' });
    // A metadata change is an update.
    await s.register({ name: 'svc', url: 'http://127.0.0.1:5001', metadata: { zone: 'b' } });
    await s.register({ name: 'svc', url: 'http://127.0.0.1:5002' });
    await s.register({ name: 'other', url: 'http://127.0.0.1:6001' });

    expect(s.instances('svc').map((i) => i.url)).toEqual(['http://127.0.0.1:5001', 'http://127.0.0.1:5002']);
    // The newest registration stands for the name, as in the memory store.
    expect(JSON.parse(s.servicesJson())).toEqual({
      services: { svc: 'http://127.0.0.1:5002', other: 'http://127.0.0.1:6001' },
    });
    expect([...s.all().keys()]).toEqual(['svc', 'other']);
    // 5001 registers again (it restarted, or moved back): now it is the one registered last.
    await sleep(5);
    await s.register({ name: 'svc', url: 'http://127.0.0.1:5001' });
    expect(JSON.parse(s.servicesJson()).services.svc).toBe('http://127.0.0.1:5001');

    const before = s.instances('svc')[0]!;
    await sleep(5);
    const one = await s.heartbeat('svc', 'http://127.0.0.1:5001');
    expect(one.map((i) => i.url)).toEqual(['http://127.0.0.1:5001']);
    expect(one[0]!.lastHeartbeat).toBeGreaterThan(before.lastHeartbeat);
    expect(one[0]!.registeredAt).toBe(before.registeredAt);
    expect(s.instances('svc')[0]!.lastHeartbeat).toBe(one[0]!.lastHeartbeat);
    expect((await s.heartbeat('svc')).map((i) => i.url).sort()).toEqual(['http://127.0.0.1:5001', 'http://127.0.0.1:5002']);
    expect(await s.heartbeat('svc', 'http://127.0.0.1:5999')).toEqual([]);
    expect(await s.heartbeat('nobody')).toEqual([]);

    expect((await s.deregister('svc', 'http://127.0.0.1:5001')).map((i) => i.url)).toEqual(['http://127.0.0.1:5001']);
    expect(s.instances('svc').map((i) => i.url)).toEqual(['http://127.0.0.1:5002']);
    expect((await s.deregister('svc')).map((i) => i.url)).toEqual(['http://127.0.0.1:5002']);
    expect(await s.deregister('svc')).toEqual([]);
    expect(await s.heartbeat('svc', 'http://127.0.0.1:5001')).toEqual([]);
    expect(JSON.parse(s.servicesJson())).toEqual({ services: { other: 'http://127.0.0.1:6001' } });

    // The watch echoes every write; none of them may emit a second event.
    await sleep(300);
    expect(summary(events)).toEqual([
      'registered svc http://127.0.0.1:5001',
      'updated svc http://127.0.0.1:5001',
      'registered svc http://127.0.0.1:5002',
      'registered other http://127.0.0.1:6001',
      'deregistered svc http://127.0.0.1:5001',
      'deregistered svc http://127.0.0.1:5002',
    ]);
  });

  it('shares one catalog between registrars: register through A, renew and deregister through B', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix);
    const b = await store(prefix);
    const aEvents = record(a);
    const bEvents = record(b);

    const { instance } = await a.register({ name: 'svc', url: 'http://127.0.0.1:5001', metadata: { v: 1 } });
    const seen = await until(() => b.instances('svc').length === 1, 1000, 'B sees the registration made through A');
    expect(seen).toBeLessThan(1000);
    expect(b.instances('svc')[0]).toEqual(instance);
    expect(summary(bEvents)).toEqual(['registered svc http://127.0.0.1:5001']);

    await sleep(5);
    const [renewed] = await b.heartbeat('svc', 'http://127.0.0.1:5001');
    expect(renewed!.lastHeartbeat).toBeGreaterThan(instance.lastHeartbeat);
    await until(() => a.instances('svc')[0]?.lastHeartbeat === renewed!.lastHeartbeat, 1000, 'A sees the renewal made through B');
    expect(a.instances('svc')[0]!.registeredAt).toBe(instance.registeredAt);

    // Registering through B the instance A registered keeps it (not created again; a metadata update).
    const viaB = await b.register({ name: 'svc', url: 'http://127.0.0.1:5001', metadata: { v: 2 } });
    expect(viaB.created).toBe(false);
    expect(viaB.instance.registeredAt).toBeGreaterThanOrEqual(instance.registeredAt);
    await until(() => a.instances('svc')[0]?.metadata.v === 2, 1000, 'A sees the metadata change');

    expect(await b.deregister('svc', 'http://127.0.0.1:5001')).toHaveLength(1);
    await until(() => a.instances('svc').length === 0, 1000, 'A sees the deregistration made through B');
    await sleep(200);
    // Renewals are not events; the deregistration reads as one on both sides.
    expect(summary(aEvents)).toEqual([
      'registered svc http://127.0.0.1:5001',
      'updated svc http://127.0.0.1:5001',
      'deregistered svc http://127.0.0.1:5001',
    ]);
    expect(summary(bEvents)).toEqual(summary(aEvents));
  });

  it('keeps writes to one instance through different registrars atomic', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix);
    const b = await store(prefix);
    const aEvents = record(a);
    const url = 'http://127.0.0.1:5501';

    // Both register the same new instance at once: exactly one creates it.
    const [viaA, viaB] = await Promise.all([a.register({ name: 'svc', url }), b.register({ name: 'svc', url })]);
    expect([viaA.created, viaB.created].sort()).toEqual([false, true]);
    expect(viaA.instance.registeredAt).toBe(viaB.instance.registeredAt);

    // Heartbeats racing a deregistration never bring the instance back.
    const beats = Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).heartbeat('svc', url));
    const [removed] = await Promise.all([a.deregister('svc', url), ...beats]);
    expect(removed).toHaveLength(1);
    await sleep(300);
    expect(a.instances('svc')).toEqual([]);
    expect(b.instances('svc')).toEqual([]);
    expect((await store(prefix)).all().size).toBe(0);
    expect(summary(aEvents)).toEqual([`registered svc ${url}`, `deregistered svc ${url}`]);
  });

  it('renews a live instance for every one of many heartbeats at once, through one registrar or two', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix);
    const b = await store(prefix);
    const url = 'http://127.0.0.1:5601';
    await a.register({ name: 'busy', url });
    // Name-only beats (renew every instance of the name) and beats naming the instance, interleaved.
    const beats = Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).heartbeat('busy', i % 4 < 2 ? url : undefined));
    const renewed = await Promise.all(beats);
    // None may come back empty: that is a 404 "not registered", which sends a live instance to register again.
    expect(renewed.map((r) => r.map((i) => i.url))).toEqual(beats.map(() => [url]));
  });

  it('takes many identical registrations of one instance at once (a fleet restarting) without a 503, creating it once', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix);
    const b = await store(prefix);
    const url = 'http://127.0.0.1:5701';
    const attempts = Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).register({ name: 'same', url, metadata: { model: 'llama3.2' } }));
    const results = await Promise.all(attempts);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(results.every((r) => r.instance.metadata.model === 'llama3.2')).toBe(true);
  });

  it('takes many registrations of one instance at once with different metadata, through two registrars, without a 503', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix);
    const b = await store(prefix);
    const url = 'http://127.0.0.1:5702';
    const attempts = Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).register({ name: 'moving', url, metadata: { version: i } }));
    const results = await Promise.all(attempts);
    expect(results).toHaveLength(20);
    // One of them is the last word.
    const stored = (await store(prefix)).instances('moving');
    expect(stored).toHaveLength(1);
    expect(typeof stored[0]!.metadata.version).toBe('number');
  });

  it('evicts by lease expiry on every registrar, while heartbeats keep an instance alive', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, { ttlSeconds: 2 });
    const b = await store(prefix, { ttlSeconds: 2 });
    const aEvents = record(a);
    const bEvents = record(b);
    await a.register({ name: 'quiet', url: 'http://127.0.0.1:7001' });
    await a.register({ name: 'alive', url: 'http://127.0.0.1:7002' });
    await until(() => b.all().size === 2, 1000, 'B sees both');

    const beat = setInterval(() => void b.heartbeat('alive').catch(() => undefined), 500);
    try {
      const evictedAfter = await until(() => a.instances('quiet').length === 0, 5000, 'A drops the expired instance');
      expect(evictedAfter).toBeGreaterThan(1000);
      await until(() => b.instances('quiet').length === 0, 1000, 'B drops it too');
      await sleep(1500); // well past the TTL of the first registration
      expect(a.instances('alive')).toHaveLength(1);
      expect(b.instances('alive')).toHaveLength(1);
    } finally {
      clearInterval(beat);
    }
    expect(await a.heartbeat('quiet', 'http://127.0.0.1:7001')).toEqual([]);
    for (const events of [aEvents, bEvents]) {
      expect(summary(events)).toEqual(['registered quiet http://127.0.0.1:7001', 'registered alive http://127.0.0.1:7002', 'evicted quiet http://127.0.0.1:7001']);
    }
  });

  it('a restarted registrar loads everything, in registration order', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix);
    const registered = [];
    for (const port of [5003, 5001, 5002]) registered.push((await a.register({ name: 'svc', url: `http://127.0.0.1:${port}`, metadata: { port } })).instance);
    await a.register({ name: 'gone', url: 'http://127.0.0.1:5009' });
    await a.deregister('gone');
    await a.close();

    const restarted = await store(prefix);
    expect(restarted.instances('svc')).toEqual(registered);
    expect([...restarted.all().keys()]).toEqual(['svc']);
    // Leases survived the registrar: heartbeats through the new one renew them.
    expect(await restarted.heartbeat('svc')).toHaveLength(3);
  });

  it('keeps working with one member of three stopped', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix);
    const b = await store(prefix);
    await cluster.stopMember(0);
    try {
      for (let i = 0; i < 5; i++) {
        await a.register({ name: 'svc', url: `http://127.0.0.1:${5100 + i}` });
        expect(await b.heartbeat('svc', `http://127.0.0.1:${5100 + i}`)).toHaveLength(1);
      }
      await until(() => a.instances('svc').length === 5 && b.instances('svc').length === 5, 3000, 'both see all five');
      expect(await b.deregister('svc', 'http://127.0.0.1:5100')).toHaveLength(1);
      await until(() => a.instances('svc').length === 4, 3000, 'A sees the deregistration');
      await until(() => a.health().status === 'ok' && b.health().status === 'ok', 3000, 'both healthy');
    } finally {
      await cluster.startMember(0);
    }
  });

  it('with all of etcd down: writes answer StoreUnavailableError, reads serve, health degraded; then recovers', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix);
    const b = await store(prefix);
    await a.register({ name: 'svc', url: 'http://127.0.0.1:5201' });
    await until(() => b.instances('svc').length === 1, 1000, 'B sees it');
    const aEvents = record(a);

    await Promise.all([0, 1, 2].map((i) => cluster.stopMember(i)));
    try {
      const start = Date.now();
      const error = await a.register({ name: 'svc', url: 'http://127.0.0.1:5202' }).catch((e: unknown) => e);
      expect(Date.now() - start).toBeLessThan(6000);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as Error).message).toMatch(/^etcd is unreachable at http:\/\/127\.0\.0\.1:\d+,.*Writes are refused until it is back; reads serve the last known catalog\.$/);
      await expect(b.heartbeat('svc')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(b.deregister('svc')).rejects.toBeInstanceOf(StoreUnavailableError);

      expect(a.instances('svc').map((i) => i.url)).toEqual(['http://127.0.0.1:5201']);
      expect(JSON.parse(b.servicesJson())).toEqual({ services: { svc: 'http://127.0.0.1:5201' } });
      await until(() => a.health().status === 'degraded' && b.health().status === 'degraded', 3000, 'health degraded');
      expect(a.health().detail).toMatch(/etcd/);
    } finally {
      await Promise.all([0, 1, 2].map((i) => cluster.startMember(i)));
    }
    await until(() => a.health().status === 'ok' && b.health().status === 'ok', 10_000, 'health ok again');
    // Nothing was lost and the watch is live again: a registration through B reaches A.
    expect(a.instances('svc').map((i) => i.url)).toEqual(['http://127.0.0.1:5201']);
    await b.register({ name: 'svc', url: 'http://127.0.0.1:5203' });
    await until(() => a.instances('svc').length === 2, 1000, 'A sees a registration made through B after the outage');
    expect(await a.heartbeat('svc')).toHaveLength(2);
    expect(summary(aEvents)).toEqual(['registered svc http://127.0.0.1:5203']);
  });

  it('a registration answered 503 while etcd stalled is not applied when etcd goes on, and health is ok again', async () => {
    const prefix = freshPrefix();
    const a = new EtcdStore(cluster.endpoints, { ttlSeconds: 10, prefix, writeTimeoutMs: 1500 });
    open.push(a);
    await a.open();
    for (const i of [0, 1, 2]) cluster.pauseMember(i);
    let error: unknown;
    try {
      error = await a.register({ name: 'stall', url: 'http://127.0.0.1:5301' }).catch((e: unknown) => e);
    } finally {
      for (const i of [0, 1, 2]) cluster.resumeMember(i);
    }
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/^etcd is unreachable at .*Writes are refused until it is back/);
    // etcd now answers what it was sent while stalled: none of it may register the instance.
    await until(() => a.health().status === 'ok', 10_000, 'health ok again without a write');
    await sleep(1500);
    const direct = new Etcd3({ hosts: cluster.endpoints });
    try {
      expect(await direct.getAll().prefix(prefix).keys()).toEqual([]);
    } finally {
      direct.close();
    }
    expect(a.instances('stall')).toEqual([]);
  });

  it('many registrations of one instance past the write bound say "try again", not that etcd is unreachable, and leave health ok', async () => {
    const prefix = freshPrefix();
    const a = new EtcdStore(cluster.endpoints, { ttlSeconds: 10, prefix, writeTimeoutMs: 300 });
    const b = new EtcdStore(cluster.endpoints, { ttlSeconds: 10, prefix, writeTimeoutMs: 300 });
    open.push(a, b);
    await Promise.all([a.open(), b.open()]);
    const results = await Promise.allSettled(
      Array.from({ length: 120 }, (_, i) => (i % 2 ? a : b).register({ name: 'busy', url: 'http://127.0.0.1:5302', metadata: { i } })),
    );
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
    for (const message of refused) expect(message).not.toMatch(/unreachable/);
    expect(a.health().status).toBe('ok');
    expect(b.health().status).toBe('ok');
  });

  it('resumes the watch from its last revision after a disconnect (replaying what it missed)', async () => {
    const prefix = freshPrefix();
    // A talks to member 0 only, so stopping it cuts A off while the cluster keeps quorum.
    const a = await store(prefix, { endpoints: [cluster.endpoints[0]!] });
    const b = await store(prefix, { endpoints: cluster.endpoints.slice(1) });
    await b.register({ name: 'kept', url: 'http://127.0.0.1:5301' });
    await until(() => a.instances('kept').length === 1, 1000, 'A sees it');
    const aEvents = record(a);

    await cluster.stopMember(0);
    try {
      await until(() => a.health().status === 'degraded', 3000, 'A degraded');
      await expect(a.register({ name: 'x', url: 'http://127.0.0.1:5302' })).rejects.toBeInstanceOf(StoreUnavailableError);
      await b.register({ name: 'brief', url: 'http://127.0.0.1:5303' });
      await b.deregister('brief');
      await b.register({ name: 'new', url: 'http://127.0.0.1:5304' });
      await b.deregister('kept');
      expect(a.instances('kept')).toHaveLength(1); // the last known catalog
    } finally {
      await cluster.startMember(0);
    }
    await until(() => a.instances('new').length === 1 && a.instances('kept').length === 0, 10_000, 'A caught up');
    await until(() => a.health().status === 'ok', 3000, 'A healthy');
    // A replay, not a reload: A saw the instance that came and went while it was cut off.
    expect(summary(aEvents)).toEqual([
      'registered brief http://127.0.0.1:5303',
      'deregistered brief http://127.0.0.1:5303',
      'registered new http://127.0.0.1:5304',
      'deregistered kept http://127.0.0.1:5301',
    ]);
  });

  it('reloads and reconciles when the revision to resume from was compacted away', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, { endpoints: [cluster.endpoints[0]!] });
    const b = await store(prefix, { endpoints: cluster.endpoints.slice(1) });
    const short = await store(prefix, { endpoints: cluster.endpoints.slice(1), ttlSeconds: 2 });
    await b.register({ name: 'kept', url: 'http://127.0.0.1:5401' });
    await b.register({ name: 'leaving', url: 'http://127.0.0.1:5402' });
    await short.register({ name: 'expiring', url: 'http://127.0.0.1:5403' });
    await until(() => a.all().size === 3, 1000, 'A sees all three');
    const aEvents = record(a);

    await cluster.stopMember(0);
    const admin = new Etcd3({ hosts: cluster.endpoints.slice(1) });
    try {
      await b.register({ name: 'brief', url: 'http://127.0.0.1:5404' });
      await b.deregister('brief');
      await b.deregister('leaving');
      await b.register({ name: 'new', url: 'http://127.0.0.1:5405' });
      await until(() => b.instances('expiring').length === 0, 5000, '"expiring" expires');
      const { header } = await admin.get('anything').exec();
      await admin.kv.compact({ revision: header.revision, physical: true });
      await cluster.startMember(0);
      await until(() => a.instances('new').length === 1 && a.all().size === 2, 10_000, 'A reloaded');
    } finally {
      admin.close();
      await cluster.startMember(0);
    }
    await until(() => a.health().status === 'ok', 3000, 'A healthy');
    // A reload: what came and went is not seen; the differences are, with the right reasons.
    expect(summary(aEvents).sort()).toEqual(
      ['deregistered leaving http://127.0.0.1:5402', 'evicted expiring http://127.0.0.1:5403', 'registered new http://127.0.0.1:5405'].sort(),
    );
    // And the new watch is live.
    await b.register({ name: 'after', url: 'http://127.0.0.1:5406' });
    await until(() => a.instances('after').length === 1, 1000, 'A watches again');
  });

  it('refuses to open when etcd is unreachable, with a message naming etcd', async () => {
    const s = new EtcdStore(['http://127.0.0.1:9'], { ttlSeconds: 5 });
    open.push(s);
    const start = Date.now();
    const error = await s.open().catch((e: unknown) => e);
    expect(Date.now() - start).toBeLessThan(6000);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/^etcd is unreachable at http:\/\/127\.0\.0\.1:9: /);
  });
});

describe('what a 503 says when etcd does not answer', () => {
  it("puts grpc-js's deadline wording in words, and drops its empty resolution note", () => {
    expect(describeCause(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded after 1.501s,Waiting for LB pick'))).toBe(
      'no member answered within 1.501 s (gRPC DEADLINE_EXCEEDED)',
    );
    expect(describeCause(new Error('14 UNAVAILABLE: No connection established. Resolution note: '))).toBe('14 UNAVAILABLE: No connection established');
  });
});
