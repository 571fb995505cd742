import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { EVENTS_KEEPALIVE_MS } from '../events-keepalive.js';
import type { Registry } from '../registry/registry.js';
import type { RegistryEvent } from '../registry/types.js';
import type { AbortFanout } from './abort-fanout.js';
import { instanceJson, servicesText } from './wire.js';

/** Changes held for one watcher that is not reading, before it is sent a fresh snapshot instead. */
export const DEFAULT_MAX_BACKLOG = 10_000;
/**
 * And the most they may weigh, as JSON, roughly: 10 000 changes of instances carrying 60 KB of
 * metadata each would hold 600 MB for one watcher that stopped reading.
 */
export const DEFAULT_MAX_BACKLOG_BYTES = 4 * 1024 * 1024;

export interface BacklogLimits {
  events?: number;
  bytes?: number;
}

/** What an event adds to a backlog, roughly: its metadata's JSON and the rest of its line. */
const EVENT_OVERHEAD_BYTES = 256;
const metadataBytes = new WeakMap<object, number>();
function weightOf(event: RegistryEvent): number {
  const { metadata } = event.instance;
  let bytes = metadataBytes.get(metadata);
  if (bytes === undefined) {
    bytes = JSON.stringify(metadata).length;
    metadataBytes.set(metadata, bytes);
  }
  return EVENT_OVERHEAD_BYTES + bytes;
}

/** How long a snapshot may be handed to further watchers when nothing changed meanwhile. */
const SNAPSHOT_SHARE_MS = 1_000;
const snapshots = new WeakMap<Registry, { data: string; at: number; changes: number }>();

/**
 * The snapshot's data, built once for the watchers that (re)connect within a second of each other
 * with no change in between. At 100 000 instances it is 18 MB and 0.3-0.5 s of CPU (measured):
 * 50 dashboards reconnecting at once, after a proxy restart, would otherwise stall the registrar
 * for 15-25 s. Heartbeats are not changes, so the times in a shared snapshot are at most 1 s old.
 */
function sharedSnapshot(registry: Registry): string {
  const cached = snapshots.get(registry);
  if (cached && cached.changes === registry.changes && performance.now() - cached.at < SNAPSHOT_SHARE_MS) return cached.data;
  const data = `{"type":"snapshot","services":${servicesText(registry.all(), registry)}}`;
  // Counted after the read: reading the catalog evicts what has expired, and those are in it.
  snapshots.set(registry, { data, at: performance.now(), changes: registry.changes });
  return data;
}

/**
 * `GET /events`: Server-Sent Events. A `snapshot` of the whole catalog comes first, so a watcher
 * needs no separate list call (and a reconnecting one simply starts over); then one event per
 * change. Each event's data carries its `type` too, so a script reading only the data lines
 * (`svcmesh services --watch --json`) still knows what happened. A watcher too slow for the
 * changes gets a new `snapshot` in their place. Ends when the client goes or the server shuts down.
 */
export function eventStream(c: Context, registry: Registry, shutdown: AbortFanout, limits: BacklogLimits = {}): Response {
  const maxEvents = limits.events ?? DEFAULT_MAX_BACKLOG;
  const maxBytes = limits.bytes ?? DEFAULT_MAX_BACKLOG_BYTES;
  return streamSSE(c, async (stream) => {
    let id = 0;
    const snapshotData = () => sharedSnapshot(registry);
    // Taken before subscribing, in the same tick: reading the catalog evicts what has expired, and
    // those evictions belong before the snapshot (which no longer holds them), not after it.
    let snapshot: string | undefined = snapshotData();
    let queue: RegistryEvent[] = [];
    let queuedBytes = 0;
    let wake: (() => void) | undefined;
    // A watcher that stopped reading (a suspended `--watch`, a frozen laptop) would otherwise
    // hold every change from then on: past the limits the changes are dropped, and the watcher
    // gets a fresh snapshot when it reads again, as after a reconnect.
    let behind = false;
    const unsubscribe = registry.subscribe((event) => {
      if (behind) return;
      const weight = weightOf(event);
      if (queue.length >= maxEvents || queuedBytes + weight > maxBytes) {
        behind = true;
        queue = [];
        queuedBytes = 0;
      } else {
        queue.push(event);
        queuedBytes += weight;
      }
      wake?.();
    });
    let forgetShutdown = () => {};
    const closed = new Promise<void>((resolve) => {
      stream.onAbort(resolve);
      forgetShutdown = shutdown.add(resolve);
    });
    let quiet = false;
    let isClosed = false;
    void closed.then(() => {
      isClosed = true;
      wake?.();
    });
    // A comment line now and then keeps proxies from closing a quiet connection, and tells the
    // watcher the registrar is still there (it gives up after EVENTS_SILENCE_MS without a byte).
    const keepAlive = setInterval(() => {
      quiet = true;
      wake?.();
    }, EVENTS_KEEPALIVE_MS);
    try {
      while (!isClosed && !stream.aborted) {
        if (behind) {
          // Taken in the same tick as the flag is cleared: changes from now on come after it.
          behind = false;
          queue = [];
          queuedBytes = 0;
          snapshot = snapshotData();
        }
        if (snapshot !== undefined) {
          const data = snapshot;
          snapshot = undefined;
          await stream.writeSSE({ event: 'snapshot', id: String(++id), data });
        }
        while (queue.length > 0 && !behind) {
          const batch = queue;
          queue = [];
          queuedBytes = 0;
          for (const event of batch) {
            // Fell behind while this batch was being written: the coming snapshot holds the rest.
            if (behind) break;
            const data = JSON.stringify({ type: event.type, name: event.instance.name, instance: instanceJson(event.instance, registry) });
            await stream.writeSSE({ event: event.type, id: String(++id), data });
          }
        }
        if (quiet) {
          quiet = false;
          await stream.write(': keep-alive\n\n');
        }
        if (queue.length === 0 && !behind && !isClosed) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      clearInterval(keepAlive);
      unsubscribe();
      forgetShutdown();
    }
  });
}
