// Only types come from etcd3 at the top level: the client (gRPC, protobuf, ~1.2 MB bundled) is
// loaded by open(), so commands that do not use etcd never pay for it.
import type { Etcd3, IKeyValue, IOptions, IRangeResponse, ITxnResponse, IWatchResponse, Watcher } from 'etcd3';
import { Catalog } from './catalog.js';
import { isInstance } from './instance-shape.js';
import { StoreUnavailableError, type Store } from './store.js';
import type { Clock, Instance, RegistrationInput, RegistryListener, StoreHealth } from './types.js';

type Etcd3Module = typeof import('etcd3');

export interface EtcdStoreOptions {
  /** Seconds an instance lives after its last heartbeat: the TTL of its lease (etcd rounds up to whole seconds, minimum 2 in practice). */
  ttlSeconds: number;
  /** Key prefix of the catalog; default `svcmesh/instances/`. */
  prefix?: string;
  /** For the times written into instances (registeredAt, lastHeartbeat, expiresAt). */
  clock?: Clock;
  /** Bound on one write (register, heartbeat, deregister) including retries; default 4000 ms. */
  writeTimeoutMs?: number;
  /** Bound on one etcd call attempt; a dead member costs at most this before the next is tried. Default 1500 ms. */
  attemptTimeoutMs?: number;
}

/** What the value of an instance key holds: the instance plus the lease it is bound to. */
interface StoredInstance extends Instance {
  readonly lease: string;
}

interface Known {
  name: string;
  url: string;
  lease: string;
  /** mod_revision of the key as last applied to the local copy. */
  revision: number;
}

const DEFAULT_PREFIX = 'svcmesh/instances/';
/**
 * A deregistration writes `<instance key>#deregistered` in the same transaction that deletes the
 * instance key, bound to the instance's own lease (so it cleans itself up). `#` never occurs in an
 * encodeURIComponent()d URL, so no instance key can collide with a tombstone key.
 */
const TOMBSTONE_SUFFIX = '#deregistered';
/** How many times a write re-reads and retries when another registrar changed the key in between. */
const MAX_CAS_ATTEMPTS = 32;
/** The longest pause, per attempt so far, before a registration that lost a write race tries again. */
const CAS_JITTER_MS = 5;

/**
 * The local copy's clock never moves: the lease is the only truth about expiry, and eviction
 * arrives as the watch's delete event. A catalog hiding instances by its own clock would evict
 * on clock skew between registrars, flap at the boundary between a renewal and its watch event,
 * and drop the last known catalog while etcd is unreachable (when leases cannot expire either).
 */
const frozenClock: Clock = { now: () => 0 };
const systemClock: Clock = { now: () => Date.now() };

class EtcdTimeoutError extends Error {
  override readonly name = 'EtcdTimeoutError';
}

/**
 * One write as #write runs it. A write whose bound ran out has been answered 503 ("refused"):
 * from then on it must change nothing, and what it changed anyway is put back.
 */
interface WriteAttempt {
  /** Answered as failed: change nothing more. */
  abandoned: boolean;
  /** Other writes to the same key won the compare-and-swap: the time went to contention, not to an absent etcd. */
  collided: boolean;
  /** Every put this write sent, in every try: one etcd had queued may land after the 503. */
  sent: SentPut[];
}

/** A put a registration sent, with what to put back should it land after the caller was refused. */
interface SentPut {
  key: string;
  value: string;
  before: IKeyValue | undefined;
  beforeInstance: StoredInstance | undefined;
  lease: string;
}

/** How long puts a refused registration sent are watched for, in case a stalled etcd takes them late. */
const LATE_PUT_WATCH_MS = 60_000;

/** Thrown inside a write that was abandoned before it changed anything. */
class WriteAbandonedError extends Error {
  override readonly name = 'WriteAbandonedError';
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits for `promise` at most `ms` (without keeping the process alive once it settles). */
async function atMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
const sameMetadata = (a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>) =>
  JSON.stringify(a) === JSON.stringify(b);

/** Exponential backoff for re-opening the watch stream, capped low so the copy catches up soon after etcd is back. */
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;
function watchBackoff(attempt: number): WatchBackoff {
  const base = Math.min(2000, 100 * 2 ** attempt);
  return { duration: base / 2 + Math.random() * (base / 2), next: () => watchBackoff(attempt + 1) };
}

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/** A member that was just found dead; the message carries why. Counts as "etcd unreachable". */
class EtcdMemberSkippedError extends Error {
  override readonly name = 'EtcdMemberSkippedError';
}

/**
 * Per-member fault handling in place of etcd3's default circuit breaker, which, once every member
 * has failed three times (any outage), refuses all calls for 5 s after etcd is back. This one
 * skips a member for `skipMs` after a connection-level failure, so a dead member of three costs
 * little, and writes work again within about a second of etcd returning.
 */
function memberPolicy(isConnectionError: (error: unknown) => boolean, skipMs: number): HostPolicy {
  let downUntil = 0;
  let reason = '';
  const policy = {
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      if (Date.now() < downUntil) throw new EtcdMemberSkippedError(reason);
      try {
        return await fn({ signal: new AbortController().signal });
      } catch (error) {
        if (isConnectionError(error)) {
          downUntil = Date.now() + skipMs;
          reason = (error as Error).message;
        }
        throw error;
      }
    },
  };
  // etcd3 only ever calls execute(); the rest of cockatiel's IPolicy (events) is never used.
  return policy as unknown as HostPolicy;
}

function stripScheme(endpoint: string): string {
  return endpoint.replace(/^https?:\/\//, '').replace(/\/+$/, '');
}

/**
 * The catalog in an etcd cluster shared by several registrars. An instance is the key
 * `<prefix><name>/<encodeURIComponent(url)>`, bound to a lease of the TTL; a heartbeat renews the
 * lease and rewrites the value (so every registrar sees the new times); eviction is the lease's
 * expiry. Every write is one compare-and-swap transaction on the instance's key, retried when
 * another registrar got there first, so concurrent writes through different registrars never
 * resurrect or clobber each other.
 *
 * Reads never touch etcd: they come from a local Catalog loaded at open() and kept current by a
 * watch on the prefix. Writes also apply their own result locally at once (read-your-writes);
 * every change carries its etcd revision, so the watch's echo, or an older event arriving late,
 * is ignored and each change emits exactly one event.
 */
export class EtcdStore implements Store {
  readonly description: string;
  readonly #endpoints: string[];
  readonly #prefix: string;
  readonly #ttlSeconds: number;
  readonly #clock: Clock;
  readonly #writeTimeoutMs: number;
  readonly #attemptTimeoutMs: number;
  readonly #catalog = new Catalog(frozenClock);

  #etcd: Etcd3Module | undefined;
  #client: Etcd3 | undefined;
  #watcher: Watcher | undefined;
  #opened = false;
  #closed = false;
  #resyncing = false;
  /** The TTL etcd actually grants for ours (it may round up). */
  #grantedTtl: number | undefined;

  /** Live keys in the local copy. */
  readonly #known = new Map<string, Known>();
  /** Keys deleted locally, by delete revision, until the watch has gone past it (guards against late puts). */
  readonly #gone = new Map<string, number>();
  /** Instance key → lease of the tombstone a deregistration wrote for it. */
  readonly #tombstones = new Map<string, string>();
  /** Everything up to this revision is in the local copy; the watch resumes after it. */
  #revision = 0;

  #watchConnected = false;
  #watchProblem: string | undefined = 'the watch has not connected yet';
  #writeProblem: string | undefined;
  /** When etcd last answered a write's read: a write timing out soon after says etcd is busy, not gone. */
  #lastHeardAt = Number.NEGATIVE_INFINITY;

  constructor(endpoints: string[], options: EtcdStoreOptions) {
    if (endpoints.length === 0) throw new Error('EtcdStore needs at least one etcd endpoint');
    this.#endpoints = [...endpoints];
    this.#prefix = options.prefix ?? DEFAULT_PREFIX;
    this.#ttlSeconds = Math.max(1, Math.ceil(options.ttlSeconds));
    this.#clock = options.clock ?? systemClock;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? 4000;
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 1500;
    this.description = `etcd://${this.#endpoints.map(stripScheme).join(',')}`;
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  async open(): Promise<void> {
    if (this.#opened) throw new Error('EtcdStore.open() was already called');
    this.#opened = true;
    const etcd = await import('etcd3');
    this.#etcd = etcd;
    this.#client = new etcd.Etcd3({
      hosts: this.#endpoints,
      // Unary calls get a deadline per attempt (etcd3 retries on another member); streams none.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.#attemptTimeoutMs }),
      // Notice a silently dead connection (no FIN) under the watch within ~15 s.
      grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000 },
      faultHandling: {
        host: () => memberPolicy((error) => error instanceof Error && etcd.isRecoverableError(error), 1000),
        watchBackoff: watchBackoff(0),
      },
    });
    let snapshot: IRangeResponse;
    try {
      snapshot = await this.#bounded(this.#client.getAll().prefix(this.#prefix).exec());
    } catch (error) {
      this.#closed = true;
      this.#client.close();
      if (this.#isUnreachable(error)) {
        throw new StoreUnavailableError(
          `etcd is unreachable at ${this.#endpoints.join(',')}: ${describeCause(error)}. The catalog cannot be loaded: start etcd (or point --store at it), then start again.`,
        );
      }
      throw error;
    }
    this.#reconcile(snapshot);
    // Serve from here on; a watch that is slow to attach only shows as `degraded` until it does.
    await atMost(this.#watch(), this.#attemptTimeoutMs);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher) await atMost(watcher.cancel().catch(() => undefined), 1000);
    this.#client?.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Reads: the local copy only

  instances(name: string): readonly Instance[] {
    return this.#catalog.instances(name);
  }

  counts() {
    return this.#catalog.counts();
  }

  all(): ReadonlyMap<string, readonly Instance[]> {
    return this.#catalog.all();
  }

  servicesJson(): string {
    return this.#catalog.servicesJson();
  }

  subscribe(listener: RegistryListener): () => void {
    return this.#catalog.subscribe(listener);
  }

  health(): StoreHealth {
    const problem = this.#watchConnected ? this.#writeProblem : (this.#watchProblem ?? 'the etcd watch is disconnected');
    if (problem === undefined) return { status: 'ok', store: this.description };
    return {
      status: 'degraded',
      store: this.description,
      detail: `${problem}; serving the last known catalog (etcd revision ${this.#revision}, ${this.#catalog.size} instances)`,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  register(input: RegistrationInput): Promise<{ instance: Instance; created: boolean }> {
    return this.#write(async (client, write) => {
      const key = this.#key(input.name, input.url);
      let kv = await this.#get(client, key);
      this.#lastHeardAt = Date.now();
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const current = kv && this.#parse(kv);
        const now = this.#clock.now();
        // Reuse the instance's lease when it is alive and of our TTL; otherwise grant a new one.
        let lease: string | undefined;
        let ttl = 0;
        let alive = false;
        if (current && current.lease !== '0') {
          ttl = await this.#keepalive(client, current.lease);
          alive = ttl > 0;
          if (alive && (ttl === this.#ttlSeconds || ttl === this.#grantedTtl)) lease = current.lease;
        }
        if (lease === undefined) {
          if (write.abandoned) throw new WriteAbandonedError();
          const granted = await client.leaseClient.leaseGrant({ TTL: this.#ttlSeconds });
          lease = granted.ID;
          ttl = Number(granted.TTL);
          // etcd raises a TTL below its minimum (1 s becomes 2 s): remember what it gives us.
          this.#grantedTtl = ttl;
        }
        const next: StoredInstance = {
          name: input.name,
          url: input.url,
          // The last registration, as the memory store counts it (GET /services shows the newest).
          registeredAt: now,
          lastHeartbeat: now,
          expiresAt: now + ttl * 1000,
          metadata: input.metadata ?? (alive && current ? current.metadata : {}),
          lease,
        };
        if (write.abandoned) {
          if (current?.lease !== lease) this.#revokeQuietly(client, lease);
          throw new WriteAbandonedError();
        }
        write.sent.push({ key, value: JSON.stringify(next), before: kv, beforeInstance: alive ? current : undefined, lease });
        const result = await this.#compareAndPut(client, key, kv, next);
        if (result.ok && write.abandoned) {
          // etcd took it only after the caller was told it was refused (a stalled etcd resumed).
          this.#putBack(client, key, result.revision, kv, alive ? current : undefined, lease);
          throw new WriteAbandonedError();
        }
        if (result.ok) {
          if (current && current.lease !== lease && current.lease !== '0') this.#revokeQuietly(client, current.lease);
          return { instance: this.#applyPut(key, result.revision, next) ?? stripLease(next), created: !alive };
        }
        if (current?.lease !== lease) this.#revokeQuietly(client, lease);
        write.collided = true;
        kv = result.current;
        // Another registration of this very instance, with the same metadata, came first (a fleet
        // restarting, the same service through two registrars): it did what this one would do.
        const winner = kv && this.#parse(kv);
        if (winner && winner.lease !== '0' && (input.metadata === undefined || sameJson(winner.metadata, input.metadata))) {
          return { instance: stripLease(winner), created: false };
        }
        // Writers that collided would collide again in step: a random pause spreads them out.
        await sleep(Math.random() * CAS_JITTER_MS * (attempt + 1));
      }
      // Busy rather than broken: a 503 tells the caller (a heartbeat loop does) to try again.
      throw new StoreUnavailableError(
        `register ${input.name} ${input.url}: other writes changed it ${MAX_CAS_ATTEMPTS} times in a row while this one tried; try again`,
      );
    });
  }

  heartbeat(name: string, url?: string): Promise<Instance[]> {
    // A renewal that lands after its 503 only renews: nothing to put back.
    return this.#write(async (client, write) => {
      const targets = await this.#targets(client, name, url);
      this.#lastHeardAt = Date.now();
      const renewed = await Promise.all(targets.map((kv) => this.#renewOne(client, kv)));
      return renewed.filter((instance): instance is Instance => instance !== undefined);
    });
  }

  deregister(name: string, url?: string): Promise<Instance[]> {
    return this.#write(async (client, write) => {
      const targets = await this.#targets(client, name, url);
      this.#lastHeardAt = Date.now();
      const removed = await Promise.all(targets.map((kv) => this.#deregisterOne(client, kv)));
      return removed.filter((instance): instance is Instance => instance !== undefined);
    });
  }

  async #renewOne(client: Etcd3, kv: IKeyValue): Promise<Instance | undefined> {
    const key = kv.key.toString();
    const current = this.#parse(kv);
    if (!current || current.lease === '0') return undefined;
    const ttl = await this.#keepalive(client, current.lease);
    // The lease is gone: the instance expired (its key is deleted with the lease), nothing to renew.
    if (ttl <= 0) return undefined;
    const now = this.#clock.now();
    const next: StoredInstance = { ...current, lastHeartbeat: now, expiresAt: now + ttl * 1000 };
    const result = await this.#compareAndPut(client, key, kv, next);
    if (result.ok) return this.#applyPut(key, result.revision, next) ?? stripLease(next);
    // Another write to this instance came first: a heartbeat or a registration, which renewed it
    // as well, so this beat has done its work (the lease is kept alive above). Trying again would
    // only race the next beat; giving up would tell a live instance it is not registered (404).
    // Only an instance that is gone now (deregistered, expired) was not renewed.
    const now_ = result.current && this.#parse(result.current);
    return now_ && now_.lease !== '0' ? stripLease(now_) : undefined;
  }

  async #deregisterOne(client: Etcd3, first: IKeyValue): Promise<Instance | undefined> {
    const key = first.key.toString();
    let kv: IKeyValue | undefined = first;
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS && kv; attempt++) {
      const current = this.#parse(kv);
      const lease = kv.lease !== '0' ? kv.lease : undefined;
      const ops = [];
      // The tombstone tells every registrar's watch that this delete was a deregistration, not
      // an expiry. It rides on the instance's lease, which is therefore not revoked: it expires
      // on its own within a TTL and takes the tombstone with it.
      if (current && lease) {
        ops.push(
          client
            .put(key + TOMBSTONE_SUFFIX)
            .value(JSON.stringify({ name: current.name, url: current.url, lease, deregisteredAt: this.#clock.now() }))
            .lease(lease),
        );
      }
      ops.push(client.delete().key(key));
      const response = await client
        .if(key, 'Mod', '==', kv.mod_revision)
        .then(...ops)
        .else(client.get(key))
        .commit();
      if (response.succeeded) {
        if (lease) this.#tombstones.set(key, lease);
        const removed = this.#applyDelete(key, Number(response.header.revision), 'deregistered');
        return removed ?? (current && stripLease(current));
      }
      kv = elseKv(response);
    }
    return undefined;
  }

  /** The instance keys a heartbeat/deregistration targets, read from etcd (the local copy may lag by a few ms). */
  async #targets(client: Etcd3, name: string, url: string | undefined): Promise<IKeyValue[]> {
    if (url !== undefined) {
      const kv = await this.#get(client, this.#key(name, url));
      return kv ? [kv] : [];
    }
    const response = await client.getAll().prefix(`${this.#prefix}${name}/`).exec();
    return response.kvs.filter((kv) => {
      const key = kv.key.toString();
      return !key.endsWith(TOMBSTONE_SUFFIX) && this.#parse(kv)?.name === name;
    });
  }

  async #get(client: Etcd3, key: string): Promise<IKeyValue | undefined> {
    const response = await client.get(key).exec();
    return response.kvs[0];
  }

  /** Puts `next` if the key is still as read (`kv`), or still absent; else returns what is there now. */
  async #compareAndPut(
    client: Etcd3,
    key: string,
    kv: IKeyValue | undefined,
    next: StoredInstance,
  ): Promise<{ ok: true; revision: number } | { ok: false; current: IKeyValue | undefined }> {
    const condition = kv ? client.if(key, 'Mod', '==', kv.mod_revision) : client.if(key, 'Create', '==', 0);
    const response = await condition
      .then(client.put(key).value(JSON.stringify(next)).lease(next.lease))
      .else(client.get(key))
      .commit();
    if (response.succeeded) return { ok: true, revision: Number(response.header.revision) };
    return { ok: false, current: elseKv(response) };
  }

  /**
   * One keepalive for a lease by id (whichever registrar granted it). Returns the lease's TTL in
   * seconds, 0 when the lease no longer exists. etcd only offers keepalive as a stream, which
   * etcd3 does not retry on another member: this does, within the write's bound.
   */
  async #keepalive(client: Etcd3, lease: string): Promise<number> {
    const etcd = this.#etcd!;
    let lastError: unknown;
    for (let attempt = 0; attempt < this.#endpoints.length + 1; attempt++) {
      try {
        const stream = await client.leaseClient.leaseKeepAlive({ deadline: Date.now() + this.#attemptTimeoutMs });
        const response = await new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on('data', resolve);
          stream.on('error', (error) => reject(etcd.castGrpcError(error)));
          stream.write({ ID: lease });
        });
        stream.end();
        return Math.max(0, Number(response.TTL));
      } catch (error) {
        if (!this.#isUnreachable(error)) throw error;
        lastError = error;
      }
    }
    throw lastError;
  }

  /**
   * Undoes a registration etcd took after the caller was answered 503: the value before it is put
   * back (or the key deleted, when it made the instance), but only while the key is still as this
   * write left it. A registration retried since (the heartbeat loop retries a 503) is left alone.
   */
  #putBack(client: Etcd3, key: string, revision: number, before: IKeyValue | undefined, beforeInstance: StoredInstance | undefined, lease: string): void {
    const unchanged = client.if(key, 'Mod', '==', revision);
    const undo = before && beforeInstance ? unchanged.then(client.put(key).value(before.value).lease(beforeInstance.lease)) : unchanged.then(client.delete().key(key));
    undo.commit().then(
      (response) => {
        if (response.succeeded && beforeInstance?.lease !== lease) this.#revokeQuietly(client, lease);
      },
      () => undefined,
    );
  }

  /**
   * After a registration was answered 503: a put one of its tries sent may still be queued in a
   * stalled etcd (a try given up by the client is not withdrawn from etcd). For a while, each one
   * found in place, with exactly the value it wrote, is put back as it was. A write since (the
   * caller trying again) has another value, and is left alone.
   */
  #undoLatePuts(client: Etcd3, sent: SentPut[]): void {
    const watching = [...sent];
    const until = Date.now() + LATE_PUT_WATCH_MS;
    const look = async () => {
      for (const put of [...watching]) {
        let kv: IKeyValue | undefined;
        try {
          kv = await this.#bounded(this.#get(client, put.key), 1_000);
        } catch {
          continue; // Still away: look again.
        }
        if (kv?.value.toString() === put.value) {
          this.#putBack(client, put.key, Number(kv.mod_revision), put.before, put.beforeInstance, put.lease);
          watching.splice(watching.indexOf(put), 1);
        }
      }
      if (watching.length > 0 && Date.now() < until && !this.#closed) setTimeout(() => void look(), 500).unref();
    };
    setTimeout(() => void look(), 500).unref();
  }

  #revokeQuietly(client: Etcd3, lease: string): void {
    client.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
  }

  /** Runs one write with a bound, turning "etcd is not there" into StoreUnavailableError (HTTP 503). */
  async #write<T>(operation: (client: Etcd3, write: WriteAttempt) => Promise<T>): Promise<T> {
    const client = this.#client;
    if (!client || this.#closed) throw new Error(this.#closed ? 'the etcd store is closed' : 'EtcdStore.open() must be called first');
    const deadline = Date.now() + this.#writeTimeoutMs;
    const sent: SentPut[] = [];
    for (let attempt = 0; ; attempt++) {
      // One per try: only the try under way can still be abandoned.
      const write: WriteAttempt = { abandoned: false, collided: false, sent };
      const running = operation(client, write);
      try {
        const result = await this.#bounded(running, Math.max(1, deadline - Date.now()));
        this.#writeProblem = undefined;
        this.#lastHeardAt = Date.now();
        return result;
      } catch (error) {
        // The caller is told refused: a put a try sent, which etcd takes its time with, must not land.
        const refused = (message: string) => {
          if (sent.length > 0) this.#undoLatePuts(client, sent);
          return new StoreUnavailableError(message);
        };
        if (error instanceof EtcdTimeoutError) {
          // Told refused from here on; if etcd was only slow, it answers this one later: then a
          // failed write no longer says anything about now.
          write.abandoned = true;
          running.then(
            () => (this.#writeProblem = undefined),
            (late: unknown) => {
              if (late instanceof WriteAbandonedError) this.#writeProblem = undefined;
            },
          );
          if (write.collided) {
            throw refused(`other writes to the same instance kept changing it for ${this.#writeTimeoutMs} ms while this one tried; try again`);
          }
          // etcd answered a call (this write's or another's) within the bound: it is there, only too busy.
          if (Date.now() - this.#lastHeardAt < this.#writeTimeoutMs) {
            throw refused(`etcd is busy: it answers, but this write did not finish within ${this.#writeTimeoutMs} ms; try again`);
          }
        }
        if (!this.#isUnreachable(error)) throw error;
        // etcd3 gives up after three quick attempts, which a leader election (the leader of three
        // stopped: ~1-2 s without a leader) easily uses up. Every write re-reads and compares
        // before it changes anything, so trying it again is safe: do so within the write's bound.
        const pause = Math.min(100 * 2 ** attempt, 500);
        if (!this.#closed && deadline - Date.now() > pause + 100) {
          await sleep(pause);
          continue;
        }
        // The last attempt ran into the write's bound: say so for the whole write, not what was left of it.
        const cause = error instanceof EtcdTimeoutError ? new EtcdTimeoutError(`no answer within ${this.#writeTimeoutMs} ms`) : error;
        this.#writeProblem = `the last write failed: etcd is unreachable (${describeCause(cause)})`;
        throw refused(this.#unreachableMessage(cause));
      }
    }
  }

  async #bounded<T>(promise: Promise<T>, ms = this.#writeTimeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EtcdTimeoutError(`no answer within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #isUnreachable(error: unknown): boolean {
    if (!(error instanceof Error)) return false;
    if (error instanceof EtcdTimeoutError) return true;
    // Every member failed just now and is being skipped.
    if (error instanceof EtcdMemberSkippedError || error.name === 'BrokenCircuitError') return true;
    const etcd = this.#etcd;
    if (etcd && etcd.isRecoverableError(error)) return true; // unavailable, deadline, cancelled, ...
    // etcd's own "no leader" / "request timed out": the cluster has lost quorum.
    return /etcdserver: (no leader|request timed out|leader changed)/.test(error.message);
  }

  #unreachableMessage(error: unknown): string {
    return `etcd is unreachable at ${this.#endpoints.join(',')}: ${describeCause(error)}. Writes are refused until it is back; reads serve the last known catalog.`;
  }

  // ---------------------------------------------------------------------------------------------
  // The local copy

  #key(name: string, url: string): string {
    return `${this.#prefix}${name}/${encodeURIComponent(url)}`;
  }

  #parse(kv: IKeyValue): StoredInstance | undefined {
    let value: unknown;
    try {
      value = JSON.parse(kv.value.toString());
    } catch {
      return undefined;
    }
    if (!isStoredShape(value)) return undefined;
    // A value that does not belong under its key is not ours to serve.
    if (kv.key.toString() !== this.#key(value.name, value.url)) return undefined;
    const lease = kv.lease && kv.lease !== '0' ? kv.lease : typeof value.lease === 'string' ? value.lease : '0';
    return {
      name: value.name,
      url: value.url,
      registeredAt: value.registeredAt,
      lastHeartbeat: value.lastHeartbeat,
      expiresAt: value.expiresAt,
      metadata: value.metadata,
      lease,
    };
  }

  /** Applies a put at `revision`; ignored (undefined) when the local copy already has that revision or a later one. */
  #applyPut(key: string, revision: number, stored: StoredInstance): Instance | undefined {
    const known = this.#known.get(key);
    if (revision <= (known?.revision ?? this.#gone.get(key) ?? 0)) return undefined;
    this.#gone.delete(key);
    this.#known.set(key, { name: stored.name, url: stored.url, lease: stored.lease, revision });
    const instance = stripLease(stored);
    const existing = this.#catalog.get(instance.name, instance.url);
    // A renewal is not a change: it moves the times without an event.
    if (existing && existing.registeredAt === instance.registeredAt && sameMetadata(existing.metadata, instance.metadata)) {
      return this.#catalog.renew(instance.name, instance.url, instance.lastHeartbeat, instance.expiresAt);
    }
    return this.#catalog.put(instance).instance;
  }

  /**
   * Applies a delete at `revision`. Without an explicit reason it is a deregistration when a
   * tombstone for this very lease came with it, and an expiry (eviction) otherwise.
   */
  #applyDelete(key: string, revision: number, reason?: 'deregistered' | 'evicted'): Instance | undefined {
    const known = this.#known.get(key);
    if (revision <= (known?.revision ?? this.#gone.get(key) ?? 0)) return undefined;
    this.#known.delete(key);
    this.#gone.set(key, revision);
    if (!known) return undefined;
    const why = reason ?? (this.#tombstones.get(key) === known.lease ? 'deregistered' : 'evicted');
    return this.#catalog.remove(known.name, known.url, why);
  }

  /** Makes the local copy equal to a full read of the prefix, emitting the differences. */
  #reconcile(snapshot: IRangeResponse): void {
    const revision = Number(snapshot.header.revision);
    const present = new Map<string, { kv: IKeyValue; stored: StoredInstance }>();
    this.#tombstones.clear();
    for (const kv of snapshot.kvs) {
      const key = kv.key.toString();
      if (key.endsWith(TOMBSTONE_SUFFIX)) {
        if (kv.lease !== '0') this.#tombstones.set(key.slice(0, -TOMBSTONE_SUFFIX.length), kv.lease);
        continue;
      }
      const stored = this.#parse(kv);
      if (stored) present.set(key, { kv, stored });
    }
    for (const key of [...this.#known.keys()]) {
      if (!present.has(key)) this.#applyDelete(key, revision);
    }
    // Oldest registration first, as etcd saw them.
    const ordered = [...present.entries()].sort(
      ([, a], [, b]) => Number(a.kv.create_revision) - Number(b.kv.create_revision),
    );
    for (const [key, { kv, stored }] of ordered) this.#applyPut(key, Number(kv.mod_revision), stored);
    this.#revision = Math.max(this.#revision, revision);
    this.#pruneGone();
  }

  /** Starts the watch after the local copy's revision; resolves when it is attached. */
  #watch(): Promise<void> {
    const client = this.#client!;
    const watcher = client.watch().prefix(this.#prefix).startRevision(String(this.#revision + 1)).watcher();
    this.#watcher = watcher;
    watcher.on('connected', () => {
      this.#watchConnected = true;
      this.#watchProblem = undefined;
      // etcd answers again: a failed write no longer says anything about now.
      this.#writeProblem = undefined;
    });
    watcher.on('disconnected', (error: Error) => {
      this.#watchConnected = false;
      this.#watchProblem = `the etcd watch is disconnected (${describeCause(error)})`;
      if (this.#closed) {
        void watcher.cancel();
        return;
      }
      // etcd3 resumes from the revision in the last response header + 1. Headers of a catch-up
      // batch (and of the "created" answer) carry the current revision, not the last event's, so
      // a second disconnect during a catch-up would skip events: resume after what was applied.
      (watcher as unknown as { request: { start_revision?: string } }).request.start_revision = String(this.#revision + 1);
    });
    watcher.on('data', (response: IWatchResponse) => {
      try {
        this.#onWatch(response);
      } catch (error) {
        console.error(`svcmesh: etcd watch event could not be applied: ${(error as Error).message}`);
      }
    });
    watcher.on('error', (error: Error) => {
      // etcd cancelled the watch, typically because the revision to resume from was compacted
      // away: load everything again and diff.
      watcher.removeAllListeners();
      if (this.#watcher === watcher) this.#watcher = undefined;
      this.#watchConnected = false;
      this.#watchProblem = `the etcd watch was cancelled (${describeCause(error)}); reloading the catalog`;
      void this.#resync();
    });
    return new Promise((resolve) => watcher.once('connected', () => resolve()));
  }

  async #resync(): Promise<void> {
    if (this.#resyncing) return;
    this.#resyncing = true;
    try {
      for (let attempt = 0; !this.#closed; attempt++) {
        try {
          const snapshot = await this.#bounded(this.#client!.getAll().prefix(this.#prefix).exec());
          if (this.#closed) return;
          this.#reconcile(snapshot);
          void this.#watch();
          return;
        } catch (error) {
          this.#watchProblem = `cannot reload the catalog from etcd (${describeCause(error)})`;
          await sleep(Math.min(2000, 100 * 2 ** attempt));
        }
      }
    } finally {
      this.#resyncing = false;
    }
  }

  #onWatch(response: IWatchResponse): void {
    const events = response.events ?? [];
    if (events.length === 0) {
      // A progress notification: sent only to a watcher that is caught up.
      this.#revision = Math.max(this.#revision, Number(response.header.revision));
      this.#pruneGone();
      return;
    }
    // Events come in revision order; one revision (one transaction) is applied as a unit, its
    // tombstones first, so a delete knows whether a deregistration came with it.
    let i = 0;
    while (i < events.length) {
      const revision = Number(events[i]!.kv.mod_revision);
      let j = i;
      while (j < events.length && Number(events[j]!.kv.mod_revision) === revision) j++;
      const group = events.slice(i, j);
      for (const event of group) {
        const key = event.kv.key.toString();
        if (!key.endsWith(TOMBSTONE_SUFFIX)) continue;
        const instanceKey = key.slice(0, -TOMBSTONE_SUFFIX.length);
        if (event.type === 'Put' && event.kv.lease !== '0') this.#tombstones.set(instanceKey, event.kv.lease);
        else if (event.type === 'Delete') this.#tombstones.delete(instanceKey);
      }
      for (const event of group) {
        const key = event.kv.key.toString();
        if (key.endsWith(TOMBSTONE_SUFFIX)) continue;
        if (event.type === 'Put') {
          const stored = this.#parse(event.kv);
          if (stored) this.#applyPut(key, revision, stored);
        } else {
          this.#applyDelete(key, revision);
        }
      }
      this.#revision = Math.max(this.#revision, revision);
      i = j;
    }
    this.#pruneGone();
  }

  /** Forget deletes the watch has gone past: no older event for those keys can arrive any more. */
  #pruneGone(): void {
    for (const [key, revision] of this.#gone) if (revision <= this.#revision) this.#gone.delete(key);
  }
}

function stripLease(stored: StoredInstance): Instance {
  const { lease: _lease, ...instance } = stored;
  return instance;
}

function elseKv(response: ITxnResponse): IKeyValue | undefined {
  return response.responses[0]?.response_range?.kvs[0];
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function describeCause(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // grpc-js appends an empty "Resolution note: " to connection errors.
  const message = error.message.replace(/^Error: /, '').replace(/\.? Resolution note: ?$/, '');
  // "4 DEADLINE_EXCEEDED: Deadline exceeded after 1.501s,Waiting for LB pick": no member answered in time.
  const deadline = /^\d+ DEADLINE_EXCEEDED: Deadline exceeded after ([\d.]+)s/.exec(message);
  if (deadline) return `no member answered within ${deadline[1]} s (gRPC DEADLINE_EXCEEDED)`;
  return message;
}

const isStoredShape = (value: unknown): value is Instance & { lease?: unknown } => isInstance(value);
