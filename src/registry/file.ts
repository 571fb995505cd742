import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { makeFolder } from '../make-folder.js';
import { CatalogFileError, catalogFileText, loadCatalogFile } from './catalog-file.js';
import { removeLeftoverTempFiles, replaceFileDurably } from './durable-write.js';
import { type CatalogLock, lockCatalogFile, RESTART_TO_RELOAD } from './file-lock.js';
import { GroupCommit } from './group-commit.js';
import { MemoryStore, type MemoryStoreOptions } from './memory.js';
import { StoreUnavailableError } from './store.js';
import type { RegistrationInput, StoreHealth } from './types.js';

export { CatalogFileError } from './catalog-file.js';

export interface FileStoreOptions extends MemoryStoreOptions {
  /** How long renewals and evictions wait to be written, so a burst of heartbeats costs one write. */
  writeBehindMs?: number;
  /** How often a save that failed is tried again while it keeps failing. */
  retrySaveMs?: number;
}

/**
 * The memory store, also kept on disk, one whole file replaced atomically and durably on each
 * save. A registration or deregistration returns once it is on disk (saves are shared by the
 * changes that arrive together); renewals and evictions are written behind, since losing one in a
 * crash only makes an expiry a little earlier and the next heartbeat registers the instance again.
 */
export class FileStore extends MemoryStore {
  override readonly description: string;
  /** The catalog file itself: a symlink given is followed, so one file has one lock whatever its names. */
  #path: string;
  readonly #ttlMs: number;
  readonly #retrySaveMs: number;
  readonly #commit: GroupCommit;
  #unsubscribe: (() => void) | undefined;
  /** Only a catalog that was loaded may be written back: never overwrite a file open() refused. */
  #loaded = false;
  #lock: CatalogLock | undefined;

  constructor(path: string, options: FileStoreOptions) {
    super(options);
    this.#path = path;
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#retrySaveMs = options.retrySaveMs ?? 1_000;
    this.description = `file:${path}`;
    this.#commit = new GroupCommit(() => this.#save(), {
      behindMs: options.writeBehindMs ?? 1_000,
      retryMs: this.#retrySaveMs,
      onFailure: (error) => console.error(`svcmesh: could not save the catalog to ${this.#path}: ${error.message}; retrying every ${this.#retryEvery()}`),
      onRecovery: () => console.error(`svcmesh: the catalog is saved to ${this.#path} again`),
    });
  }

  override async open(): Promise<void> {
    try {
      makeFolder(dirname(this.#path));
    } catch (error) {
      throw new CatalogFileError(
        `Cannot create the folder ${dirname(this.#path)} for the catalog file ${this.#path}: ${(error as Error).message}. Start with another --store file:PATH.`,
      );
    }
    this.#path = realPath(this.#path);
    this.#lock = await lockCatalogFile(this.#path, (message) => new CatalogFileError(message));
    let instances: Awaited<ReturnType<typeof loadCatalogFile>>;
    try {
      removeLeftoverTempFiles(this.#path);
      instances = await loadCatalogFile(this.#path, { now: this.clock.now(), ttlMs: this.#ttlMs });
    } catch (error) {
      this.#releaseLock();
      throw error;
    }
    for (const instance of instances) this.catalog.put(instance);
    this.#loaded = true;
    this.catalog.sweep();
    // Evictions (and anything else that changes the catalog) reach the file too.
    this.#unsubscribe = this.subscribe(() => this.#commit.soon());
    await super.open();
  }

  override async register(input: RegistrationInput) {
    const result = await super.register(input);
    await this.#saved();
    return result;
  }

  override async deregister(name: string, url?: string) {
    const removed = await super.deregister(name, url);
    if (removed.length > 0) await this.#saved();
    return removed;
  }

  override async heartbeat(name: string, url?: string) {
    const renewed = await super.heartbeat(name, url);
    if (renewed.length > 0) this.#commit.soon();
    return renewed;
  }

  override health(): StoreHealth {
    const failure = this.#commit.failure;
    if (!failure) return super.health();
    if (ceded(failure.message)) return { status: 'degraded', store: this.description, detail: `${failure.message}; serving the catalog from memory only` };
    return {
      status: 'degraded',
      store: this.description,
      detail: `the last save to ${this.#path} failed (${failure.message}); serving the catalog from memory and trying again every ${this.#retryEvery()}`,
    };
  }

  override async close(): Promise<void> {
    await super.close();
    this.#unsubscribe?.();
    if (!this.#loaded) return;
    try {
      await this.#commit.close();
    } catch (error) {
      throw new Error(`could not save the catalog to ${this.#path}: ${(error as Error).message}`);
    } finally {
      this.#releaseLock();
    }
  }

  #releaseLock(): void {
    this.#lock?.release();
    this.#lock = undefined;
  }

  /** Waits for the save that includes the change just made: a 200 then means it is on disk. */
  async #saved(): Promise<void> {
    try {
      await this.#commit.now();
    } catch (error) {
      const message = (error as Error).message;
      // The lock went to another registrar while this one ran: no retry will save, only a restart.
      if (ceded(message)) throw new StoreUnavailableError(`Could not save the change to the catalog file ${this.#path}: ${message}. It is served from memory only`);
      // Another registrar on the file: no folder or disk to fix, one of the two to stop.
      const fix = message.includes('locked by another registrar') ? 'stop one of the two registrars' : `make ${dirname(this.#path)} a writable folder again (or free disk space)`;
      throw new StoreUnavailableError(
        `Could not save the change to the catalog file ${this.#path}: ${message}. It is served from memory but not yet on disk, and the registrar tries to save it again every ${this.#retryEvery()}: ${fix}.`,
      );
    }
  }

  async #save(): Promise<void> {
    // The lock first (in the folder made again if it was removed), then the file: never a save
    // over what another registrar wrote.
    if (!existsSync(dirname(this.#path))) makeFolder(dirname(this.#path));
    this.#lock?.confirm();
    await replaceFileDurably(this.#path, this.#text());
  }

  #text(): string {
    return catalogFileText([...this.all().values()].flat());
  }

  #retryEvery(): string {
    return this.#retrySaveMs >= 1_000 ? `${this.#retrySaveMs / 1_000} s` : `${this.#retrySaveMs} ms`;
  }
}

/**
 * Where `path` really is: a symlink to the catalog is followed (and saving replaces the file it
 * points at, keeping the link). A file not made yet is where its folder really is.
 */
function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    try {
      return join(realpathSync(dirname(path)), basename(path));
    } catch {
      return path;
    }
  }
}

/** Whether a save was refused because the lock went to another registrar while this one ran. */
function ceded(message: string): boolean {
  return message.includes(RESTART_TO_RELOAD);
}
