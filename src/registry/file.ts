import { readFile, rename, writeFile } from 'node:fs/promises';
import { writeFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { makeFolder } from '../make-folder.js';
import { inOneSpelling, isInstance } from './instance-shape.js';
import { MemoryStore, type MemoryStoreOptions } from './memory.js';
import type { Instance, RegistrationInput } from './types.js';

const FORMAT_VERSION = 1;

/** Thrown at start when the catalog file exists but cannot be trusted. */
export class CatalogFileError extends Error {
  override readonly name = 'CatalogFileError';
}

interface CatalogFile {
  version: number;
  instances: Instance[];
}

/**
 * The memory store, also kept on disk. Every change (renewals too, so expiry times survive a
 * restart) schedules one atomic write (temp file + rename); bursts of heartbeats coalesce.
 */
export class FileStore extends MemoryStore {
  override readonly description: string;
  readonly #path: string;
  readonly #flushDelayMs: number;
  #flushTimer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #unsubscribe: (() => void) | undefined;
  /** Only a catalog that was loaded may be written back: never overwrite a file open() refused. */
  #loaded = false;

  constructor(path: string, options: MemoryStoreOptions & { flushDelayMs?: number }) {
    super(options);
    this.#path = path;
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
    for (const instance of await this.#load()) this.catalog.put(instance);
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

  async #load(): Promise<Instance[]> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new CatalogFileError(
        `Cannot read the catalog file ${this.#path}: ${(error as Error).message}. Check its permissions, or start with another --store.`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new CatalogFileError(
        `The catalog file ${this.#path} is not valid JSON (${(error as Error).message}). It was left untouched: move it away or fix it, then start again.`,
      );
    }
    const file = parsed as Partial<CatalogFile>;
    if (file?.version !== FORMAT_VERSION || !Array.isArray(file.instances) || !file.instances.every(isInstance)) {
      throw new CatalogFileError(
        `The catalog file ${this.#path} is not an svcmesh catalog (expected {"version": ${FORMAT_VERSION}, "instances": [...]}). It was left untouched: move it away or fix it, then start again.`,
      );
    }
    return inOneSpelling(file.instances);
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
    const instances = [...this.all().values()].flat();
    return JSON.stringify({ version: FORMAT_VERSION, instances } satisfies CatalogFile);
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
