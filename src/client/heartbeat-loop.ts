import { isNotARegistrar } from '../error-hint.js';
import { HttpError } from './http.js';
import type { RegistrarClient } from './registrar-client.js';

/** The interval when none is given, unless the registrar's TTL asks for a shorter one. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 120_000;

/** Heartbeats between two looks at the registrar's TTL (one small GET /health), besides after a re-registration. */
const RECHECK_TTL_EVERY = 10;

/** The longest wait between two checks of the service, when there is a check. */
const MAX_CHECK_INTERVAL_MS = 10_000;

/**
 * How often a registrar that keeps its catalog in memory only is asked whether it restarted (a
 * small GET /health): one that did has forgotten every instance, and waiting for the next beat
 * (two minutes by default) would leave the service unknown by name that long.
 */
const RESTART_PROBE_MS = 15_000;

export interface HeartbeatLoopOptions {
  client: RegistrarClient;
  name: string;
  url: string;
  metadata?: Record<string, unknown>;
  /**
   * The interval the user chose. Without it: 120 s (the documented default, two and a half beats
   * per default TTL of 300 s), or a third of the registrar's TTL when that TTL is under 240 s, so
   * a registrar started with `--ttl 30` does not evict the instance between beats.
   */
  intervalMs?: number;
  /** After a failed call, the next try comes sooner than a full interval. */
  retryMs?: number;
  /** Between beats, how often a memory-store registrar is asked whether it restarted. Default 15 s. */
  restartProbeMs?: number;
  /**
   * A registration the registrar refused (400, 401, 403): retrying cannot fix a bad token or a
   * refused host. So too, before the first registration went through, an answer that says the
   * URL is not a registrar's (the Ollama service's port 5000 for 5001, Ollama's own 11434): once
   * one did, the same answer is more likely a proxy's moment and is retried. Given this, the loop
   * stops and hands the error over; without it, it retries.
   */
  onRefused?: (error: HttpError) => void;
  /**
   * Whether the service itself answers, asked before each heartbeat: undefined when it does, the
   * reason when not. A failing service is deregistered at once (forwards stop going to it) and
   * registered again when it passes. With a check, a tick comes at least every 10 s.
   */
  check?: () => Promise<string | undefined>;
  log: (line: string) => void;
  warn: (line: string) => void;
}

export interface HeartbeatLoop {
  /** Stops the loop, cutting a call still in flight short, so nothing registers after it. */
  stop(): Promise<void>;
  /**
   * Stops, then deregisters the instance (on shutdown) when it is or may be registered. A failure
   * is warned about, not thrown: false then, since the instance stays until the TTL evicts it.
   */
  leave(): Promise<boolean>;
  /** Whether the instance is, or may be, registered: what quitting without leave() would leave behind. */
  holdsRegistration(): boolean;
}

/**
 * Registers, then keeps the registration alive. Each heartbeat carries the instance's URL, so a
 * registrar that restarted (or evicted it) registers it again in that same call.
 */
export function startHeartbeatLoop(options: HeartbeatLoopOptions): HeartbeatLoop {
  const { client, name, url } = options;
  let intervalMs = options.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  let registered = false;
  /** Whether a registration went through once: the URL is a registrar's, whatever it says later. */
  let everRegistered = false;
  /**
   * A registration the registrar answered with a 5xx, which may still have taken effect (a file
   * store answers 503 when it cannot save a change it serves anyway). Leaving then deregisters all
   * the same, or the instance would linger for a whole TTL. One that got no answer at all (refused,
   * timed out, cut short by leaving) is taken as not registered: a deregistration would wait on the
   * same silent registrar, and should it have taken the instance after all, its TTL evicts it.
   */
  let mayBeRegistered = false;
  /** Aborted on stop: a registrar that does not answer is not waited for, up to a call's whole bound, after Ctrl-C. */
  const stopping = new AbortController();
  let stopped = false;
  let knownTtl: number | undefined;
  let beats = 0;
  let failing = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  let ticking = false;
  /** When the registrar last said it started (`started_at` of /health), while it keeps its catalog in memory only. */
  let registrarStartedAt: string | undefined;
  let probe: NodeJS.Timeout | undefined;
  const hasMetadata = Object.keys(options.metadata ?? {}).length > 0;

  async function register() {
    let answer: Awaited<ReturnType<typeof client.register>>;
    try {
      answer = await client.register(name, url, options.metadata, stopping.signal);
    } catch (error) {
      if (error instanceof HttpError && error.status !== undefined && error.status >= 500) mayBeRegistered = true;
      throw error;
    }
    registered = true;
    everRegistered = true;
    options.log(answer.json.message);
    await fitIntervalToTtl();
  }

  /**
   * Reads the registrar's TTL (after a registration, and every few beats) to fit the interval to
   * it, or warn; and whether it keeps its catalog in memory only, to notice a restart between beats.
   */
  async function fitIntervalToTtl() {
    let health: Record<string, unknown>;
    try {
      health = (await client.health(stopping.signal)).json;
    } catch {
      return; // An older registrar, or a moment's trouble: keep the interval there is.
    }
    watchForRestart(health);
    const ttl = health.ttl_seconds;
    if (typeof ttl !== 'number' || !(ttl > 0) || ttl === knownTtl) return;
    knownTtl = ttl;
    const ttlMs = ttl * 1000;
    if (options.intervalMs === undefined) {
      intervalMs = ttlMs >= 2 * DEFAULT_HEARTBEAT_INTERVAL_MS ? DEFAULT_HEARTBEAT_INTERVAL_MS : Math.max(250, Math.floor(ttlMs / 3));
      options.log(`Heartbeat every ${seconds(intervalMs)} s (the registrar evicts after ${ttl} s without one)`);
    } else if (options.intervalMs >= ttlMs) {
      options.warn(
        `--heartbeat-interval ${seconds(options.intervalMs)} s is not shorter than the registrar's TTL of ${ttl} s: ` +
          `${name} will be evicted between heartbeats. Use ${seconds(Math.floor(ttlMs / 3))} s (a third of the TTL), or leave it out`,
      );
    }
  }

  async function beat() {
    try {
      // The metadata goes along so that a registrar that lost the instance registers it whole.
      const answer = await client.heartbeat(name, url, hasMetadata ? options.metadata : undefined, stopping.signal);
      beats += 1;
      if (answer.reregistered) {
        // The registrar restarted (or evicted it): it may have come back with another --ttl.
        options.log(`The registrar at ${client.baseUrl} had lost ${name} at ${url}: registered again`);
        await fitIntervalToTtl();
      } else if (beats % RECHECK_TTL_EVERY === 0) await fitIntervalToTtl();
    } catch (error) {
      // An older registrar that does not heal from the URL says 404: register again.
      if (error instanceof HttpError && error.status === 404) return register();
      throw error;
    }
  }

  /** Runs the check; false when the service failed it (and was taken out of the catalog). */
  async function passesCheck(): Promise<boolean> {
    if (!options.check) return true;
    const failure = await options.check();
    if (failure === undefined) {
      if (failing) options.log(`${name} at ${url} passes its check again`);
      failing = false;
      return true;
    }
    if (!failing) {
      failing = true;
      options.warn(`${name} at ${url} fails its check (${failure}): taking it out of the registry until it passes`);
    }
    if (registered) {
      registered = false;
      await client.deregister(name, url).catch(() => {
        // Not registered there any more, or the registrar is away: it expires by itself then.
      });
    }
    return false;
  }

  async function tick() {
    // Read after the call: a registration may have just fitted the interval to the TTL.
    let next: number;
    try {
      if (await passesCheck()) await (registered ? beat() : register());
      next = options.check ? Math.min(intervalMs, MAX_CHECK_INTERVAL_MS) : intervalMs;
    } catch (error) {
      // Cut short by stop(): not a failure to report, nor to retry.
      if (stopped) return;
      if (options.onRefused && error instanceof HttpError && (isRefusal(error.status) || (!everRegistered && isNotARegistrar(error)))) {
        stopped = true;
        options.onRefused(error);
        return;
      }
      next = Math.min(options.retryMs ?? 5_000, intervalMs);
      const what = registered ? 'Heartbeat' : 'Registration';
      options.warn(`${what} failed: ${(error as Error).message.replace(/\.$/, '')}. Trying again in ${seconds(next)} s`);
    }
    if (!stopped) {
      timer = setTimeout(run, next);
    }
  }

  function run() {
    ticking = true;
    inFlight = tick().finally(() => (ticking = false));
  }

  /**
   * A registrar with a memory store forgets every instance when it restarts: asked now and then,
   * one that says it started at another time gets a beat at once, which registers this instance
   * again. With a file or etcd store a restart loses nothing, and nothing is asked.
   */
  function watchForRestart(health: Record<string, unknown>) {
    const startedAt = typeof health.started_at === 'string' && health.store === 'memory' ? health.started_at : undefined;
    registrarStartedAt = startedAt;
    if (startedAt === undefined || probe || stopped) return;
    probe = setInterval(() => {
      if (ticking || stopped || registrarStartedAt === undefined) return;
      client.health().then(
        ({ json }) => {
          if (typeof json.started_at !== 'string' || json.started_at === registrarStartedAt || ticking || stopped) return;
          registrarStartedAt = json.started_at;
          clearTimeout(timer);
          run();
        },
        () => {
          // Away now: the next beat finds it, or says so.
        },
      );
    }, options.restartProbeMs ?? RESTART_PROBE_MS);
    probe.unref();
  }

  async function stop() {
    stopped = true;
    clearTimeout(timer);
    clearInterval(probe);
    stopping.abort();
    await inFlight;
  }

  run();
  return {
    stop,
    async leave() {
      // Heartbeats stop first (one in flight is cut short), so none registers it again afterwards.
      await stop();
      // Never registered, or taken out by a failing check: there is nothing to remove.
      if (!registered && !mayBeRegistered) return true;
      try {
        options.log((await client.deregister(name, url)).json.message);
        return true;
      } catch (error) {
        // A registration that did not take after all: nothing is left behind.
        if (!registered && error instanceof HttpError && error.status === 404) return true;
        // "may": a registrar that was only slow (paused, say) can still act on the request it took.
        options.warn(
          `Could not deregister ${name} at ${url} from ${client.baseUrl}: ${(error as Error).message.replace(/\.$/, '')}. It may stay registered there until the registrar's TTL evicts it`,
        );
        return false;
      }
    },
    holdsRegistration: () => registered || mayBeRegistered,
  };
}

function isRefusal(status: number | undefined): boolean {
  return status === 400 || status === 401 || status === 403;
}

function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}
