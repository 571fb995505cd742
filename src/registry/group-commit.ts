export interface GroupCommitOptions {
  /**
   * How long a change that may be written behind waits at least, so that a burst of them costs one
   * save. It waits ten times as long as the last save took if that is longer, so that saving what
   * may be written behind never takes more than a tenth of the process's time, however large the
   * snapshot (heartbeats renew something all the time).
   */
  behindMs: number;
  /** How long after a failed save it is tried again, for as long as saving fails. */
  retryMs: number;
  /** Told when saving starts to fail, or fails another way, but not again on each retry. */
  onFailure?: (error: Error) => void;
  /** Told when a save works again after failing. */
  onRecovery?: () => void;
}

interface Waiters {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

function waiters(): Waiters {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Saves whole snapshots, one at a time, for many changes at once. A change that must be on disk
 * before it is acknowledged waits (`now`) for the next save that begins after it; every change
 * that arrives while a save is running shares the one that follows, so a burst of N changes costs
 * two saves, not N. A change that may be lost in a crash (`soon`) is saved within `behindMs`. A
 * save that fails fails its waiters, is remembered (`failure`), and is tried again every
 * `retryMs` until it works, with or without further changes.
 */
export class GroupCommit {
  readonly #save: () => Promise<void>;
  readonly #options: GroupCommitOptions;
  #running: Promise<void> | undefined;
  /** Who waits for the next save. */
  #next: Waiters | undefined;
  /** Something changed since the last save began. */
  #dirty = false;
  /** The save written behind, or the retry of one that failed: at most one is pending. */
  #timer: NodeJS.Timeout | undefined;
  #failure: Error | undefined;
  #closed = false;
  #lastSaveMs = 0;

  /** `save` writes what is current when it is called: changes after that are the next save's. */
  constructor(save: () => Promise<void>, options: GroupCommitOptions) {
    this.#save = save;
    this.#options = options;
  }

  /** The last save's error while saving fails; undefined once one works. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Resolves once a save that began after this call has worked; rejects with its error. */
  now(): Promise<void> {
    this.#dirty = true;
    this.#next ??= waiters();
    const { promise } = this.#next;
    if (!this.#running) this.#start();
    return promise;
  }

  /** Saves within `behindMs` (or at the next retry while saving fails), sharing that save with any other change. */
  soon(): void {
    this.#dirty = true;
    if (!this.#running && !this.#timer) this.#schedule(this.#behindMs());
  }

  /** Stops the timers and makes one last save, after the one running; rejects if it fails. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.now();
  }

  #start(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const saved = this.#next;
    this.#next = undefined;
    this.#dirty = false;
    this.#running = this.#attempt()
      .then(
        () => saved?.resolve(),
        (error: Error) => saved?.reject(error),
      )
      .finally(() => {
        this.#running = undefined;
        this.#afterSave();
      });
  }

  async #attempt(): Promise<void> {
    const started = performance.now();
    try {
      await this.#save();
      this.#lastSaveMs = performance.now() - started;
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      this.#dirty = true;
      if (e.message !== this.#failure?.message) this.#options.onFailure?.(e);
      this.#failure = e;
      throw e;
    }
    if (this.#failure) {
      this.#failure = undefined;
      this.#options.onRecovery?.();
    }
  }

  #afterSave(): void {
    // Changes made while that save ran, whose callers wait: save them at once.
    if (this.#next) return this.#start();
    if (this.#dirty) this.#schedule(this.#failure ? this.#options.retryMs : this.#behindMs());
  }

  #behindMs(): number {
    return Math.max(this.#options.behindMs, 10 * this.#lastSaveMs);
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => this.#start(), ms);
    // A pending save must not keep a process alive that is otherwise done; close() saves last.
    this.#timer.unref();
  }
}
