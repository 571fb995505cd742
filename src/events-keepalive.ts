/**
 * The two ends of `/events` agree on time here, so neither changes without the other: the
 * registrar sends a `: keep-alive` comment this often on a quiet stream, and a watcher that hears
 * nothing at all for several of these periods takes the connection for lost.
 */
export const EVENTS_KEEPALIVE_MS = 15_000;

/**
 * Three keep-alives missed: no busy registrar is that late, but a stopped one (`kill -STOP`), a
 * network partition or a stuck proxy holds the connection open and says nothing for ever.
 */
export const EVENTS_SILENCE_MS = 3 * EVENTS_KEEPALIVE_MS;
