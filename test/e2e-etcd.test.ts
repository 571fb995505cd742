/**
 * Issue #4 end to end: several BUILT registrars sharing one three-member etcd cluster, a real
 * Ollama service (in front of a fake Ollama), and the CLI as a user runs it. "Several
 * registrars, one truth": register through A, heartbeat through B, forward through C; eviction by
 * lease expiry; one member down; all of etcd down and back; a registrar restart.
 *
 * The registrars share etcd's default key prefix, so every test uses its own service names; what
 * a test registers without heartbeats expires on its own within the 3 s TTL.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from './support/etcd-cluster.js';
import { type FakeOllama, startFakeOllama } from './support/fake-ollama.js';
import { runSvcmesh, startSvcmesh, stopAll, type SvcmeshProcess, waitFor } from './support/processes.js';

const TTL = 3;
/** "Within a second": how long a change made through one registrar may take to show on another. */
const PROPAGATION_MS = 1_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Services = Record<string, string>;

async function services(registrar: SvcmeshProcess): Promise<Services> {
  const response = await fetch(`${registrar.url}/services`, { signal: AbortSignal.timeout(2_000) });
  expect(response.status).toBe(200);
  return ((await response.json()) as { services: Services }).services;
}

async function health(registrar: SvcmeshProcess): Promise<{ status: string; store: string; detail?: string; instances: number }> {
  const response = await fetch(`${registrar.url}/health`, { signal: AbortSignal.timeout(2_000) });
  return (await response.json()) as { status: string; store: string; detail?: string; instances: number };
}

async function post(registrar: SvcmeshProcess, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown>; retryAfter: string | null }> {
  const response = await fetch(`${registrar.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown>, retryAfter: response.headers.get('retry-after') };
}

const register = (registrar: SvcmeshProcess, name: string, url: string) => post(registrar, '/register', { service_name: name, service_url: url });
const heartbeat = (registrar: SvcmeshProcess, name: string, url: string) => post(registrar, '/heartbeat', { service_name: name, service_url: url });

async function forward(registrar: SvcmeshProcess, to: string, message: string) {
  const { status, json } = await post(registrar, '/forward', { from: 'e2e-etcd', to, message });
  return { status, json };
}

/** Waits until every registrar's /services satisfies `check`; returns how long that took. */
async function onAll(registrars: SvcmeshProcess[], check: (services: Services) => boolean, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  await waitFor(async () => (await Promise.all(registrars.map(services))).every(check), timeoutMs, what);
  return Date.now() - start;
}

/** The `event:`/`data:` pairs of an SSE text, e.g. `registered evt_svc`. */
function sseEvents(text: string): string[] {
  return text
    .split('\n\n')
    .slice(0, -1) // the last piece is not a complete event yet
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!event || !data) return undefined;
      return `${event} ${(JSON.parse(data) as { name?: string }).name ?? ''}`.trim();
    })
    .filter((e): e is string => e !== undefined);
}

/** Which member (index into `endpoints`) leads the cluster now. */
async function leaderIndex(endpoints: string[]): Promise<number> {
  const statuses = await Promise.all(
    endpoints.map(async (endpoint) => {
      const response = await fetch(`${endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2_000) });
      return (await response.json()) as { header: { member_id: string }; leader: string };
    }),
  );
  const index = statuses.findIndex((s) => s.header.member_id === s.leader);
  if (index < 0) throw new Error(`no leader among ${JSON.stringify(statuses)}`);
  return index;
}

/** Runs the CLI and expects it to succeed, showing its output when it does not. */
async function cli(args: string[]): Promise<string> {
  const result = await runSvcmesh(args, { timeoutMs: 10_000 });
  expect(result.code, `svcmesh ${args.join(' ')}\n${result.stdout}${result.stderr}`).toBe(0);
  return result.stdout;
}

describeEtcd('several registrars on one etcd cluster (end to end)', () => {
  let cluster: EtcdCluster;
  let ollama: FakeOllama;
  let storeSpec: string;
  let a: SvcmeshProcess;
  let b: SvcmeshProcess;
  let c: SvcmeshProcess;
  /** An Ollama service registered (and heartbeating every second) through A. */
  let serviceA: SvcmeshProcess;
  /** Another one, registered and heartbeating through C under its own name. */
  let serviceC: SvcmeshProcess;
  const all = () => [a, b, c];

  const startRegistrar = (port = 0) =>
    startSvcmesh(['registrar', '--host', '127.0.0.1', '--port', String(port), '--ttl', String(TTL), '--store', storeSpec]);

  const startService = async (registrar: SvcmeshProcess, name: string) => {
    const service = await startSvcmesh([
      'ollama', '--host', '127.0.0.1', '--port', '0', '--name', name, '--ollama-host', ollama.host,
      '--register', '--registrar', registrar.url, '--heartbeat-interval', '1',
    ]);
    await waitFor(() => service.output().includes(`registered at ${service.url}`), 10_000, `${name} registered`);
    return service;
  };

  beforeAll(async () => {
    [cluster, ollama] = await Promise.all([startEtcdCluster({ members: 3 }), startFakeOllama()]);
    storeSpec = `etcd://${cluster.endpoints.map((e) => e.replace(/^http:\/\//, '')).join(',')}`;
    [a, b, c] = await Promise.all([startRegistrar(), startRegistrar(), startRegistrar()]);
    [serviceA, serviceC] = await Promise.all([startService(a, 'ollama_service'), startService(c, 'ollama_c')]);
  });

  afterAll(async () => {
    try {
      await stopAll();
    } finally {
      await ollama?.close();
      await cluster?.stopAll();
    }
  });

  it('starts every registrar on the etcd store, healthy', async () => {
    for (const registrar of all()) {
      expect(registrar.output()).toContain(`(store: ${storeSpec}, ttl: ${TTL} s)`);
      expect(await health(registrar)).toMatchObject({ status: 'ok', store: storeSpec });
    }
  });

  it('register through A shows on B and C within a second, and a forward through C reaches the service A registered', async () => {
    // The Ollama services registered through A and C: every registrar has both.
    await onAll(all(), (s) => s.ollama_service === serviceA.url && s.ollama_c === serviceC.url, PROPAGATION_MS, 'both services everywhere');

    const url = 'http://127.0.0.1:9/registered-through-a';
    expect(await cli(['register', 'via_a', url, '--registrar', a.url])).toContain('registered');
    const took = await onAll([b, c], (s) => s.via_a === url, PROPAGATION_MS, 'via_a on B and C');
    expect(took).toBeLessThan(PROPAGATION_MS);

    for (const registrar of all()) {
      const answer = await forward(registrar, 'ollama_service', `hello through ${registrar.port}`);
      expect(answer).toEqual({ status: 200, json: { message: `Answer to: hello through ${registrar.port}` } });
    }
    // The CLI through C, too.
    expect(await cli(['ask', 'ollama_c', 'hi from the CLI', '--registrar', c.url])).toBe('Answer to: hi from the CLI\n');
  });

  it('heartbeats through B keep an instance registered through A alive past the TTL on all; one never renewed is evicted from all', async () => {
    const kept = 'http://127.0.0.1:9/kept';
    const lapsed = 'http://127.0.0.1:9/lapsed';
    const start = Date.now();
    await Promise.all([cli(['register', 'hb_kept', kept, '--registrar', a.url]), cli(['register', 'hb_lapsed', lapsed, '--registrar', a.url])]);
    await onAll(all(), (s) => s.hb_kept === kept && s.hb_lapsed === lapsed, PROPAGATION_MS, 'both registered everywhere');

    // Heartbeat hb_kept through B (the CLI, once a second) until well past the TTL.
    let beating = true;
    const beats = (async () => {
      while (beating) {
        const next = sleep(1_000);
        await cli(['heartbeat', 'hb_kept', '--url', kept, '--registrar', b.url]);
        await next;
      }
    })();
    beats.catch(() => undefined); // a failed heartbeat fails the test where it is awaited below
    try {
      // The lease of hb_lapsed expires in etcd: every registrar's copy drops it.
      await onAll(all(), (s) => s.hb_lapsed === undefined, (TTL + 3) * 1000, 'hb_lapsed evicted everywhere');
      expect(Date.now() - start).toBeGreaterThanOrEqual((TTL - 1) * 1000);
      while (Date.now() - start < (TTL + 1.5) * 1000) {
        for (const s of await Promise.all(all().map(services))) expect(s.hb_kept).toBe(kept);
        await sleep(250);
      }
      const detail = (await (await fetch(`${c.url}/services/hb_kept`)).json()) as { instances: { url: string }[] };
      expect(detail.instances.map((i) => i.url)).toEqual([kept]);
    } finally {
      beating = false;
      await beats;
    }
    // No more heartbeats: its lease (renewed through B) expires too, on every registrar.
    await onAll(all(), (s) => s.hb_kept === undefined, (TTL + 3) * 1000, 'hb_kept evicted everywhere once heartbeats stop');
  });

  it("B's /events sees a registration made through A within a second", async () => {
    const controller = new AbortController();
    const response = await fetch(`${b.url}/events`, { signal: controller.signal });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    let text = '';
    const reading = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
      } catch {
        // aborted below
      }
    })();
    try {
      await waitFor(() => sseEvents(text).includes('snapshot'), 2_000, 'the snapshot');
      expect(text).toContain(serviceA.url);
      const url = 'http://127.0.0.1:9/evented';
      const sent = Date.now();
      expect((await register(a, 'evt_svc', url)).status).toBe(200);
      await waitFor(() => sseEvents(text).includes('registered evt_svc'), PROPAGATION_MS, 'registered evt_svc on B /events');
      expect(Date.now() - sent).toBeLessThan(PROPAGATION_MS);
      // The deregistration through C, too, as a deregistration (not an eviction).
      expect((await post(c, '/deregister', { service_name: 'evt_svc' })).status).toBe(200);
      await waitFor(() => sseEvents(text).includes('deregistered evt_svc'), PROPAGATION_MS, 'deregistered evt_svc on B /events');
    } finally {
      controller.abort();
      await reading;
    }
  });

  it('one etcd member of three stopped (the leader): register, heartbeat, forward and /services keep working through every registrar', async () => {
    // The leader, the harder case: until the other two elect a new one (~1-2 s), etcd takes no
    // write, and the registrars' writes must wait that out within their bound rather than fail.
    const stopped = await leaderIndex(cluster.endpoints);
    await cluster.stopMember(stopped);
    try {
      for (const [i, registrar] of all().entries()) {
        const url = `http://127.0.0.1:9/one-down-${i}`;
        expect(await register(registrar, `one_down_${i}`, url)).toMatchObject({ status: 200 });
        expect(await heartbeat(registrar, `one_down_${i}`, url)).toMatchObject({ status: 200 });
        expect(await heartbeat(registrar, 'ollama_service', serviceA.url)).toMatchObject({ status: 200 });
        expect(await forward(registrar, 'ollama_service', `one down ${i}`)).toEqual({ status: 200, json: { message: `Answer to: one down ${i}` } });
      }
      await onAll(
        all(),
        (s) => [0, 1, 2].every((i) => s[`one_down_${i}`] === `http://127.0.0.1:9/one-down-${i}`) && s.ollama_service === serviceA.url && s.ollama_c === serviceC.url,
        PROPAGATION_MS,
        'every registration made with one member down, everywhere',
      );
      // Still healthy: two of three is a quorum (allow a moment for a watch that was on the dead member to move).
      await waitFor(async () => (await Promise.all(all().map(health))).every((h) => h.status === 'ok'), 5_000, 'every registrar ok');
    } finally {
      await cluster.startMember(stopped);
    }
  });

  it('all of etcd down: writes answer 503 naming etcd, reads serve the last catalog, /health degraded; back: nothing lost', async () => {
    const before = await services(b);
    expect(before).toMatchObject({ ollama_service: serviceA.url, ollama_c: serviceC.url });

    await Promise.all([0, 1, 2].map((i) => cluster.stopMember(i)));
    try {
      await waitFor(async () => (await Promise.all(all().map(health))).every((h) => h.status === 'degraded'), 5_000, 'every registrar degraded');
      // A write keeps trying within its bound (4 s) in case etcd is only electing a leader, then
      // answers 503: every registrar at once, and the CLI too.
      const cliAnswer = runSvcmesh(['register', 'cli_outage', 'http://127.0.0.1:9/cli', '--registrar', c.url], { timeoutMs: 10_000 });
      await Promise.all(
        all().map(async (registrar) => {
          const lastKnown = await services(registrar);
          expect(lastKnown).toMatchObject({ ollama_service: serviceA.url, ollama_c: serviceC.url });
          const h = await health(registrar);
          expect(h.detail).toMatch(/etcd/);
          expect(h.detail).toContain('last known catalog');

          const started = Date.now();
          const [refused, beat] = await Promise.all([
            register(registrar, 'during_outage', 'http://127.0.0.1:9/outage'),
            heartbeat(registrar, 'ollama_service', serviceA.url),
          ]);
          expect(Date.now() - started).toBeLessThan(6_000);
          expect(refused.status).toBe(503);
          expect(String(refused.json.error)).toMatch(/^etcd is unreachable at .*Writes are refused until it is back; reads serve the last known catalog\.$/);
          expect(beat.status).toBe(503);
          expect(String(beat.json.error)).toMatch(/etcd/);
          // A 503 that says when to come back, as HTTP clients and proxies read it.
          expect([refused.retryAfter, beat.retryAfter]).toEqual(['1', '1']);

          // Reads: the last known catalog, and forwarding to it still works.
          expect(await services(registrar)).toEqual(lastKnown);
          expect(await forward(registrar, 'ollama_c', 'still there?')).toEqual({ status: 200, json: { message: 'Answer to: still there?' } });
          expect((await health(registrar)).status).toBe('degraded');
        }),
      );
      const refusedCli = await cliAnswer;
      expect(refusedCli.code).not.toBe(0);
      expect(refusedCli.stderr).toMatch(/etcd/);
      // `svcmesh status` as a health check: exit 1, and the reason on its Status line.
      const status = await runSvcmesh(['status', '--registrar', c.url]);
      expect(status.code).toBe(1);
      expect(status.stdout).toMatch(/^Status +degraded \(.*etcd.*last known catalog.*\)$/m);
    } finally {
      // One member alone has no quorum: they come back together.
      await Promise.all([0, 1, 2].map((i) => cluster.startMember(i)));
    }

    const back = Date.now();
    await waitFor(async () => (await Promise.all(all().map(health))).every((h) => h.status === 'ok'), 10_000, 'every registrar ok again');
    const recoveredIn = Date.now() - back;
    expect(recoveredIn).toBeLessThan(10_000);

    // The watch resumed: a registration through B shows on A and C within a second.
    const url = 'http://127.0.0.1:9/after-outage';
    expect((await register(b, 'after_outage', url)).status).toBe(200);
    await onAll([a, c], (s) => s.after_outage === url, PROPAGATION_MS, 'after_outage on A and C');

    // What was registered before (and heartbeated all along) survived the outage, on every registrar,
    // and past a full TTL after etcd came back (the services' heartbeats renewed it again).
    await sleep(TTL * 1000 + 500);
    for (const s of await Promise.all(all().map(services))) {
      expect(s).toMatchObject({ ollama_service: serviceA.url, ollama_c: serviceC.url });
      expect(s.during_outage).toBeUndefined();
    }
    for (const registrar of all()) {
      expect(await forward(registrar, 'ollama_service', 'after the outage')).toEqual({ status: 200, json: { message: 'Answer to: after the outage' } });
    }
  });

  it('a registrar restart loses nothing: A comes back on the same etcd with the whole catalog', async () => {
    const url = 'http://127.0.0.1:9/before-restart';
    expect((await register(c, 'before_restart', url)).status).toBe(200);
    await onAll(all(), (s) => s.before_restart === url, PROPAGATION_MS, 'before_restart everywhere');

    const port = a.port;
    expect((await a.stop('SIGTERM')).code).toBe(0);
    a = await startRegistrar(port);
    // The same catalog as B's. Instances of the tests before expire meanwhile (a TTL of 3 s), which
    // each registrar learns from etcd a moment apart: the two views agree once both have heard.
    const sorted = (catalog: Services) => JSON.stringify(Object.entries(catalog).sort());
    await waitFor(async () => sorted(await services(a)) === sorted(await services(b)), 2 * PROPAGATION_MS, "A's catalog to be B's");
    const onA = await services(a);
    expect(onA).toMatchObject({ ollama_service: serviceA.url, ollama_c: serviceC.url, before_restart: url });
    expect(await health(a)).toMatchObject({ status: 'ok', store: storeSpec });

    // The restarted A is part of the one truth again, both ways.
    const fresh = 'http://127.0.0.1:9/after-restart';
    expect((await register(a, 'after_restart', fresh)).status).toBe(200);
    await onAll([b, c], (s) => s.after_restart === fresh, PROPAGATION_MS, 'after_restart on B and C');
    const fromB = 'http://127.0.0.1:9/from-b';
    expect((await register(b, 'from_b', fromB)).status).toBe(200);
    await onAll([a], (s) => s.from_b === fromB, PROPAGATION_MS, 'from_b on the restarted A');

    // The service registered through A kept heartbeating to A's address: still there past a TTL.
    await sleep(TTL * 1000 + 500);
    for (const s of await Promise.all(all().map(services))) expect(s.ollama_service).toBe(serviceA.url);
    expect(await forward(a, 'ollama_service', 'after the restart')).toEqual({ status: 200, json: { message: 'Answer to: after the restart' } });
  });
});
