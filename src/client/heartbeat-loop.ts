import { HttpError } from './http.js';
import type { RegistrarClient } from './registrar-client.js';

export interface HeartbeatLoopOptions {
  client: RegistrarClient;
  name: string;
  url: string;
  metadata?: Record<string, unknown>;
  intervalMs: number;
  /** After a failed call, the next try comes sooner than a full interval. */
  retryMs?: number;
  log: (line: string) => void;
  warn: (line: string) => void;
}

export interface HeartbeatLoop {
  /** Stops the loop and waits for a call still in flight, so nothing registers after it. */
  stop(): Promise<void>;
}

/**
 * Registers, then keeps the registration alive. Each heartbeat carries the instance's URL, so a
 * registrar that restarted (or evicted it) registers it again in that same call.
 */
export function startHeartbeatLoop(options: HeartbeatLoopOptions): HeartbeatLoop {
  const { client, name, url } = options;
  const retryMs = Math.min(options.retryMs ?? 5_000, options.intervalMs);
  let registered = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();

  async function register() {
    const answer = await client.register(name, url, options.metadata);
    registered = true;
    options.log(answer.json.message);
  }

  async function beat() {
    try {
      await client.heartbeat(name, url);
    } catch (error) {
      // An older registrar that does not heal from the URL says 404: register again.
      if (error instanceof HttpError && error.status === 404) return register();
      throw error;
    }
  }

  async function tick() {
    let next = options.intervalMs;
    try {
      await (registered ? beat() : register());
    } catch (error) {
      next = retryMs;
      const what = registered ? 'Heartbeat' : 'Registration';
      options.warn(`${what} failed: ${(error as Error).message}. Trying again in ${Math.round(next / 1000)} s`);
    }
    if (!stopped) {
      timer = setTimeout(run, next);
    }
  }

  function run() {
    inFlight = tick();
  }

  run();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
    },
  };
}
