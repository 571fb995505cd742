/**
 * `--store file:PATH` end to end: the built registrar, killed the way a crash kills it.
 */
import { existsSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { removeTempDirs, runSvcmesh, startSvcmesh, stopAll, tempDir } from './support/processes.js';

afterEach(async () => {
  await stopAll();
  removeTempDirs();
});

const register = (registrar: string, name: string, url: string) =>
  fetch(`${registrar}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ service_name: name, service_url: url }),
  });

const deregister = (registrar: string, name: string) =>
  fetch(`${registrar}/deregister`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ service_name: name }),
  });

const savedNames = (path: string) =>
  (JSON.parse(readFileSync(path, 'utf8')) as { instances: Array<{ name: string }> }).instances.map((i) => i.name).sort();

describe('the file store after a crash (kill -9)', () => {
  it('holds every registration and deregistration that was answered 200', async () => {
    const path = `${tempDir('svcmesh-crash-')}/catalog.json`;
    const registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--ttl', '600', '--store', `file:${path}`]);

    // A burst, as a fleet restarting at once sends: all in flight together.
    const names = Array.from({ length: 300 }, (_, i) => `svc-${String(i).padStart(3, '0')}`);
    const answers = await Promise.all(names.map((name, i) => register(registrar.url, name, `http://127.0.0.1:${10_000 + i}`)));
    expect(answers.map((a) => a.status)).toEqual(names.map(() => 200));
    const gone = names.slice(0, 10);
    const deregistered = await Promise.all(gone.map((name) => deregister(registrar.url, name)));
    expect(deregistered.map((a) => a.status)).toEqual(gone.map(() => 200));

    // At once, with no time for a write behind to land.
    expect((await registrar.stop('SIGKILL')).signal).toBe('SIGKILL');

    expect(savedNames(path)).toEqual(names.slice(10));
  });
});

describe('one catalog file, one registrar', () => {
  it('refuses a second registrar on the same file (exit 1, naming the one that holds it), and takes over the file of one that was killed', async () => {
    const folder = tempDir('svcmesh-lock-');
    const path = `${folder}/catalog.json`;
    const first = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--store', `file:${path}`]);
    expect((await register(first.url, 'on-first', 'http://127.0.0.1:9001')).status).toBe(200);

    const second = await runSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--store', `file:${path}`], { timeoutMs: 10_000 });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`The catalog file ${path} is in use by another registrar (${first.pid} on `);
    expect(savedNames(path)).toEqual(['on-first']);

    // Killed in the middle of its work: its lock and a half-written save are left behind.
    await first.stop('SIGKILL');
    writeFileSync(`${path}.${first.pid}.tmp`, '{"version": 1, "instan');
    const next = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--store', `file:${path}`]);
    expect(await (await fetch(`${next.url}/services`)).json()).toEqual({ services: { 'on-first': 'http://127.0.0.1:9001' } });
    expect(readdirSync(folder).filter((name) => name.endsWith('.tmp'))).toEqual([]);

    // The same file under another name (a symlink) is the same file.
    const link = `${tempDir('svcmesh-lock-link-')}/catalog-link.json`;
    symlinkSync(path, link);
    const viaLink = await runSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--store', `file:${link}`], { timeoutMs: 10_000 });
    expect(viaLink.code).toBe(1);
    expect(viaLink.stderr).toContain(`is in use by another registrar (${next.pid} on `);

    // A clean stop lets the lock go.
    await next.stop('SIGTERM');
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('takes its lock again when it makes its removed folder again: a second registrar is still refused', async () => {
    const folder = `${tempDir('svcmesh-lock-gone-')}/data`;
    const path = `${folder}/catalog.json`;
    const first = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--store', `file:${path}`]);
    expect((await register(first.url, 'before', 'http://127.0.0.1:9001')).status).toBe(200);
    rmSync(folder, { recursive: true });
    expect((await register(first.url, 'after', 'http://127.0.0.1:9002')).status).toBe(200);

    const second = await runSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--store', `file:${path}`], { timeoutMs: 10_000 });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`The catalog file ${path} is in use by another registrar (${first.pid} on `);
    expect(savedNames(path)).toEqual(['after', 'before']);
  });
});
