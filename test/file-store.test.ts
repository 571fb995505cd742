/**
 * `--store file:PATH`: the memory catalog kept on disk, written atomically, loaded at start with
 * expiry times preserved, and a file it cannot trust refused (and left as it was).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CatalogFileError, FileStore } from '../src/registry/file.js';
import { lockCatalogFile } from '../src/registry/file-lock.js';
import { Registry } from '../src/registry/registry.js';
import { createForwarder } from '../src/server/forwarder.js';
import { createRegistrarApp } from '../src/server/registrar.js';
import { waitFor } from './support/fake-ollama.js';

const T0 = 1_700_000_000_000;
const TTL_S = 30;
const TTL = TTL_S * 1000;

let dir: string;
let path: string;
let t: number;
const clock = { now: () => t };
const opened: FileStore[] = [];

function fileStore(ttlSeconds = TTL_S): FileStore {
  const store = new FileStore(path, { ttlSeconds, clock, sweepIntervalMs: 10, writeBehindMs: 5 });
  opened.push(store);
  return store;
}

/** Closes a store the test is done with (the afterEach closes what a failing test left open). */
async function closeStore(store: FileStore): Promise<void> {
  opened.splice(opened.indexOf(store), 1);
  await store.close();
}

const readCatalog = () => JSON.parse(readFileSync(path, 'utf8')) as { version: number; instances: Array<Record<string, unknown>> };
const leftovers = () => readdirSync(dir).filter((name) => name.endsWith('.tmp'));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'svcmesh-file-store-'));
  path = join(dir, 'catalog.json');
  t = T0;
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close().catch(() => {})));
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

describe('FileStore', () => {
  it('starts empty when the file does not exist yet, and creates its directory', async () => {
    path = join(dir, 'nested', 'deeper', 'catalog.json');
    const store = fileStore();
    await store.open();
    expect(store.all().size).toBe(0);
    expect(store.description).toBe(`file:${path}`);
    await store.register({ name: 'a', url: 'http://a:1' });
    await closeStore(store);
    expect(readCatalog().instances).toHaveLength(1);
  });

  it('brings back instances after a restart with the same times and metadata', async () => {
    const first = fileStore();
    await first.open();
    await first.register({ name: 'ollama_service', url: 'http://127.0.0.1:5000', metadata: { model: 'llama3.2', gpu: true } });
    t = T0 + 4_000;
    await first.register({ name: 'ollama_service', url: 'http://127.0.0.1:5002' });
    t = T0 + 9_000;
    await first.heartbeat('ollama_service', 'http://127.0.0.1:5000');
    const before = first.instances('ollama_service');
    await closeStore(first);

    t = T0 + 12_000;
    const second = fileStore();
    await second.open();
    expect(second.instances('ollama_service')).toEqual(before);
    expect(second.instances('ollama_service')[0]).toEqual({
      name: 'ollama_service',
      url: 'http://127.0.0.1:5000',
      registeredAt: T0,
      lastHeartbeat: T0 + 9_000,
      expiresAt: T0 + 9_000 + TTL,
      metadata: { model: 'llama3.2', gpu: true },
    });
    // The newest registration still stands for the name.
    expect(second.servicesJson()).toBe('{"services":{"ollama_service":"http://127.0.0.1:5002"}}');

    // The preserved expiry still holds: the second instance goes at its own time, not a fresh TTL.
    t = T0 + 4_000 + TTL;
    expect(second.instances('ollama_service').map((i) => i.url)).toEqual(['http://127.0.0.1:5000']);
  });

  it('has a registration and a deregistration on disk by the time they return; a renewal follows soon after', async () => {
    const store = fileStore();
    await store.open();
    await store.register({ name: 'a', url: 'http://a:1', metadata: { k: 'v' } });
    expect(readCatalog()).toEqual({
      version: 1,
      instances: [{ name: 'a', url: 'http://a:1', registeredAt: T0, lastHeartbeat: T0, expiresAt: T0 + TTL, metadata: { k: 'v' } }],
    });

    // Renewals are written behind: a lost one only makes an expiry a little earlier.
    t = T0 + 1_000;
    await store.heartbeat('a');
    await waitFor(() => readCatalog().instances[0]?.lastHeartbeat === T0 + 1_000, 2_000, 'the renewal to be written');

    await store.deregister('a');
    expect(readCatalog().instances).toEqual([]);
    expect(leftovers()).toEqual([]);
  });

  it('returns each of many registrations arriving together only once it is on disk', async () => {
    const store = fileStore();
    await store.open();
    const names = Array.from({ length: 200 }, (_, i) => `svc-${i}`);
    await Promise.all(
      names.map(async (name) => {
        await store.register({ name, url: `http://${name}:1` });
        expect(readCatalog().instances.map((i) => i.name)).toContain(name);
      }),
    );
    expect(readCatalog().instances).toHaveLength(200);
  });

  it('does not load instances that expired while it was down', async () => {
    const first = fileStore();
    await first.open();
    await first.register({ name: 'a', url: 'http://old.a:1' });
    t = T0 + 20_000;
    await first.register({ name: 'a', url: 'http://new.a:1' });
    await closeStore(first);
    expect(readCatalog().instances).toHaveLength(2);

    t = T0 + TTL; // exactly the old one's expiry
    const second = fileStore();
    await second.open();
    expect(second.instances('a').map((i) => i.url)).toEqual(['http://new.a:1']);
    expect(second.servicesJson()).toBe('{"services":{"a":"http://new.a:1"}}');
    await closeStore(second);
    expect(readCatalog().instances.map((i) => i.url)).toEqual(['http://new.a:1']);
  });

  it('keeps deregistrations and evictions across a restart', async () => {
    const first = fileStore();
    await first.open();
    await first.register({ name: 'gone', url: 'http://gone:1' });
    await first.register({ name: 'kept', url: 'http://kept:1' });
    await first.register({ name: 'evicted', url: 'http://evicted:1' });
    await first.deregister('gone');
    t = T0 + 10_000;
    await first.heartbeat('kept');
    t = T0 + TTL; // 'evicted' expires; the store's own timer evicts it
    await waitFor(() => first.all().size === 1, 2_000, 'the eviction');
    await closeStore(first);

    const second = fileStore();
    await second.open();
    expect([...second.all().keys()]).toEqual(['kept']);
  });

  it('reads a catalog saved with other spellings of a URL as one instance per address, which a heartbeat renews', async () => {
    const saved = (url: string, beat: number) => ({ name: 'web', url, registeredAt: T0 + beat, lastHeartbeat: T0 + beat, expiresAt: T0 + beat + TTL, metadata: {} });
    writeFileSync(
      path,
      JSON.stringify({
        version: 1,
        // Saved before URLs were kept in one spelling: three spellings of one address.
        instances: [saved('HTTP://LocalHost:80/', 0), saved('http://localhost/', 5_000), saved('http://Other.Example:8080/v1/', 0)],
      }),
    );
    const store = fileStore();
    await store.open();
    expect(store.instances('web').map((i) => [i.url, i.registeredAt, i.lastHeartbeat])).toEqual([
      ['http://localhost', T0, T0 + 5_000],
      ['http://other.example:8080/v1', T0, T0],
    ]);
    t = T0 + 10_000;
    const renewed = await store.heartbeat('web', 'http://localhost');
    expect(renewed.map((i) => i.url)).toEqual(['http://localhost']);
    expect(store.instances('web')).toHaveLength(2);
    await closeStore(store);
    expect(readCatalog().instances.map((i) => i.url)).toEqual(['http://localhost', 'http://other.example:8080/v1']);
  });

  it('writes a valid JSON file atomically, leaving no temporary files', async () => {
    const store = fileStore();
    await store.open();
    for (let i = 0; i < 50; i += 1) {
      await store.register({ name: `svc-${i % 5}`, url: `http://h:${i}` });
      await store.heartbeat(`svc-${i % 5}`);
    }
    await closeStore(store);
    const catalog = readCatalog();
    expect(catalog.version).toBe(1);
    expect(catalog.instances).toHaveLength(50);
    expect(leftovers()).toEqual([]);
    expect(readdirSync(dir)).toEqual(['catalog.json']);
  });
});

describe('a save that fails', () => {
  /** The registrar's API over a file store on the real clock, retrying a failed save every 20 ms. */
  async function registrar() {
    const store = new FileStore(path, { ttlSeconds: TTL_S, writeBehindMs: 5, retrySaveMs: 20 });
    opened.push(store);
    await store.open();
    const registry = new Registry(store);
    const forwarder = createForwarder({ registry, timeoutMs: 1_000 });
    const app = createRegistrarApp({ registry, forwarder, ttlSeconds: TTL_S });
    const post = async (route: string, body: unknown) => {
      const response = await app.request(route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: response.status, body: (await response.json()) as { error?: string } };
    };
    const health = async () => (await (await app.request('/health')).json()) as { status: string; detail?: string };
    return { post, health, forwarder };
  }

  it('answers 503 naming the file and the cause, shows in /health, and saves on its own once the folder works again', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    const folder = join(dir, 'data');
    path = join(folder, 'catalog.json');
    const { post, health, forwarder } = await registrar();
    try {
      expect((await post('/register', { service_name: 'a', service_url: 'http://127.0.0.1:1' })).status).toBe(200);

      // The folder moved away and a file in its place: no write can land there.
      renameSync(folder, `${folder}.moved`);
      writeFileSync(folder, '');
      const refused = await post('/register', { service_name: 'b', service_url: 'http://127.0.0.1:2' });
      expect(refused.status).toBe(503);
      expect(refused.body.error).toContain(path);
      expect(refused.body.error).toContain('ENOTDIR');
      const removal = await post('/deregister', { service_name: 'a' });
      expect(removal.status).toBe(503);
      expect(removal.body.error).toContain(path);
      const degraded = await health();
      expect(degraded.status).toBe('degraded');
      expect(degraded.detail).toContain(path);
      expect(degraded.detail).toContain('ENOTDIR');

      // The folder comes back; nothing else changes, yet the catalog reaches the file.
      rmSync(folder);
      renameSync(`${folder}.moved`, folder);
      await waitFor(async () => (await health()).status === 'ok', 3_000, 'the retried save');
      expect(readCatalog().instances.map((i) => i.name)).toEqual(['b']);
      expect(leftovers()).toEqual([]);
    } finally {
      await forwarder.close();
    }
  });

  it('makes the folder again when it was removed, with its lock: a second registrar cannot start on the file', async () => {
    const folder = join(dir, 'data');
    path = join(folder, 'catalog.json');
    const { post, health, forwarder } = await registrar();
    try {
      rmSync(folder, { recursive: true });
      expect((await post('/register', { service_name: 'a', service_url: 'http://127.0.0.1:1' })).status).toBe(200);
      expect(existsSync(path)).toBe(true);
      expect((await health()).status).toBe('ok');
      // Taken again: a second registrar on the file is refused, as at start (e2e-file-store shows it).
      expect(readFileSync(`${path}.lock`, 'utf8')).toBe(`${process.pid}@${hostname()}\n`);
    } finally {
      await forwarder.close();
    }
  });

  it('stops saving, answering 503, once another registrar holds the lock, rather than overwrite what that one wrote', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    const { post, health, forwarder } = await registrar();
    try {
      expect((await post('/register', { service_name: 'a', service_url: 'http://127.0.0.1:1' })).status).toBe(200);
      // The lock went (removed by hand) and a second registrar started on the file and took it.
      writeFileSync(`${path}.lock`, `424242@${hostname()}\n`);
      writeFileSync(path, JSON.stringify({ version: 1, instances: [] }));
      const refused = await post('/register', { service_name: 'b', service_url: 'http://127.0.0.1:2' });
      expect(refused.status).toBe(503);
      expect(refused.body.error).toContain(`is now locked by another registrar (424242@${hostname()}`);
      expect(refused.body.error).toMatch(/: stop one of the two registrars\.$/);
      expect((await health()).status).toBe('degraded');
      expect(readCatalog().instances).toEqual([]);
      // The other one stopped and let go: what it saved stays, until this one is restarted and loads it.
      const theirs = { name: 'theirs', url: 'http://127.0.0.1:3', registeredAt: Date.now(), lastHeartbeat: Date.now(), expiresAt: Date.now() + 60_000, metadata: {} };
      writeFileSync(path, JSON.stringify({ version: 1, instances: [theirs] }));
      rmSync(`${path}.lock`);
      const after = await post('/register', { service_name: 'c', service_url: 'http://127.0.0.1:4' });
      expect(after.status).toBe(503);
      expect(after.body.error).toContain('restart it to load the file again');
      // No retry can help now: the answer and /health say to restart, not that it keeps trying.
      expect(after.body.error).not.toMatch(/tries to save it again|stop one of the two/);
      expect((await health()).detail).toContain('restart it to load the file again');
      expect((await health()).detail).not.toContain('trying again');
      expect(readCatalog().instances.map((instance) => instance.name)).toEqual(['theirs']);
      expect(existsSync(`${path}.lock`)).toBe(false);
    } finally {
      await forwarder.close();
    }
  });
});

describe('loading a catalog file', () => {
  const entry = (fields: Record<string, unknown> = {}) => ({
    name: 'a',
    url: 'http://a:1',
    registeredAt: T0,
    lastHeartbeat: T0,
    expiresAt: T0 + TTL,
    metadata: {},
    ...fields,
  });
  const writeCatalog = (...instances: unknown[]) => writeFileSync(path, JSON.stringify({ version: 1, instances }));

  it.each([
    ['empty (made with touch)', ''],
    ['only whitespace', ' \n\t\n'],
  ])('takes a file that is %s as an empty catalog, and writes to it', async (_what, text) => {
    writeFileSync(path, text);
    const store = fileStore();
    await store.open();
    expect(store.all().size).toBe(0);
    await store.register({ name: 'a', url: 'http://a:1' });
    await closeStore(store);
    expect(readCatalog().instances.map((i) => i.name)).toEqual(['a']);
  });

  it('after a restart with a shorter TTL, lets no instance outlive it', async () => {
    const first = fileStore(600);
    await first.open();
    await first.register({ name: 'stale', url: 'http://stale:1' });
    t = T0 + 5_000;
    await first.register({ name: 'fresh', url: 'http://fresh:1' });
    await closeStore(first);

    t = T0 + 6_000;
    const second = fileStore(2); // --ttl 2 now
    await second.open();
    // Silent for 6 s: past the 2 s the registrar now allows, whatever the file said.
    expect([...second.all().keys()]).toEqual(['fresh']);
    expect(second.instances('fresh')[0]?.expiresAt).toBe(T0 + 5_000 + 2_000);
    t = T0 + 7_000;
    expect(second.all().size).toBe(0);
  });

  it('caps an expiry far in the future, and a last heartbeat in the future, at one TTL', async () => {
    writeCatalog(
      entry({ name: 'forever', expiresAt: 99_999_999_999_999 }),
      entry({ name: 'from-the-future', lastHeartbeat: T0 + 3_600_000, expiresAt: T0 + 3_600_000 + TTL }),
    );
    const store = fileStore();
    await store.open();
    expect(store.instances('forever')[0]?.expiresAt).toBe(T0 + TTL);
    expect(store.instances('from-the-future')[0]?.expiresAt).toBe(T0 + TTL);
  });

  it('takes an instance saved without metadata as one with none, as POST /register does', async () => {
    const { metadata: _left, ...withoutMetadata } = entry();
    writeCatalog(withoutMetadata);
    const store = fileStore();
    await store.open();
    expect(store.instances('a')[0]?.metadata).toEqual({});
  });

  it.each([
    ['a name the API refuses', entry({ name: 'a b' }), /instance 2 \("a b" at http:\/\/a:1\).*name must be 1-128 letters/],
    ['a URL that is not http(s)', entry({ url: 'ftp://127.0.0.1:1/' }), /instance 2 \("a" at ftp:\/\/127\.0\.0\.1:1\/\).*url must be an http\(s\) URL/],
    ['a URL with a password', entry({ url: 'http://u:p@a:1' }), /instance 2 .*url must not carry a user name or password/],
    ['metadata nested too deep', entry({ metadata: JSON.parse('{"a":'.repeat(40) + '1' + '}'.repeat(40)) }), /instance 2 .*metadata is nested more than 32 levels/],
    ['a time that is not a number', entry({ expiresAt: 'soon' }), /instance 2 .*expiresAt must be a number/],
    ['a time past what a date holds', entry({ registeredAt: 1e20 }), /instance 2 .*registeredAt must be a time in epoch milliseconds, not 100000000000000000000/],
    ['an entry that is not an object', 'a', /instance 2: is not an object/],
  ])('refuses %s, naming the entry and leaving the file as it was', async (_what, bad, expected) => {
    writeCatalog(entry({ name: 'good' }), bad);
    const text = readFileSync(path, 'utf8');
    const store = fileStore();
    const error = await store.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CatalogFileError);
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toMatch(expected);
    await closeStore(store);
    expect(readFileSync(path, 'utf8')).toBe(text);
  });
});

describe('a catalog file it cannot trust', () => {
  async function expectRefused(expected: RegExp): Promise<CatalogFileError> {
    const store = fileStore();
    const error = await store.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CatalogFileError);
    const message = (error as Error).message;
    expect(message).toContain(path);
    expect(message).toMatch(expected);
    return error as CatalogFileError;
  }

  it('refuses a corrupt file and leaves its bytes untouched, even when the store is closed afterwards', async () => {
    const garbage = Buffer.from('{"version": 1, "instances": [ this is not json \u0000\u00ff');
    writeFileSync(path, garbage);
    await expectRefused(/not valid JSON/);
    expect(readFileSync(path).equals(garbage)).toBe(true);

    // A shutdown path that closes the store anyway must not replace the file with an empty catalog.
    await Promise.all(opened.splice(0).map((store) => store.close()));
    expect(readFileSync(path).equals(garbage)).toBe(true);
    expect(leftovers()).toEqual([]);
  });

  it.each([
    ['a JSON array', '[1, 2, 3]'],
    ['an object of another shape', '{"services": {"a": "http://a:1"}}'],
    ['another version', '{"version": 2, "instances": []}'],
    ['JSON null', 'null'],
  ])('refuses %s, naming the file and leaving it as it was', async (_what, text) => {
    writeFileSync(path, text);
    await expectRefused(/not an svcmesh catalog/);
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  it('refuses, at once, a folder the system will not create (inside /proc)', async () => {
    path = '/proc/svcmesh-test-no-such-folder/catalog.json';
    await expectRefused(/^Cannot create the folder \/proc\/svcmesh-test-no-such-folder for the catalog file \/proc\/svcmesh-test-no-such-folder\/catalog.json: ENOENT/);
  });

  it('refuses a path it cannot read (a directory in its place)', async () => {
    mkdirSync(path);
    await expectRefused(/Cannot read the catalog file/);
  });
});

describe('the lock of a catalog file', () => {
  it('taken over from a dead registrar, is given up when another takes it over at the same moment', async () => {
    const lockDir = mkdtempSync(join(tmpdir(), 'svcmesh-lock-'));
    const file = join(lockDir, 'catalog.json');
    // A registrar that was killed left its lock: no process has that pid.
    writeFileSync(`${file}.lock`, `999999999@${hostname()}\n`);
    const taking = lockCatalogFile(file, (message) => new Error(message));
    // Another registrar, starting at the same moment, found it stale too and put its own there.
    writeFileSync(`${file}.lock`, `424242@${hostname()}\n`);
    await expect(taking).rejects.toThrow('another registrar took it over at the same moment');
    rmSync(lockDir, { recursive: true, force: true });
  });
});
