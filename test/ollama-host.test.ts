/** OLLAMA_HOST as the Ollama CLI reads it, and what it refuses instead of answering 503 forever. */
import { Ollama } from 'ollama/browser';
import { describe, expect, it } from 'vitest';
import { normaliseOllamaHost } from '../src/ollama-host.js';

/** The URL the ollama client asks for the version at, given `host`; nothing is sent. */
async function addressAsked(host: string): Promise<string> {
  let asked = '';
  const client = new Ollama({
    host,
    fetch: async (input) => {
      asked = String(input);
      throw new Error('not sent');
    },
  });
  await client.version().catch(() => {});
  return asked;
}

describe('normaliseOllamaHost', () => {
  it.each([
    ['127.0.0.1:11434', 'http://127.0.0.1:11434'],
    ['0.0.0.0', 'http://0.0.0.0:11434'],
    ['ollama.internal', 'http://ollama.internal:11434'],
    [':8000', 'http://127.0.0.1:8000'],
    ['::1', 'http://[::1]:11434'],
    ['[::1]:9000', 'http://[::1]:9000'],
    ['host:80', 'http://host'],
    // A URL without a port is port 80 (https: 443), as `ollama list` and ollama-js read it.
    ['http://host', 'http://host'],
    ['http://ollama.example.com/', 'http://ollama.example.com'],
    ['http://host:80', 'http://host'],
    ['https://host:443', 'https://host'],
    ['http://host:11434/ollama/', 'http://host:11434/ollama'],
    ['https://host', 'https://host'],
    ['  http://host:1234  ', 'http://host:1234'],
  ])('reads %j as %s', (value, expected) => {
    expect(normaliseOllamaHost(value)).toBe(expected);
  });

  it.each([
    ['http://ollama.example.com', 'http://ollama.example.com:80'],
    ['https://ollama.example.com', 'https://ollama.example.com:443'],
    ['ollama.example.com', 'http://ollama.example.com:11434'],
    [':8000', 'http://127.0.0.1:8000'],
  ])('reaches %j where the ollama client itself would: %s', async (value, where) => {
    for (const host of [normaliseOllamaHost(value), value]) {
      expect(await addressAsked(host)).toBe(`${where}/api/version`);
    }
  });

  it.each([
    ['', 'is empty'],
    ['http://bad host', 'is not a host, host:port or URL'],
    ['localhost:abc', 'is not a host, host:port or URL'],
    ['ftp://x', 'uses ftp:, but Ollama answers over http or https'],
    ['http://admin:s3cret@127.0.0.1', 'carries a user name or password, which Ollama does not take'],
  ])('refuses %j: it %s', (value, why) => {
    expect(() => normaliseOllamaHost(value)).toThrow(why);
  });
});
