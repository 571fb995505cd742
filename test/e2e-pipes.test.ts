/**
 * The CLI at the head of a shell pipeline whose reader leaves early (`| head`), as scripts use
 * kubectl or etcdctl: it stops quietly, exit 0, nothing on stderr; a streamed answer also stops
 * its request, so the registrar cancels it upstream.
 */
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath, closeServer, removeTempDirs, startSvcmesh, stopAll, type SvcmeshProcess, tempDir, waitFor } from './support/processes.js';

/** More than a pipe holds (64 KiB), so the table and the JSON take several writes. */
const SERVICES = 2_000;
/** The endless answer's longest run, in lines: a bound, should the caller never leave. */
const MAX_LINES = 2_000;

let registrar: SvcmeshProcess;
let target: Server;
/** Whether the endless answer's request is still open, as the target sees it. */
let endlessOpen = false;
let endlessStarted = false;

/** Runs `svcmesh …args | reader` in bash; resolves with svcmesh's own exit code and stderr. */
function piped(args: string[], reader: string): Promise<{ code: number; stderr: string }> {
  const script = `'${process.execPath}' '${binPath}' "$@" | ${reader} > /dev/null; exit "\${PIPESTATUS[0]}"`;
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['--norc', '--noprofile', '-c', script, 'bash', ...args, '--registrar', registrar.url],
      { env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') }, timeout: 20_000 },
      (error, _stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? -1) : 0, stderr }),
    );
  });
}

beforeAll(async () => {
  target = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      endlessStarted = true;
      endlessOpen = true;
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      let lines = 0;
      const timer = setInterval(() => {
        res.write('{"message":"word "}\n');
        if (++lines >= MAX_LINES) res.end();
      }, 20);
      res.on('close', () => {
        clearInterval(timer);
        endlessOpen = false;
      });
    });
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
  const post = (body: unknown) =>
    fetch(`${registrar.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await post({ service_name: 'endless', service_url: `http://127.0.0.1:${(target.address() as AddressInfo).port}` });
  for (let i = 0; i < SERVICES; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, j) => post({ service_name: `svc${i + j}`, service_url: `http://127.0.0.1:${10_000 + i + j}` })));
  }
});

afterAll(async () => {
  await stopAll();
  await closeServer(target);
  removeTempDirs();
});

describe('a reader that leaves early', () => {
  it('services | head -2, and services --json | head -c 10: exit 0, nothing on stderr', async () => {
    expect(await piped(['services'], 'head -2')).toEqual({ code: 0, stderr: '' });
    expect(await piped(['services', '--json'], 'head -c 10')).toEqual({ code: 0, stderr: '' });
  });

  it('ask --stream | head -c 5: exit 0, nothing on stderr, and the answer is cancelled at the target', async () => {
    expect(await piped(['ask', 'endless', '--stream', 'hi'], 'head -c 5')).toEqual({ code: 0, stderr: '' });
    expect(endlessStarted).toBe(true);
    await waitFor(() => !endlessOpen, 10_000, 'the registrar to cancel the answer at the target');
  });

  it('services --watch --json | head -1: exit 0 at the next event, nothing on stderr', async () => {
    const watching = piped(['services', '--watch', '--json'], 'head -1');
    // head leaves after the snapshot; the watch learns it at the next event, which these make.
    let done = false;
    void watching.then(() => (done = true));
    for (let i = 0; i < 40 && !done; i += 1) {
      await fetch(`${registrar.url}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ service_name: 'watched_event', service_url: `http://127.0.0.1:${20_000 + i}` }),
      });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(await watching).toEqual({ code: 0, stderr: '' });
  });
});

/** Runs `svcmesh …args > /dev/full`: every write to stdout fails with ENOSPC, as on a full disk. */
function intoFullDisk(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['--norc', '--noprofile', '-c', `'${process.execPath}' '${binPath}' "$@" > /dev/full`, 'bash', ...args],
      { env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') }, timeout: 20_000 },
      (error, _stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? -1) : 0, stderr }),
    );
  });
}

describe('stdout that cannot be written (a full disk)', () => {
  it('every command says so in one line on stderr and exits 1, with no stack trace or source', async () => {
    for (const args of [['--version'], ['config', 'path'], ['completion', 'bash'], ['services', '--registrar', registrar.url], ['services', '--json', '--registrar', registrar.url]]) {
      const label = args.join(' ');
      const result = await intoFullDisk(args);
      expect(result.code, label).toBe(1);
      expect(result.stderr, label).toBe('error cannot write to standard output: ENOSPC: no space left on device, write\n');
    }
  });
});
