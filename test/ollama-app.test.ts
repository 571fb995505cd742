/**
 * The Ollama microservice in-process, talking through the real `ollama` client to the fake
 * Ollama over HTTP.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startServer } from '../src/server/start.js';
import { createOllamaApp, InFlightTracker, type OllamaAppDeps } from '../src/server/ollama.js';
import { connectOllama, type OllamaConnection, type OllamaConnectionOptions } from '../src/server/ollama-connection.js';
import { startFakeOllama, waitFor, type FakeOllama, type FakeOllamaOptions } from './support/fake-ollama.js';

const REPLY = 'The capital of India is New Delhi.';
const fakes: FakeOllama[] = [];
const connections: OllamaConnection[] = [];

afterEach(async () => {
  await Promise.all(fakes.splice(0).map((fake) => fake.close()));
  await Promise.all(connections.splice(0).map((connection) => connection.close()));
});

async function fakeOllama(options: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const fake = await startFakeOllama({ reply: REPLY, ...options });
  fakes.push(fake);
  return fake;
}

type AppOptions = Partial<Omit<OllamaAppDeps, 'ollama'>> & { connection?: OllamaConnectionOptions };

function appFor(host: string, options: AppOptions = {}): Hono {
  const { connection: connectionOptions, ...deps } = options;
  const ollama = connectOllama(host, connectionOptions);
  connections.push(ollama);
  return createOllamaApp({ model: 'llama3.2', ...deps, ollama });
}

function receive(app: Hono, body: unknown, headers: Record<string, string> = {}) {
  return app.request('/receive', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function closedHost(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** What `/health` counts as answers in flight. */
async function inFlight(app: Hono): Promise<number> {
  return ((await (await app.request('/health')).json()) as { in_flight: number }).in_flight;
}

const BUSY = 'server busy, please try again.  maximum pending requests exceeded';

async function ndjson(response: Response): Promise<unknown[]> {
  const text = await response.text();
  expect(text.endsWith('\n')).toBe(true);
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as unknown);
}

describe('POST /receive', () => {
  it("answers the assistant's whole reply", async () => {
    const fake = await fakeOllama();
    const response = await receive(appFor(fake.host), { from: 'service_registrar', message: 'Capital of India?' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.text()).toBe(JSON.stringify({ message: REPLY }));
    expect(fake.stats.chats).toHaveLength(1);
    expect(fake.stats.chats[0]).toMatchObject({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'Capital of India?' }],
      status: 'completed',
    });
  });

  it('answers in context: the history comes before the question, as Ollama chat takes it', async () => {
    const fake = await fakeOllama();
    const history = [
      { role: 'user', content: 'My name is Ada.' },
      { role: 'assistant', content: 'Hello Ada.' },
    ];
    const response = await receive(appFor(fake.host), { from: 'svcmesh-cli', message: 'What is my name?', history });
    expect(response.status).toBe(200);
    expect(fake.stats.chats[0]?.messages).toEqual([...history, { role: 'user', content: 'What is my name?' }]);
  });

  it('refuses a history that is not a list of user and assistant turns, saying what is wrong', async () => {
    const fake = await fakeOllama();
    const response = await receive(appFor(fake.host), { message: 'hi', history: [{ role: 'system', content: 'obey' }] });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toContain('`history.0.role` must be "user" or "assistant"');
    expect(fake.stats.chats).toHaveLength(0);
  });

  it('works without a from field, and with optional fields sent as null (Python None)', async () => {
    const fake = await fakeOllama();
    for (const body of [{ message: 'Capital of India?' }, { from: null, message: 'Capital of India?', stream: null, history: null }]) {
      const response = await receive(appFor(fake.host), body);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ message: REPLY });
    }
  });

  it('streams one line per piece, then done, when asked to', async () => {
    const fake = await fakeOllama({ tokenDelayMs: 2 });
    const response = await receive(appFor(fake.host), { from: 'service_registrar', message: 'Capital of India?', stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = (await ndjson(response)) as Array<{ message?: string; done?: boolean }>;

    expect(lines.at(-1)).toEqual({ done: true });
    const chunks = lines.slice(0, -1);
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) expect(Object.keys(chunk)).toEqual(['message']);
    expect(chunks.map((chunk) => chunk.message).join('')).toBe(REPLY);
    expect(chunks.map((chunk) => chunk.message)).toEqual(fake.stats.chats[0]!.tokens);
  });

  it('sends each piece as soon as Ollama produces it', async () => {
    const fake = await fakeOllama({ tokenDelayMs: 30 });
    const response = await receive(appFor(fake.host), { message: 'Capital of India?', stream: true });
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('{"message":"The "}\n');
    // Ollama is still generating the rest when the first piece is already here.
    expect(fake.stats.chats[0]!.status).toBe('running');
    await reader.cancel();
    await waitFor(() => fake.stats.chats[0]!.status !== 'running', 5_000, 'generation to stop');
    expect(fake.stats.chats[0]!.status).toBe('aborted');
  });

  it('stops an answer read whole once it grows past the limit (a model that never stops), 502 saying to stream it; streamed, it flows on', async () => {
    const fake = await fakeOllama({ tokenDelayMs: 2, reply: 'word '.repeat(200) });
    const app = appFor(fake.host, { maxAnswerBytes: 100 });
    const whole = await receive(app, { message: 'go on forever' });
    expect(whole.status).toBe(502);
    expect(((await whole.json()) as { error: string }).error).toBe(
      'The answer from llama3.2 grew past 100 bytes: ask with "stream": true (svcmesh ask --stream) to get a long answer as it is produced',
    );
    // Ollama was told to stop, rather than generate the rest for nobody.
    await waitFor(() => fake.stats.chats[0]!.status !== 'running', 5_000, 'generation to stop');
    expect(fake.stats.chats[0]!.status).toBe('aborted');
    expect(await inFlight(app)).toBe(0);

    const streamed = await receive(appFor(fake.host, { maxAnswerBytes: 100 }), { message: 'short one', stream: true });
    expect(streamed.status).toBe(200);
    const lines = (await streamed.text()).trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(100);
    expect(JSON.parse(lines.at(-1)!)).toEqual({ done: true });
  });

  it('answers 503 naming the model and `ollama pull` when the model is missing', async () => {
    const fake = await fakeOllama({ models: ['qwen2.5:0.5b'] });
    for (const stream of [false, true]) {
      const response = await receive(appFor(fake.host), { message: 'hi', stream });
      expect(response.status).toBe(503);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const { error } = (await response.json()) as { error: string };
      expect(error).toContain('llama3.2');
      expect(error).toContain('ollama pull llama3.2');
    }
  });

  it('answers 503 when Ollama is not reachable, naming its address', async () => {
    const host = await closedHost();
    for (const stream of [false, true]) {
      const response = await receive(appFor(host), { message: 'hi', stream });
      expect(response.status).toBe(503);
      const { error } = (await response.json()) as { error: string };
      expect(error).toContain(`Ollama is not reachable at ${host}`);
    }
  });

  it('says Ollama speaks plain http when --ollama-host says https, rather than to start ollama serve', async () => {
    const fake = await fakeOllama();
    const host = fake.host.replace(/^http:/, 'https:');
    for (const stream of [false, true]) {
      const response = await receive(appFor(host), { message: 'hi', stream });
      expect(response.status).toBe(503);
      const { error } = (await response.json()) as { error: string };
      expect(error).toMatch(new RegExp(`^Ollama at ${host} does not speak TLS \\((EPROTO|ERR_SSL_[A-Z_]+)\\): Ollama serves plain http, so use http://`));
      expect(error).not.toContain('ollama serve');
    }
  });

  it('says Ollama was lost in the middle of the answer, not that it is not reachable, when its connection breaks mid-answer', async () => {
    const fake = await fakeOllama({ reply: 'one two three four five', dropAfterTokens: 2 });
    const lost = `Lost Ollama at ${fake.host} in the middle of the answer: the connection `;
    const whole = await receive(appFor(fake.host), { message: 'hi' });
    // Nothing reached the caller: 503, so the registrar asks another instance.
    expect(whole.status).toBe(503);
    expect(((await whole.json()) as { error: string }).error).toContain(lost);
    const streamed = await receive(appFor(fake.host), { message: 'hi', stream: true });
    const lines = (await streamed.text()).trimEnd().split('\n').map((line) => JSON.parse(line) as { message?: string; error?: string });
    expect(lines.slice(0, 2)).toEqual([{ message: 'one ' }, { message: 'two ' }]);
    expect(lines.at(-1)?.error).toContain(lost);
    expect(lines.at(-1)?.error).not.toContain('not reachable');
  });

  it('says a port fetch refuses to use (1, 6000…) is the problem, rather than that Ollama is not running', async () => {
    const response = await receive(appFor('http://127.0.0.1:1'), { message: 'hi' });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: string }).error).toMatch(/^Ollama cannot be reached at http:\/\/127\.0\.0\.1:1: that port is one web clients refuse .* Run Ollama on another port/);
  });

  it("refuses a /receive another site's page makes a browser send (403), and never asks Ollama", async () => {
    const fake = await fakeOllama();
    const app = appFor(fake.host);
    const pages: Array<Record<string, string>> = [{ origin: 'http://evil.example', 'content-type': 'text/plain' }, { 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' }];
    for (const headers of pages) {
      const response = await app.request('/receive', { method: 'POST', headers, body: JSON.stringify({ from: 'page', message: 'write me a novel' }) });
      expect(response.status).toBe(403);
      expect(((await response.json()) as { error: string }).error).toMatch(/^Refused a request sent by a web page at /);
    }
    expect(fake.stats.chats).toEqual([]);
    // Programs, as the registrar is, are answered.
    expect((await receive(app, { message: 'hi' })).status).toBe(200);
  });

  it('answers a 5xx JSON error when Ollama fails in the middle of a whole answer', async () => {
    const fake = await fakeOllama({ failAfterTokens: 2, failMessage: 'model runner has unexpectedly stopped' });
    const tracker = new InFlightTracker();
    const response = await receive(appFor(fake.host, { tracker }), { message: 'hi' });
    expect(response.status).toBeGreaterThanOrEqual(500);
    expect(response.status).toBeLessThan(600);
    const body = (await response.json()) as { error: string; message?: string };
    expect(body.error).toContain('model runner has unexpectedly stopped');
    expect(body).not.toHaveProperty('message');
    expect(tracker.count).toBe(0);
  });

  it('ends a stream with an error line, and no done line, when Ollama fails mid-way', async () => {
    const fake = await fakeOllama({ failAfterTokens: 3, failMessage: 'model runner has unexpectedly stopped' });
    const tracker = new InFlightTracker();
    const response = await receive(appFor(fake.host, { tracker }), { message: 'hi', stream: true });
    expect(response.status).toBe(200);
    const lines = (await ndjson(response)) as Array<Record<string, string>>;
    expect(lines.slice(0, 3)).toEqual([{ message: 'The ' }, { message: 'capital ' }, { message: 'of ' }]);
    expect(lines).toHaveLength(4);
    expect(lines[3]!.error).toContain('model runner has unexpectedly stopped');
    expect(lines.some((line) => 'done' in line)).toBe(false);
    expect(tracker.count).toBe(0);
  });

  it('streams a failure before any piece as an error status and body, as without streaming, so the registrar can try another instance', async () => {
    const fake = await fakeOllama({ failAfterTokens: 0, failMessage: 'model runner has unexpectedly stopped' });
    const tracker = new InFlightTracker();
    const app = appFor(fake.host, { tracker });
    const whole = await receive(app, { message: 'hi' });
    const streamed = await receive(app, { message: 'hi', stream: true });
    expect(streamed.status).toBe(whole.status);
    expect(streamed.status).toBeGreaterThanOrEqual(500);
    expect(streamed.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await streamed.json()) as { error: string };
    expect(body).toEqual(await whole.json());
    expect(body.error).toContain('model runner has unexpectedly stopped');
    expect(tracker.count).toBe(0);
  });

  it.each([false, true])('answers 503 when Ollama is busy (its queue is full), so the registrar tries another instance (stream: %s)', async (stream) => {
    const fake = await fakeOllama({ refuseChats: { status: 503, error: BUSY } });
    const response = await receive(appFor(fake.host), { message: 'hi', stream });
    expect(response.status).toBe(503);
    const { error } = (await response.json()) as { error: string };
    expect(error).toBe(`Ollama at ${fake.host} is busy: it answered 503: ${BUSY}`);
  });

  it('fails an answer that has a line from Ollama that is not JSON, rather than answer it with a piece missing', async () => {
    const fake = await fakeOllama({ corruptTokenAt: 2 });
    const whole = await receive(appFor(fake.host), { message: 'hi' });
    expect(whole.status).toBe(503);
    expect(((await whole.json()) as { error: string }).error).toMatch(/^Ollama at \S+ failed while answering: Ollama sent a line that is not JSON: /);

    const streamed = await receive(appFor(fake.host), { message: 'hi', stream: true });
    const lines = (await ndjson(streamed)) as Array<Record<string, string>>;
    expect(lines.slice(0, 2)).toEqual([{ message: 'The ' }, { message: 'capital ' }]);
    expect(lines).toHaveLength(3);
    expect(lines[2]!.error).toContain('Ollama sent a line that is not JSON');
    // Ollama is told to stop: nobody reads the rest.
    await waitFor(() => fake.stats.chats.every((chat) => chat.status !== 'running'), 5_000, 'generations to stop');
    expect(fake.stats.chats.map((chat) => chat.status)).toEqual(['aborted', 'aborted']);
  });

  it('says when Ollama does not start answering within a silence limit, rather than that it is not reachable', async () => {
    const fake = await fakeOllama({ firstTokenDelayMs: 60_000 });
    const response = await receive(appFor(fake.host, { connection: { silenceLimitMs: 200 } }), { message: 'hi' });
    expect(response.status).toBe(504);
    const { error } = (await response.json()) as { error: string };
    expect(error).toBe(`Ollama at ${fake.host} did not start answering within 0.2 s (POST /api/chat)`);
  });

  const bad: Array<[string, unknown]> = [
    ['malformed JSON', '{"message": '],
    ['an empty body', ''],
    ['a JSON array', '["hi"]'],
    ['a missing message', { from: 'x' }],
    ['an empty message', { message: '' }],
    ['a number as message', { message: 42 }],
    ['stream that is not a boolean', { message: 'hi', stream: 'yes' }],
  ];

  it.each(bad)('answers %s with a 400 JSON error and never asks Ollama', async (_what, body) => {
    const fake = await fakeOllama();
    const response = await receive(appFor(fake.host), body);
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: string };
    expect(error).toMatch(/JSON|`message`|`stream`/);
    expect(fake.stats.started).toBe(0);
  });

  it('answers 413 for a body over 1 MiB', async () => {
    const fake = await fakeOllama();
    const response = await receive(appFor(fake.host), { message: 'x'.repeat(1024 * 1024 + 1) });
    expect(response.status).toBe(413);
    expect(fake.stats.started).toBe(0);
  });

  it('answers an unknown route with a JSON 404', async () => {
    const fake = await fakeOllama();
    const response = await appFor(fake.host).request('/nope');
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'No route for GET /nope' });
  });
});

describe('a caller that leaves', () => {
  it.each([false, true])('before Ollama\'s first token (stream: %s) cancels the request in Ollama, and /health stops counting it', async (stream) => {
    const fake = await fakeOllama({ firstTokenDelayMs: 60_000 });
    const app = appFor(fake.host);
    const caller = new AbortController();
    const request = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: 'hi', stream }), signal: caller.signal };
    const answer = Promise.resolve(app.request('/receive', request)).catch(() => undefined);
    await waitFor(() => fake.stats.chats.length === 1, 5_000, 'the question to reach Ollama');
    expect(await inFlight(app)).toBe(1);

    caller.abort();
    await waitFor(() => fake.stats.chats[0]!.status !== 'running', 5_000, 'Ollama to stop');
    expect(fake.stats.chats[0]).toMatchObject({ status: 'aborted', tokens: [] });
    await waitFor(async () => (await inFlight(app)) === 0, 5_000, 'in_flight to drop');
    await answer;
  });

  it('over a real connection (curl -m 1) cancels the request in Ollama while the model is still loading', async () => {
    const fake = await fakeOllama({ firstTokenDelayMs: 60_000 });
    const app = appFor(fake.host);
    const server = await startServer(app, { host: '127.0.0.1', port: 0 });
    try {
      const caller = new AbortController();
      const answer = fetch(`${server.url}/receive`, { method: 'POST', body: JSON.stringify({ message: 'hi' }), signal: caller.signal }).catch(() => undefined);
      await waitFor(() => fake.stats.chats.length === 1, 5_000, 'the question to reach Ollama');
      caller.abort();
      await answer;
      await waitFor(() => fake.stats.chats[0]!.status !== 'running', 5_000, 'Ollama to stop');
      expect(fake.stats.chats[0]!.status).toBe('aborted');
      await waitFor(async () => (await inFlight(app)) === 0, 5_000, 'in_flight to drop');
    } finally {
      await server.close(0);
    }
  });
});

describe('when the service cuts answers short (its drain time ran out)', () => {
  const WHY = 'The Ollama service shut down before the answer was complete (its --drain-timeout of 1 s ran out)';

  it('ends a streamed answer with an error line that says why, and stops Ollama', async () => {
    const fake = await fakeOllama({ tokenDelayMs: 50 });
    const cut = new AbortController();
    const tracker = new InFlightTracker();
    const response = await receive(appFor(fake.host, { cutAnswers: cut.signal, tracker }), { message: 'hi', stream: true });
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('{"message":"The "}\n');
    cut.abort(WHY);
    let rest = '';
    for (let part = await reader.read(); !part.done; part = await reader.read()) rest += new TextDecoder().decode(part.value);
    expect(rest.endsWith(`${JSON.stringify({ error: WHY })}\n`)).toBe(true);
    await waitFor(() => fake.stats.chats[0]!.status !== 'running', 5_000, 'Ollama to stop');
    expect(fake.stats.chats[0]!.status).toBe('aborted');
    expect(tracker.count).toBe(0);
  });

  it('answers 503 with why to an answer not yet begun, so the registrar can ask another instance', async () => {
    const fake = await fakeOllama({ firstTokenDelayMs: 60_000 });
    const cut = new AbortController();
    const answer = receive(appFor(fake.host, { cutAnswers: cut.signal }), { message: 'hi' });
    await waitFor(() => fake.stats.chats.length === 1, 5_000, 'the question to reach Ollama');
    cut.abort(WHY);
    const response = await answer;
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ error: WHY });
  });
});

describe('what the service prints', () => {
  it('is only its own lines: nothing from the ollama client about answers that are not Ollama\'s or not JSON', async () => {
    const printed = (['log', 'info', 'warn', 'error', 'debug'] as const).map((method) => vi.spyOn(console, method).mockImplementation(() => {}));
    try {
      const fake = await fakeOllama({ corruptTokenAt: 1 });
      // A wrong path: Ollama's router answers a plain-text "404 page not found", as nginx or another server would.
      for (const app of [appFor(`${fake.url}/not-ollama`), appFor(fake.host)]) {
        await (await receive(app, { message: 'hi' })).text();
        await (await receive(app, { message: 'hi', stream: true })).text();
        await (await app.request('/health')).text();
      }
      for (const spy of printed) expect(spy.mock.calls).toEqual([]);
    } finally {
      for (const spy of printed) spy.mockRestore();
    }
  });
});

describe('with a token', () => {
  it('refuses /receive without the right bearer token and answers with it', async () => {
    const fake = await fakeOllama();
    const app = appFor(fake.host, { token: 's3cret' });
    for (const headers of [{}, { authorization: 'Bearer nope' }] as Array<Record<string, string>>) {
      const response = await receive(app, { message: 'hi' }, headers);
      expect(response.status).toBe(401);
      expect(((await response.json()) as { error: string }).error).toMatch(/token/i);
    }
    expect(fake.stats.started).toBe(0);

    const response = await receive(app, { message: 'hi' }, { authorization: 'Bearer s3cret' });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ message: REPLY });
    expect((await app.request('/health')).status).toBe(200);
  });
});

describe('GET /health', () => {
  it('is 200 when Ollama answers and the model is present', async () => {
    const fake = await fakeOllama({ models: ['llama3.2:latest'], version: '0.5.7' });
    const response = await appFor(fake.host).request('/health');
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: 'ok', model: 'llama3.2', ollama: fake.host, ollama_version: '0.5.7' });
  });

  it('accepts a model asked for with an explicit tag', async () => {
    const fake = await fakeOllama({ models: ['qwen2.5:0.5b'] });
    expect((await appFor(fake.host, { model: 'qwen2.5:0.5b' }).request('/health')).status).toBe(200);
  });

  it('is 503 with the reason when the model is missing', async () => {
    const fake = await fakeOllama({ models: ['qwen2.5:0.5b'] });
    const response = await appFor(fake.host).request('/health');
    expect(response.status).toBe(503);
    const body = (await response.json()) as { status: string; error: string };
    expect(body.status).not.toBe('ok');
    expect(body.error).toContain('ollama pull llama3.2');
  });

  it('is 503, and says so, when Ollama takes the connection but does not answer in time', async () => {
    const fake = await fakeOllama({ silentRoutes: ['GET /api/version', 'GET /api/tags'] });
    const response = await appFor(fake.host, { healthTimeoutMs: 300 }).request('/health');
    expect(response.status).toBe(503);
    const body = (await response.json()) as { status: string; error: string };
    expect(body.status).not.toBe('ok');
    expect(body.error).toMatch(new RegExp(`^Ollama at ${fake.host} did not answer within 0.3 s`));
  });

  it('says a host that answers 404 pages does not look like Ollama, and never to pull the model', async () => {
    const fake = await fakeOllama();
    const host = `${fake.url}/not-ollama`;
    const app = appFor(host);
    const health = await app.request('/health');
    expect(health.status).toBe(503);
    const { error } = (await health.json()) as { error: string };
    expect(error).toMatch(new RegExp(`^${host} does not look like Ollama \\(GET /not-ollama/api/(version|tags) answered 404: 404 page not found\\)`));
    expect(error).not.toContain('ollama pull');

    const answer = await receive(app, { message: 'hi' });
    expect(answer.status).toBe(503);
    expect(((await answer.json()) as { error: string }).error).toContain(`${host} does not look like Ollama (POST /not-ollama/api/chat answered 404: 404 page not found)`);
  });

  it('says a JSON API that answers 404 in the same {"error"} shape (a registrar given by mistake) does not look like Ollama', async () => {
    const other = createServer((req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `No route for ${req.method} ${req.url}` })));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const host = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
      const health = await appFor(host).request('/health');
      expect(health.status).toBe(503);
      const { error } = (await health.json()) as { error: string };
      expect(error).toMatch(new RegExp(`^${host} does not look like Ollama \\(GET /api/(version|tags) answered 404: .*No route for GET /api/`));
    } finally {
      other.closeAllConnections();
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('says a JSON API that answers 200 with something else is not answering as Ollama, not that Ollama is unreachable', async () => {
    const other = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const host = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
      const answer = await receive(appFor(host), { message: 'hi' });
      const { error } = (await answer.json()) as { error: string };
      expect(error).toContain(`Ollama at ${host} answered with something that is not Ollama's answer`);
      expect(error).not.toContain('not reachable');
    } finally {
      other.closeAllConnections();
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('is 503 with the reason when Ollama is down', async () => {
    const host = await closedHost();
    const response = await appFor(host).request('/health');
    expect(response.status).toBe(503);
    const body = (await response.json()) as { status: string; error: string };
    expect(body.status).not.toBe('ok');
    expect(body.error).toContain(`Ollama is not reachable at ${host}`);
  });
});
