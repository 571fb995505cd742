import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Registry } from '../registry/registry.js';
import type { RegistryEvent } from '../registry/types.js';
import { catalogJson, instanceJson } from './wire.js';

const KEEPALIVE_MS = 15_000;

/**
 * `GET /events`: Server-Sent Events. A `snapshot` of the whole catalog comes first, so a watcher
 * needs no separate list call (and a reconnecting one simply starts over); then one event per
 * change. Each event's data carries its `type` too, so a script reading only the data lines
 * (`svcmesh services --watch --json`) still knows what happened. Ends when the client goes or
 * the server shuts down.
 */
export function eventStream(c: Context, registry: Registry, shutdown: AbortSignal): Response {
  return streamSSE(c, async (stream) => {
    let id = 0;
    // Taken before subscribing, in the same tick: reading the catalog evicts what has expired, and
    // those evictions belong before the snapshot (which no longer holds them), not after it.
    const snapshot = JSON.stringify({ type: 'snapshot', ...catalogJson(registry.all()) });
    const queue: RegistryEvent[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = registry.subscribe((event) => {
      queue.push(event);
      wake?.();
    });
    const closed = new Promise<void>((resolve) => {
      stream.onAbort(resolve);
      if (shutdown.aborted) resolve();
      shutdown.addEventListener('abort', () => resolve(), { once: true });
    });
    let quiet = false;
    let isClosed = false;
    void closed.then(() => {
      isClosed = true;
      wake?.();
    });
    // A comment line now and then keeps proxies from closing a quiet connection.
    const keepAlive = setInterval(() => {
      quiet = true;
      wake?.();
    }, KEEPALIVE_MS);
    try {
      await stream.writeSSE({ event: 'snapshot', id: String(++id), data: snapshot });
      while (!isClosed && !stream.aborted) {
        while (queue.length > 0) {
          const event = queue.shift()!;
          const data = JSON.stringify({ type: event.type, name: event.instance.name, instance: instanceJson(event.instance) });
          await stream.writeSSE({ event: event.type, id: String(++id), data });
        }
        if (quiet) {
          quiet = false;
          await stream.write(': keep-alive\n\n');
        }
        if (queue.length === 0 && !isClosed) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      clearInterval(keepAlive);
      unsubscribe();
    }
  });
}
