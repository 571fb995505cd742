/**
 * One listener on a long-lived signal (a shutdown, a drain time running out) for the many
 * requests in flight that each have something to do then. A listener per request would pass an
 * AbortSignal's listener limit as soon as eleven run at once (Node then warns on stderr), and
 * cost each request an add and a remove on an EventTarget.
 */
export class AbortFanout {
  readonly #pending = new Set<() => void>();
  #cut = false;
  #reason: unknown;

  constructor(signal?: AbortSignal) {
    if (!signal) return;
    if (signal.aborted) {
      this.#cut = true;
      this.#reason = signal.reason;
      return;
    }
    signal.addEventListener(
      'abort',
      () => {
        this.#cut = true;
        this.#reason = signal.reason;
        const pending = [...this.#pending];
        this.#pending.clear();
        for (const then of pending) then();
      },
      { once: true },
    );
  }

  /** The signal's reason, once it is aborted (for a drain, the words the callers read). */
  get reason(): string {
    return String(this.#reason);
  }

  /** Runs `then` when the signal aborts (at once if it has); returns what forgets it. */
  add(then: () => void): () => void {
    if (this.#cut) {
      then();
      return noop;
    }
    this.#pending.add(then);
    return () => this.#pending.delete(then);
  }
}

const noop = () => {};
