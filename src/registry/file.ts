import { rename, writeFile } from 'node:fs/promises';
import { writeFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { makeFolder } from '../make-folder.js';
import { CatalogFileError, catalogFileText, loadCatalogFile } from './catalog-file.js';
import { MemoryStore, type MemoryStoreOptions } from './memory.js';
import type { RegistrationInput } from './types.js';

export { CatalogFileError } from './catalog-file.js';

/**
 * The memory store, also kept on disk. Every change (renewals too, so expiry times survive a
 * restart) schedules one atomic write (temp file + rename); bursts of heartbeats coalesce.
 */
export class FileStore extends MemoryStore {
  override readonly description: string;
  readonly #path: string;
  readonly #ttlMs: number;
  readonly #flushDelayMs: number;
  #flushTimer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #unsubscribe: (() => void) | undefined;
  /** Only a catalog that was loaded may be written back: never overwrite a file open() refused. */
  #loaded = false;

  constructor(path: string, options: MemoryStoreOptions & { flushDelayMs?: number }) {
    super(options);
    this.#path = path;
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#flushDelayMs = options.flushDelayMs ?? 200;
    this.description = `file:${path}`;
  }

  override async open(): Promise<void> {
    try {
      makeFolder(dirname(this.#path));
    } catch (error) {
      throw new CatalogFileError(
        `Cannot create the folder ${dirname(this.#path)} for the catalog file ${this.#path}: ${(error as Error).message}. Start with another --store file:PATH.`,
      );
    }
    const instances = await loadCatalogFile(this.#path, { now: this.clock.now(), ttlMs: this.#ttlMs });
    for (const instance of instances) this.catalog.put(instance);
    this.#loaded = true;
    this.catalog.sweep();
    this.#unsubscribe = this.subscribe(() => this.#scheduleFlush());
    await super.open();
  }

  override async register(input: RegistrationInput) {
    const result = await super.register(input);
    this.#scheduleFlush();
    return result;
  }

  override async heartbeat(name: string, url?: string) {
    const renewed = await super.heartbeat(name, url);
    if (renewed.length > 0) this.#scheduleFlush();
    return renewed;
  }

  override async close(): Promise<void> {
    await super.close();
    this.#unsubscribe?.();
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    await this.#writing;
    if (this.#loaded) this.#writeNow();
  }

  #scheduleFlush(): void {
    if (this.#flushTimer) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.#writing = this.#writing.then(() => this.#write()).catch((error: Error) => {
        console.error(`svcmesh: could not save the catalog to ${this.#path}: ${error.message}`);
      });
    }, this.#flushDelayMs);
  }

  #serialise(): string {
    return catalogFileText([...this.all().values()].flat());
  }

  async #write(): Promise<void> {
    const temp = `${this.#path}.${process.pid}.tmp`;
    await writeFile(temp, this.#serialise());
    await rename(temp, this.#path);
  }

  /** The last write at shutdown is synchronous so that nothing is lost when the process exits. */
  #writeNow(): void {
    const temp = `${this.#path}.${process.pid}.tmp`;
    writeFileSync(temp, this.#serialise());
    renameSync(temp, this.#path);
  }
}
