import { FileStore } from './file.js';
import { MemoryStore } from './memory.js';
import type { Store } from './store.js';

/** A `--store` value that cannot be understood. */
export class StoreSpecError extends Error {
  override readonly name = 'StoreSpecError';
}

export interface StoreOptions {
  ttlSeconds: number;
}

/**
 * Builds and opens the store a `--store` value names: `memory`, `file:PATH`, or
 * `etcd://HOST:PORT[,HOST:PORT…]`. etcd's client is loaded only when asked for.
 */
export async function openStore(spec: string, options: StoreOptions): Promise<Store> {
  const store = await createStore(spec, options);
  await store.open();
  return store;
}

async function createStore(spec: string, options: StoreOptions): Promise<Store> {
  if (spec === 'memory') return new MemoryStore(options);
  if (spec.startsWith('file:')) {
    const path = spec.slice('file:'.length);
    if (!path) throw new StoreSpecError('--store file: needs a path, e.g. --store file:./svcmesh-catalog.json');
    return new FileStore(path, options);
  }
  if (spec.startsWith('etcd://')) {
    const endpoints = spec
      .slice('etcd://'.length)
      .split(',')
      .map((host) => host.trim())
      .filter(Boolean)
      .map((host) => `http://${host}`);
    if (endpoints.length === 0 || endpoints.some((e) => !/^http:\/\/[^/:]+:\d+$/.test(e))) {
      throw new StoreSpecError(`--store ${spec} is not a list of etcd endpoints: expected etcd://HOST:PORT[,HOST:PORT...]`);
    }
    const { EtcdStore } = await import('./etcd.js');
    return new EtcdStore(endpoints, options);
  }
  throw new StoreSpecError(`Unknown --store "${spec}": expected memory, file:PATH or etcd://HOST:PORT[,HOST:PORT...]`);
}
