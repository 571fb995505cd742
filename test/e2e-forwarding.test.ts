/**
 * Dependable forwarding, end to end: real registrar and Ollama service processes, a fake Ollama
 * that produces tokens slowly, and the CLI as a user runs it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type FakeOllama, startFakeOllama } from './support/fake-ollama.js';
import { freePort, removeTempDirs, runSvcmesh, spawnSvcmesh, startSvcmesh, stopAll, type SvcmeshProcess, tempDir, waitFor } from './support/processes.js';

const REPLY = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');

let ollama: FakeOllama | undefined;

afterEach(async () => {
  await stopAll();
  await ollama?.close();
  ollama = undefined;
  removeTempDirs();
});

async function startRegistrar(extra: string[] = [], port = 0) {
  return startSvcmesh(['registrar', '--port', String(port), '--host', '127.0.0.1', ...extra]);
}

async function startService(registrar: SvcmeshProcess, fake: FakeOllama, extra: string[] = []) {
  const service = await startSvcmesh([
    'ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', fake.host, '--register', '--registrar', registrar.url, ...extra,
  ]);
  await waitFor(() => service.output().includes(`registered at ${service.url}`), 10_000, 'registration');
  return service;
}

async function servicesOf(registrar: SvcmeshProcess): Promise<Record<string, string>> {
  const response = await fetch(`${registrar.url}/services`);
  return ((await response.json()) as { services: Record<string, string> }).services;
}

async function forward(registrar: SvcmeshProcess, message: string, stream = false) {
  return fetch(`${registrar.url}/forward`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ from: 'test', to: 'ollama_service', message, ...(stream && { stream: true }) }),
  });
}

/**
 * A streamed answer's lines: `first` once its first chunk came (so a test can act mid-answer),
 * `rest` all of them once it ends, however it ends (a cut connection ends it too).
 */
function streamedLines(response: Response): { first: Promise<void>; rest: Promise<string[]> } {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const first = reader.read().then(({ value }) => {
    text += decoder.decode(value);
  });
  const rest = first.then(async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return text.trimEnd().split('\n');
      text += decoder.decode(value);
    }
  });
  return { first, rest };
}

describe('forwarding across instances', () => {
  it('answers every forward while one of two instances is killed mid-run', async () => {
    ollama = await startFakeOllama({ tokenDelayMs: 1 });
    const registrar = await startRegistrar();
    const first = await startService(registrar, ollama);
    const second = await startService(registrar, ollama);
    const answeredBy = new Set<string>();
    for (let i = 0; i < 20; i++) {
      if (i === 6) await first.stop('SIGKILL');
      const response = await forward(registrar, `question ${i}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ message: `Answer to: question ${i}` });
      answeredBy.add(response.headers.get('x-svcmesh-instance') ?? '');
    }
    // Both answered before the kill; only the survivor after it.
    expect(answeredBy).toEqual(new Set([first.url, second.url]));
  });

  it('streams through the registrar: ask --stream prints the first words while Ollama is still generating', async () => {
    ollama = await startFakeOllama({ reply: REPLY, tokenDelayMs: 40 });
    const registrar = await startRegistrar();
    await startService(registrar, ollama);
    const ask = spawnSvcmesh(['ask', 'ollama_service', '--stream', 'tell me', '--registrar', registrar.url]);
    const first = await ask.firstChunk;
    expect(REPLY.startsWith(first)).toBe(true);
    // The first chunk reached the terminal while the generation was still running.
    expect(ollama.stats.chats[0]?.status).toBe('running');
    expect((await ask.exited).code).toBe(0);
    expect(ask.stdout()).toBe(`${REPLY}\n`);
  });

  it('stops the generation in Ollama when the caller goes away mid-stream', async () => {
    ollama = await startFakeOllama({ reply: REPLY, tokenDelayMs: 50 });
    const registrar = await startRegistrar();
    await startService(registrar, ollama);
    const ask = spawnSvcmesh(['ask', 'ollama_service', '--stream', 'tell me', '--registrar', registrar.url]);
    await ask.firstChunk;
    ask.child.kill('SIGKILL');
    await waitFor(() => ollama!.stats.aborted === 1, 10_000, 'generation aborted');
    const [chat] = ollama.stats.chats;
    expect(chat!.tokens.length).toBeLessThan(chat!.plannedTokens.length);
  });

  it('ends a stream with an error line when Ollama fails mid-answer, and ask exits 1', async () => {
    ollama = await startFakeOllama({ reply: REPLY, failAfterTokens: 3 });
    const registrar = await startRegistrar();
    await startService(registrar, ollama);
    const json = await runSvcmesh(['ask', 'ollama_service', '--stream', '--json', 'tell me', '--registrar', registrar.url]);
    const lines = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.slice(0, 3).map((l) => l.message)).toEqual(['word0 ', 'word1 ', 'word2 ']);
    expect(lines.at(-1)).toHaveProperty('error');
    expect(lines.some((l) => l.done)).toBe(false);
    // Scripts reading the lines learn of the failure from the exit code too.
    expect(json.code).toBe(1);
    const text = await runSvcmesh(['ask', 'ollama_service', '--stream', 'tell me', '--registrar', registrar.url]);
    expect(text.code).toBe(1);
    expect(text.stdout).toBe('word0 word1 word2 \n');
    expect(text.stderr).toMatch(/The answer from ollama_service through http:\/\/127\.0\.0\.1:\d+\/forward stopped: /);
  });
});

describe('an Ollama that is busy', () => {
  it('its "server busy" 503 moves every forward on to an idle instance', async () => {
    ollama = await startFakeOllama();
    const busy = await startFakeOllama({ refuseChats: { status: 503, error: 'server busy, please try again.  maximum pending requests exceeded' } });
    try {
      const registrar = await startRegistrar();
      await startService(registrar, busy);
      const idle = await startService(registrar, ollama);
      for (let i = 0; i < 4; i++) {
        const response = await forward(registrar, `question ${i}`, i % 2 === 1);
        expect(response.status).toBe(200);
        expect(response.headers.get('x-svcmesh-instance')).toBe(idle.url);
        await response.text();
      }
      expect(busy.stats.requests.filter((request) => request.path === '/api/chat').length).toBeGreaterThan(0);
    } finally {
      await busy.close();
    }
  });
});

describe('an Ollama that fails before anything reached the caller', () => {
  it('its runner crashing (500), its connection breaking in a whole answer, an error line before the first piece: the next instance answers', async () => {
    ollama = await startFakeOllama();
    const crashed = await startFakeOllama({ refuseChats: { status: 500, error: 'llama runner process has terminated: exit status 2' } });
    const dropping = await startFakeOllama({ dropAfterTokens: 1 });
    const failing = await startFakeOllama({ failAfterTokens: 0, failMessage: 'CUDA error: out of memory' });
    try {
      const registrar = await startRegistrar();
      for (const broken of [crashed, dropping, failing]) await startService(registrar, broken);
      const healthy = await startService(registrar, ollama);
      // Whole answers: a stream that broke after its first piece went out cannot move on (it ends
      // with an error line), which another test holds.
      for (let i = 0; i < 6; i++) {
        const response = await forward(registrar, `question ${i}`);
        expect(response.status, `question ${i}`).toBe(200);
        expect(response.headers.get('x-svcmesh-instance')).toBe(healthy.url);
        await response.text();
      }
    } finally {
      await Promise.all([crashed.close(), dropping.close(), failing.close()]);
    }
  });
});

describe('shutdown and restarts', () => {
  it('SIGTERM during a streamed answer: the service deregisters, the answer finishes, exit 0', async () => {
    ollama = await startFakeOllama({ reply: REPLY, tokenDelayMs: 30 });
    const registrar = await startRegistrar();
    const service = await startService(registrar, ollama);
    const ask = spawnSvcmesh(['ask', 'ollama_service', '--stream', 'tell me', '--registrar', registrar.url]);
    await ask.firstChunk;
    const stopped = service.stop('SIGTERM', 20_000);
    // Out of new picks at once, while the answer in flight goes on.
    await waitFor(async () => !('ollama_service' in (await servicesOf(registrar))), 5_000, 'deregistration');
    expect(ollama.stats.chats[0]?.status).toBe('running');
    expect((await ask.exited).code, ask.stderr()).toBe(0);
    expect(ask.stdout()).toBe(`${REPLY}\n`);
    expect((await stopped).code).toBe(0);
    expect(service.output()).toContain('Service ollama_service deregistered');
  });

  it('SIGTERM to the registrar during a streamed forward: the answer finishes, new connections are refused, exit 0', async () => {
    ollama = await startFakeOllama({ reply: REPLY, tokenDelayMs: 30 });
    const registrar = await startRegistrar();
    await startService(registrar, ollama);
    const ask = spawnSvcmesh(['ask', 'ollama_service', '--stream', 'tell me', '--registrar', registrar.url]);
    await ask.firstChunk;
    const stopped = registrar.stop('SIGTERM', 20_000);
    await waitFor(async () => {
      try {
        await fetch(`${registrar.url}/health`);
        return false;
      } catch {
        return true;
      }
    }, 5_000, 'registrar refusing new connections');
    expect(ollama.stats.chats[0]?.status).toBe('running');
    expect((await ask.exited).code, ask.stderr()).toBe(0);
    expect(ask.stdout()).toBe(`${REPLY}\n`);
    expect((await stopped).code).toBe(0);
  });

  it('SIGTERM to the registrar when a streamed answer outlasts --drain-timeout: it ends with an error line that says why, exit 0', async () => {
    ollama = await startFakeOllama({ reply: REPLY, tokenDelayMs: 200 });
    const registrar = await startRegistrar(['--drain-timeout', '1']);
    await startService(registrar, ollama);
    const response = await forward(registrar, 'a long story', true);
    const { first, rest } = streamedLines(response);
    await first;
    const stopped = registrar.stop('SIGTERM', 20_000);
    const lines = await rest;
    // Words came for about a second (the drain time), then the line that says why they stopped.
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.length).toBeLessThan(REPLY.split(' ').length);
    expect(JSON.parse(lines.at(-1)!)).toEqual({ error: 'The registrar shut down before the answer was over (its --drain-timeout of 1 s ran out)' });
    for (const line of lines.slice(0, -1)) expect(JSON.parse(line)).toHaveProperty('message');
    expect((await stopped).code).toBe(0);
  });

  it('SIGTERM to the registrar when a whole answer outlasts --drain-timeout: 503 that says why, logged as 503', async () => {
    ollama = await startFakeOllama({ reply: REPLY, tokenDelayMs: 200 });
    const registrar = await startRegistrar(['--drain-timeout', '1']);
    await startService(registrar, ollama);
    const answer = forward(registrar, 'a long story');
    await waitFor(() => ollama!.stats.chats.length > 0, 5_000, 'the question to reach Ollama');
    const stopped = registrar.stop('SIGTERM', 20_000);
    const response = await answer;
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ error: 'The registrar shut down before the answer was over (its --drain-timeout of 1 s ran out)' });
    expect((await stopped).code).toBe(0);
    expect(registrar.output()).toMatch(/POST \/forward 503 /);
  });

  it('logs a forward whose caller left before any answer as 499, as the metrics count it', async () => {
    ollama = await startFakeOllama({ reply: REPLY, tokenDelayMs: 200 });
    const registrar = await startRegistrar();
    await startService(registrar, ollama);
    const caller = new AbortController();
    const answer = fetch(`${registrar.url}/forward`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'test', to: 'ollama_service', message: 'never mind' }),
      signal: caller.signal,
    }).catch(() => undefined);
    await waitFor(() => ollama!.stats.chats.length > 0, 5_000, 'the question to reach Ollama');
    caller.abort();
    await answer;
    await waitFor(() => /POST \/forward \d{3} /.test(registrar.output()), 5_000, 'the log line');
    expect(registrar.output()).toMatch(/POST \/forward 499 /);
    const metrics = await (await fetch(`${registrar.url}/metrics`)).text();
    expect(metrics).toMatch(/svcmesh_forwards_total\{target="ollama_service",status="499"\} 1/);
  });

  it('SIGTERM to the Ollama service when a streamed answer outlasts its --drain-timeout: it ends with an error line that says why, exit 0', async () => {
    ollama = await startFakeOllama({ reply: REPLY, tokenDelayMs: 200 });
    const service = await startSvcmesh(['ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', ollama.host, '--drain-timeout', '1']);
    const response = await fetch(`${service.url}/receive`, { method: 'POST', body: JSON.stringify({ from: 'test', message: 'a long story', stream: true }) });
    const { first, rest } = streamedLines(response);
    await first;
    const stopped = service.stop('SIGTERM', 20_000);
    const lines = await rest;
    expect(lines.length).toBeLessThan(REPLY.split(' ').length);
    expect(JSON.parse(lines.at(-1)!)).toEqual({ error: 'The Ollama service shut down before the answer was complete (its --drain-timeout of 1 s ran out)' });
    for (const line of lines.slice(0, -1)) expect(JSON.parse(line)).toHaveProperty('message');
    expect((await stopped).code).toBe(0);
    expect(ollama.stats.chats[0]?.status).toBe('aborted');
  });

  it('a heartbeating service is back within one heartbeat interval after a registrar restart (memory store)', async () => {
    ollama = await startFakeOllama();
    const port = await freePort();
    let registrar = await startRegistrar([], port);
    const service = await startService(registrar, ollama, ['--heartbeat-interval', '1']);
    expect((await registrar.stop('SIGTERM')).code).toBe(0);
    registrar = await startRegistrar([], port);
    expect(await servicesOf(registrar)).toEqual({});
    await waitFor(async () => (await servicesOf(registrar)).ollama_service === service.url, 5_000, 'service back');
    const response = await forward(registrar, 'after restart');
    expect(await response.json()).toEqual({ message: 'Answer to: after restart' });
  });

  it('the file store keeps the catalog, expiry times included, across a registrar restart', async () => {
    const dir = tempDir('svcmesh-store-');
    const store = `file:${dir}/catalog.json`;
    const port = await freePort();
    let registrar = await startRegistrar(['--store', store, '--ttl', '600'], port);
    await runSvcmesh(['register', 'billing', 'http://127.0.0.1:7001', '--registrar', registrar.url]);
    const before = await (await fetch(`${registrar.url}/services/billing`)).json();
    expect((await registrar.stop('SIGTERM')).code).toBe(0);
    registrar = await startRegistrar(['--store', store, '--ttl', '600'], port);
    const after = await (await fetch(`${registrar.url}/services/billing`)).json();
    expect(after).toEqual(before);
  });

  it('refuses to start on a corrupt catalog file and leaves it untouched', async () => {
    const dir = tempDir('svcmesh-store-');
    const path = `${dir}/catalog.json`;
    const { writeFileSync, readFileSync } = await import('node:fs');
    writeFileSync(path, '{"version": 1, "instances": [tr');
    const result = await runSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--store', `file:${path}`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`The catalog file ${path} is not valid JSON`);
    expect(readFileSync(path, 'utf8')).toBe('{"version": 1, "instances": [tr');
  });
});
