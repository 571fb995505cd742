/**
 * The fake is only worth something if the real `ollama` client cannot tell it from Ollama,
 * so every check here goes through `ollama` itself (plus raw fetch for the wire details).
 */
import { Ollama } from 'ollama';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeOllama, waitFor, type FakeOllama, type FakeOllamaOptions } from './support/fake-ollama.js';

const open: FakeOllama[] = [];

async function fake(options?: FakeOllamaOptions): Promise<{ server: FakeOllama; client: Ollama }> {
  const server = await startFakeOllama(options);
  open.push(server);
  return { server, client: new Ollama({ host: server.host }) };
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((server) => server.close()));
});

const ask = (content: string) => [{ role: 'user', content }];

/** Collects what a caller sees, and the error that ended the stream (if any). */
async function drain(iterator: AsyncIterable<{ message: { content: string } }>): Promise<{ text: string; parts: number; error?: Error }> {
  let text = '';
  let parts = 0;
  try {
    for await (const part of iterator) {
      text += part.message.content;
      parts += 1;
    }
    return { text, parts };
  } catch (error) {
    return { text, parts, error: error as Error };
  }
}

describe('fake Ollama through the real ollama client', () => {
  it('streams a chat answer token by token, ending with done and the counters', async () => {
    const { server, client } = await fake();
    const iterator = await client.chat({ model: 'llama3.2', messages: ask('What is AI?'), stream: true });
    const parts = [];
    for await (const part of iterator) parts.push(part);

    expect(parts.map((p) => p.message.content).join('')).toBe('Answer to: What is AI?');
    expect(parts.slice(0, -1).map((p) => p.message.content)).toEqual(['Answer ', 'to: ', 'What ', 'is ', 'AI?']);
    const last = parts.at(-1)!;
    expect(last).toMatchObject({ model: 'llama3.2', done: true, done_reason: 'stop', eval_count: 5 });
    expect(last.total_duration).toBeGreaterThan(0);
    expect(server.stats).toMatchObject({ started: 1, completed: 1, aborted: 0, tokensWritten: [5] });
  });

  it('answers one JSON document when stream is false', async () => {
    const { server, client } = await fake({ reply: (messages) => `You said ${messages.length} thing(s)` });
    const answer = await client.chat({ model: 'llama3.2:latest', messages: ask('hi'), stream: false });
    expect(answer.message).toEqual({ role: 'assistant', content: 'You said 1 thing(s)' });
    expect(answer.done).toBe(true);
    expect(server.stats.chats[0]).toMatchObject({ stream: false, status: 'completed' });
  });

  it('lists the configured models with canonical names, and reports its version', async () => {
    const { client } = await fake({ models: ['llama3.2', 'qwen2.5:0.5b'] });
    const { models } = await client.list();
    expect(models.map((m) => m.name)).toEqual(['llama3.2:latest', 'qwen2.5:0.5b']);
    expect(models[0]).toMatchObject({ model: 'llama3.2:latest', details: { format: 'gguf' } });
    expect(models[0]!.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(await client.version()).toEqual({ version: '0.5.7' });
  });

  it('rejects an unknown model with the ResponseError Ollama gives', async () => {
    const { server, client } = await fake();
    const error = await client.chat({ model: 'mistral', messages: ask('hi'), stream: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      name: 'ResponseError',
      status_code: 404,
      error: 'model "mistral" not found, try pulling it first',
    });
    expect(server.stats.started).toBe(0);
  });

  it('ends the stream with an in-stream error when failAfterTokens is reached', async () => {
    const { server, client } = await fake({ reply: 'one two three four five', failAfterTokens: 2 });
    const iterator = await client.chat({ model: 'llama3.2', messages: ask('count'), stream: true });
    const seen = await drain(iterator);

    expect(seen.text).toBe('one two ');
    expect(seen.error?.message).toMatch(/error was encountered while running the model/);
    expect(server.stats).toMatchObject({ failed: 1, completed: 0, tokensWritten: [2] });
  });

  it('stops generating when the client aborts, and records the abort', async () => {
    const reply = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
    const { server, client } = await fake({ reply, tokenDelayMs: 20 });
    const iterator = await client.chat({ model: 'llama3.2', messages: ask('long please'), stream: true });

    let parts = 0;
    const ended = await (async () => {
      try {
        for await (const _part of iterator) {
          parts += 1;
          if (parts === 1) iterator.abort();
        }
      } catch (error) {
        return error as Error;
      }
    })();
    expect(ended?.name).toBe('AbortError');
    expect(parts).toBe(1);

    await waitFor(() => server.stats.aborted === 1, 2_000, 'the fake to notice the abort');
    const written = server.stats.chats[0]!.tokens.length;
    expect(written).toBeLessThan(server.stats.chats[0]!.plannedTokens.length);
    // Several token delays later nothing more has been produced: generation really stopped.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.stats.chats[0]!.tokens.length).toBe(written);
    expect(server.stats).toMatchObject({ started: 1, completed: 0, running: 0 });
  });

  it('sends nothing, not even the status line, before the first token; a client that leaves meanwhile stops it', async () => {
    const { server } = await fake({ firstTokenDelayMs: 60_000 });
    const leaving = new AbortController();
    const answer = fetch(`${server.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', messages: ask('x') }), signal: leaving.signal });
    let headers = false;
    void answer.then(() => (headers = true), () => {});
    await waitFor(() => server.stats.started === 1, 2_000, 'the chat to start');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(headers).toBe(false);
    leaving.abort();
    await waitFor(() => server.stats.aborted === 1, 2_000, 'the fake to notice the abort');
    expect(server.stats.chats[0]!.tokens).toEqual([]);
  });

  it('refuses chats as Ollama with a full queue does, before any work', async () => {
    const busy = 'server busy, please try again.  maximum pending requests exceeded';
    const { server, client } = await fake({ refuseChats: { status: 503, error: busy } });
    const error = await client.chat({ model: 'llama3.2', messages: ask('hi'), stream: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'ResponseError', status_code: 503, error: busy });
    expect(server.stats.started).toBe(0);
  });

  it('answers a request with no messages as a model load, like Ollama', async () => {
    const { server, client } = await fake();
    const answer = await client.chat({ model: 'llama3.2', messages: [], stream: false });
    expect(answer).toMatchObject({ done: true, done_reason: 'load', message: { content: '' } });
    expect(server.stats.started).toBe(0);
  });
});

describe('fake Ollama on the wire', () => {
  it('streams by default (no stream field) as application/x-ndjson', async () => {
    const { server } = await fake({ reply: 'a b' });
    const res = await fetch(`${server.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', messages: ask('x') }),
    });
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = (await res.text()).trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((l) => l.message.content)).toEqual(['a ', 'b', '']);
    expect(lines.map((l) => l.done)).toEqual([false, false, true]);
  });

  it('answers unknown routes with gin\'s plain-text 404', async () => {
    const { server } = await fake();
    const res = await fetch(`${server.url}/api/nope`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('404 page not found');
    expect((await fetch(`${server.url}/api/chat`)).status).toBe(404); // wrong method, same answer
  });

  it('answers the unknown-model 404 as JSON', async () => {
    const { server } = await fake();
    const res = await fetch(`${server.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'nope', messages: ask('x'), stream: false }),
    });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ error: 'model "nope" not found, try pulling it first' });
  });

  it('closes promptly even with a stream still in progress', async () => {
    const { server } = await fake({ reply: 'slow '.repeat(100), tokenDelayMs: 50 });
    const res = await fetch(`${server.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', messages: ask('x') }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    const startedClosing = Date.now();
    await server.close();
    expect(Date.now() - startedClosing).toBeLessThan(1_000);
    await expect(reader.read()).rejects.toThrow();
    await waitFor(() => server.stats.aborted === 1, 2_000, 'the stream to count as aborted');
  });
});
