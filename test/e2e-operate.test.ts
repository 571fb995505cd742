/**
 * Operating svcmesh from the command line (#5), with the built binary as a user runs it: tokens
 * from flag, environment and stored setting; a protected `/receive` and the registrar's
 * `--target-token`; `services --watch --json` across a registrar restart; `--log-format json`.
 */
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOllama, startFakeOllama } from './support/fake-ollama.js';
import {
  freePort,
  removeTempDirs,
  runSvcmesh,
  spawnSvcmesh,
  startSvcmesh,
  stopAll,
  type SvcmeshProcess,
  tempDir,
  waitFor,
} from './support/processes.js';

const TOKEN = 's3cret';

let ollama: FakeOllama;

beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['llama3.2:latest'] });
});

afterAll(async () => {
  await stopAll();
  await ollama?.close();
  removeTempDirs();
});

async function servicesOf(registrar: SvcmeshProcess): Promise<Record<string, string>> {
  const response = await fetch(`${registrar.url}/services`);
  return ((await response.json()) as { services: Record<string, string> }).services;
}

describe('a registrar started with --token', () => {
  let registrar: SvcmeshProcess;
  beforeAll(async () => {
    registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--token', TOKEN]);
  });

  it('refuses a client command without the token: exit 1, a message about the token, nothing changed', async () => {
    const at = ['--registrar', registrar.url];
    for (const args of [
      ['register', 'web', 'http://127.0.0.1:7001', ...at],
      ['heartbeat', 'web', ...at],
      ['deregister', 'web', ...at],
      ['ask', 'web', 'hi', ...at],
    ]) {
      const result = await runSvcmesh(args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(`${registrar.url}/${args[0] === 'ask' ? 'forward' : args[0]} answered 401`);
      expect(result.stderr).toMatch(/requires a token/);
      // The message names --token and SVCMESH_TOKEN; the line under it adds only what it does not say.
      expect(result.stderr).toMatch(/\(svcmesh --token or SVCMESH_TOKEN\)\n {2}To keep it for every command: `svcmesh config set token <token>`/);
    }
    const wrong = await runSvcmesh(['register', 'web', 'http://127.0.0.1:7001', ...at, '--token', 'not-it']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/token is not valid/);
    expect(wrong.stderr).not.toContain('not-it');
    // Reads stay open without --protect-reads.
    const list = await runSvcmesh(['services', '--json', ...at]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual({ services: {} });
  });

  it('takes the token from --token, then SVCMESH_TOKEN, then the stored `token` setting', async () => {
    const at = ['--registrar', registrar.url];
    const byFlag = await runSvcmesh(['register', 'by-flag', 'http://127.0.0.1:7001', ...at, '--token', TOKEN]);
    expect(byFlag.code, byFlag.stderr).toBe(0);
    expect(byFlag.stdout).toBe('Service by-flag registered at http://127.0.0.1:7001\n');

    const byEnv = await runSvcmesh(['register', 'by-env', 'http://127.0.0.1:7002', ...at], { env: { SVCMESH_TOKEN: TOKEN } });
    expect(byEnv.code, byEnv.stderr).toBe(0);

    const configDir = tempDir('svcmesh-config-');
    const env = { SVCMESH_CONFIG_DIR: configDir };
    expect((await runSvcmesh(['config', 'set', 'token', TOKEN], { env })).code).toBe(0);
    const byStored = await runSvcmesh(['register', 'by-stored', 'http://127.0.0.1:7003', ...at], { env });
    expect(byStored.code, byStored.stderr).toBe(0);

    // The flag wins over a wrong environment, and the environment over a wrong stored setting.
    const wrongDir = tempDir('svcmesh-config-');
    expect((await runSvcmesh(['config', 'set', 'token', 'stale'], { env: { SVCMESH_CONFIG_DIR: wrongDir } })).code).toBe(0);
    const flagWins = await runSvcmesh(['heartbeat', 'by-flag', ...at, '--token', TOKEN], { env: { SVCMESH_TOKEN: 'stale' } });
    expect(flagWins.code, flagWins.stderr).toBe(0);
    const envWins = await runSvcmesh(['heartbeat', 'by-env', ...at], { env: { SVCMESH_TOKEN: TOKEN, SVCMESH_CONFIG_DIR: wrongDir } });
    expect(envWins.code, envWins.stderr).toBe(0);

    expect(await servicesOf(registrar)).toMatchObject({
      'by-flag': 'http://127.0.0.1:7001',
      'by-env': 'http://127.0.0.1:7002',
      'by-stored': 'http://127.0.0.1:7003',
    });
    const deregistered = await runSvcmesh(['deregister', 'by-stored', ...at], { env });
    expect(deregistered.code, deregistered.stderr).toBe(0);
    expect(await servicesOf(registrar)).not.toHaveProperty('by-stored');
  });

  it('lets `svcmesh ollama --register --token` register, answer through ask, and deregister on SIGTERM', async () => {
    const service = await startSvcmesh([
      'ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', ollama.host, '--name', 'guarded_ollama',
      '--register', '--registrar', registrar.url, '--token', TOKEN,
    ]);
    await waitFor(() => service.output().includes('registered at'), 10_000, 'registration');
    expect(service.output()).not.toMatch(/Registration failed/);
    expect(await servicesOf(registrar)).toHaveProperty('guarded_ollama', service.url);

    const refused = await runSvcmesh(['ask', 'guarded_ollama', 'hi', '--registrar', registrar.url]);
    expect(refused.code).toBe(1);
    const asked = await runSvcmesh(['ask', 'guarded_ollama', 'What', 'is', 'AI?', '--registrar', registrar.url], { env: { SVCMESH_TOKEN: TOKEN } });
    expect(asked).toMatchObject({ code: 0, stdout: 'Answer to: What is AI?\n' });

    expect(await service.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(service.output()).toContain('deregistered');
    expect(await servicesOf(registrar)).not.toHaveProperty('guarded_ollama');
  });

  it('without the token, `svcmesh ollama --register` says why and gives up with exit 1, even while Ollama keeps it waiting', async () => {
    // An Ollama that takes connections and never answers: the start-up check must neither hold up
    // the registration nor keep the process alive once it has given up.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentHost = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const result = await runSvcmesh(
        ['ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', silentHost, '--name', 'tokenless', '--register', '--registrar', registrar.url],
        { timeoutMs: 15_000 },
      );
      expect(result.timedOut).toBe(false);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain('svcmesh ollama service listening on');
      expect(result.stderr).toMatch(/error .*\/register answered 401: .*token/);
      expect(result.stderr).toContain('svcmesh config set token <token>');
      expect(result.stderr).not.toContain('Trying again');
      expect(await servicesOf(registrar)).not.toHaveProperty('tokenless');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('a protected /receive and the registrar’s --target-token', () => {
  let registrar: SvcmeshProcess;
  let service: SvcmeshProcess;
  beforeAll(async () => {
    registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--target-token', 'r3c']);
    service = await startSvcmesh([
      'ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', ollama.host, '--name', 'locked',
      '--receive-token', 'r3c', '--register', '--registrar', registrar.url,
    ]);
    await waitFor(() => service.output().includes('registered at'), 10_000, 'registration');
  });

  it('refuses /receive without its token', async () => {
    const send = (headers: Record<string, string>) =>
      fetch(`${service.url}/receive`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ from: 'test', message: 'hi' }),
      });
    const missing = await send({});
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as { error: string }).error).toMatch(/token/);
    expect((await send({ authorization: 'Bearer wrong' })).status).toBe(401);
    const right = await send({ authorization: 'Bearer r3c' });
    expect(right.status).toBe(200);
    expect(await right.json()).toEqual({ message: 'Answer to: hi' });
  });

  it('is reached through a registrar that passes the token on, whole and streamed', async () => {
    const asked = await runSvcmesh(['ask', 'locked', 'Capital', 'of', 'India?', '--registrar', registrar.url]);
    expect(asked).toMatchObject({ code: 0, stdout: 'Answer to: Capital of India?\n' });
    const streamed = await runSvcmesh(['ask', 'locked', 'hi', 'there', '--stream', '--registrar', registrar.url]);
    expect(streamed).toMatchObject({ code: 0, stdout: 'Answer to: hi there\n' });
  });

  it('is reached through a registrar that has the token for this service only, by flag or by env', async () => {
    const byFlag = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--target-token-for', 'other=nope', '--target-token-for', 'locked=r3c']);
    const byEnv = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1'], { env: { SVCMESH_TARGET_TOKENS: 'other=nope,locked=r3c' } });
    for (const registrar of [byFlag, byEnv]) {
      expect((await runSvcmesh(['register', 'locked', service.url, '--registrar', registrar.url])).code).toBe(0);
      const asked = await runSvcmesh(['ask', 'locked', 'hi', '--registrar', registrar.url]);
      expect(asked).toMatchObject({ code: 0, stdout: 'Answer to: hi\n' });
      await registrar.stop();
    }
  });

  it('answers 401 through a registrar that does not have the token', async () => {
    const plain = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    expect((await runSvcmesh(['register', 'locked', service.url, '--registrar', plain.url])).code).toBe(0);
    const asked = await runSvcmesh(['ask', 'locked', 'hi', '--registrar', plain.url]);
    expect(asked.code).toBe(1);
    expect(asked.stderr).toContain(`${plain.url}/forward answered 401`);
    // The service refused the registrar, not the caller: the advice is about the registrar's token for it.
    expect(asked.stderr).toContain(`The service at ${service.url} refused the token the registrar sent it: the registrar's --target-token (or --target-token-for) must match that service's --receive-token.`);
    expect(asked.stderr).not.toContain('Pass the registrar\'s token with --token');
    await plain.stop();
  });
});

describe('a second Ctrl-C while answers are in flight', () => {
  let slow: FakeOllama;
  beforeAll(async () => {
    // A hundred seconds of answer: far past the default --drain-timeout of 30 s.
    slow = await startFakeOllama({ tokenDelayMs: 100, reply: 'word '.repeat(1000) });
  });
  afterAll(async () => {
    await slow?.close();
  });

  /** Starts a streamed answer and returns its reader once the first words have come. */
  async function answerInFlight(url: string, body: Record<string, unknown>) {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    await reader.read();
    return reader;
  }

  async function interruptTwice(server: SvcmeshProcess, name: string): Promise<void> {
    server.process.kill('SIGINT');
    await waitFor(() => server.output().includes(`${name}: SIGINT received`), 10_000, 'the first SIGINT taken');
    server.process.kill('SIGINT');
    expect(await server.exited).toEqual({ code: 130, signal: null });
    expect(server.output()).toContain(`${name}: second SIGINT, quitting now: answers in flight were cut`);
  }

  it('quits the Ollama service at once, with exit 130, instead of draining', async () => {
    const service = await startSvcmesh(['ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', slow.host]);
    const reader = await answerInFlight(`${service.url}/receive`, { from: 'test', message: 'a long story' });
    await interruptTwice(service, 'svcmesh ollama service');
    await reader.cancel().catch(() => {});
  });

  it('quits the registrar at once, with exit 130, instead of draining', async () => {
    const service = await startSvcmesh(['ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', slow.host]);
    const registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    expect((await runSvcmesh(['register', 'storyteller', service.url, '--registrar', registrar.url])).code).toBe(0);
    const reader = await answerInFlight(`${registrar.url}/forward`, { from: 'test', to: 'storyteller', message: 'a long story' });
    await interruptTwice(registrar, 'svcmesh registrar');
    await reader.cancel().catch(() => {});
    await service.stop();
  });
});

describe('services --watch --json', () => {
  it('prints a snapshot, then one JSON line per change, and follows the registrar across a restart', async () => {
    const port = await freePort();
    const start = () => startSvcmesh(['registrar', '--port', String(port), '--host', '127.0.0.1']);
    let registrar = await start();
    const at = ['--registrar', registrar.url];
    const watcher = spawnSvcmesh(['services', '--watch', '--json', ...at]);
    type Line = { type: string; name?: string; instance?: { url: string }; services?: Record<string, unknown[]> };
    const lines = (): Line[] =>
      watcher
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Line);
    const summary = () => lines().map((l) => (l.type === 'snapshot' ? `snapshot ${Object.keys(l.services ?? {}).join(',')}` : `${l.type} ${l.name} ${l.instance?.url}`));

    await waitFor(() => lines().length === 1, 10_000, 'the first snapshot');
    expect(lines()[0]).toEqual({ type: 'snapshot', services: {} });

    expect((await runSvcmesh(['register', 'w1', 'http://127.0.0.1:7101', ...at])).code).toBe(0);
    await waitFor(() => lines().length === 2, 5_000, 'the registration');
    expect((await runSvcmesh(['register', 'w1', 'http://127.0.0.1:7101', '--metadata', '{"v":2}', ...at])).code).toBe(0);
    await waitFor(() => lines().length === 3, 5_000, 'the update');
    expect((await runSvcmesh(['deregister', 'w1', ...at])).code).toBe(0);
    await waitFor(() => lines().length === 4, 5_000, 'the deregistration');

    // Restart the registrar on the same port: the watcher is told, retries, and starts over.
    expect(await registrar.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    registrar = await start();
    await waitFor(() => lines().length === 5, 15_000, 'a new snapshot after the restart');
    expect((await runSvcmesh(['register', 'w2', 'http://127.0.0.1:7103', ...at])).code).toBe(0);
    await waitFor(() => lines().length === 6, 5_000, 'a registration after the restart');

    expect(summary()).toEqual([
      'snapshot ',
      'registered w1 http://127.0.0.1:7101',
      'updated w1 http://127.0.0.1:7101',
      'deregistered w1 http://127.0.0.1:7101',
      'snapshot ',
      'registered w2 http://127.0.0.1:7103',
    ]);
    expect(watcher.stderr()).toMatch(new RegExp(`lost ${registrar.url}/events .*reconnecting`));

    watcher.child.kill('SIGINT');
    expect(await watcher.exited).toEqual({ code: 130, signal: null });
    // Nothing but the JSON lines went to stdout.
    expect(watcher.stdout().endsWith('\n')).toBe(true);
  });

  it('watching one service: a snapshot of it alone, and a word on stderr while it is not registered yet', async () => {
    const registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    const at = ['--registrar', registrar.url];
    await runSvcmesh(['register', 'other', 'http://127.0.0.1:7201', ...at]);
    await runSvcmesh(['register', 'ollama_service', 'http://127.0.0.1:7202', ...at]);
    const watcher = spawnSvcmesh(['services', 'ollama_servce', '--watch', '--json', ...at]);
    try {
      await waitFor(() => watcher.stdout().includes('snapshot'), 10_000, 'the snapshot');
      expect(JSON.parse(watcher.stdout().split('\n')[0]!)).toEqual({ type: 'snapshot', services: { ollama_servce: [] } });
      expect(watcher.stderr()).toContain(`ollama_servce is not registered at ${registrar.url} yet: watching for it. Did you mean ollama_service?`);
      // It is waited for, and shown when it comes; the other service never is.
      await runSvcmesh(['register', 'other', 'http://127.0.0.1:7203', ...at]);
      await runSvcmesh(['register', 'ollama_servce', 'http://127.0.0.1:7204', ...at]);
      await waitFor(() => watcher.stdout().includes('7204'), 5_000, 'the registration');
      expect(watcher.stdout()).not.toContain('7203');
    } finally {
      watcher.child.kill('SIGINT');
      await watcher.exited;
      await registrar.stop();
    }
  });

  it('exits 1 at once, naming the URL, when nothing answers where it is pointed', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    for (const args of [['services', '--watch'], ['services', 'ollama_service', '--watch', '--json']]) {
      const result = await runSvcmesh([...args, '--registrar', nowhere]);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr).toContain(`Cannot reach ${nowhere}/`);
      expect(result.stdout).toBe('');
    }
  });

  it('stops at once on SIGINT while the registrar is away', async () => {
    const port = await freePort();
    const registrar = await startSvcmesh(['registrar', '--port', String(port), '--host', '127.0.0.1']);
    const watcher = spawnSvcmesh(['services', '--watch', '--json', '--registrar', registrar.url]);
    await waitFor(() => watcher.stdout().includes('snapshot'), 10_000, 'the snapshot');
    await registrar.stop('SIGTERM');
    // Let it fail a few times so that it waits seconds between attempts.
    await waitFor(() => (watcher.stderr().match(/reconnecting in/g) ?? []).length >= 4, 10_000, 'several failed attempts');
    const started = Date.now();
    watcher.child.kill('SIGINT');
    expect(await watcher.exited).toEqual({ code: 130, signal: null });
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('exits 1 naming the token when a registrar protecting reads refuses it', async () => {
    const registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--token', TOKEN, '--protect-reads']);
    const refused = await runSvcmesh(['services', '--watch', '--json', '--registrar', registrar.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/401.*requires a token/);
    const watcher = spawnSvcmesh(['services', '--watch', '--json', '--registrar', registrar.url, '--token', TOKEN]);
    await waitFor(() => watcher.stdout().includes('"type":"snapshot"'), 10_000, 'the snapshot');
    watcher.child.kill('SIGINT');
    expect((await watcher.exited).code).toBe(130);
    await registrar.stop();
  });
});

describe('--log-format json', () => {
  it('prints one JSON line per request and per registry change on stdout, and never the token', async () => {
    const registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--token', TOKEN, '--log-format', 'json']);
    const at = ['--registrar', registrar.url];
    expect((await runSvcmesh(['register', 'web', 'http://127.0.0.1:7001', ...at, '--token', TOKEN])).code).toBe(0);
    expect((await runSvcmesh(['register', 'web', 'http://127.0.0.1:7001', ...at, '--token', `${TOKEN}-wrong`])).code).toBe(1);
    expect((await runSvcmesh(['services', '--json', ...at])).code).toBe(0);
    expect((await fetch(`${registrar.url}/services?token=${TOKEN}`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await runSvcmesh(['deregister', 'web', ...at], { env: { SVCMESH_TOKEN: TOKEN } })).code).toBe(0);

    const expected = [
      'registered web http://127.0.0.1:7001',
      'POST /register 200',
      'POST /register 401',
      'GET /services 200',
      'GET /services 200',
      'deregistered web http://127.0.0.1:7001',
      'POST /deregister 200',
    ];
    const records = () =>
      registrar
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { time: string; msg: string });
    await waitFor(() => records().length >= expected.length, 5_000, 'the log lines');
    expect(await registrar.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    // The banner and the goodbye are JSON lines too, with their facts as fields: every line is.
    const [banner, ...rest] = records();
    const goodbye = rest.pop()!;
    expect(banner).toMatchObject({ msg: expect.stringMatching(/^svcmesh registrar listening on /), url: registrar.url, store: 'memory', ttl_seconds: 300, token_required: true });
    expect(goodbye).toMatchObject({ msg: 'svcmesh registrar: SIGTERM received, finishing answers in flight', signal: 'SIGTERM' });
    expect(rest.map((r) => r.msg)).toEqual(expected);
    for (const record of records()) expect(Number.isNaN(Date.parse(record.time))).toBe(false);
    expect(registrar.output().split('\n').filter((line) => line !== '' && !line.startsWith('{'))).toEqual([]);
    expect(registrar.output()).not.toContain(TOKEN);
  });
});
