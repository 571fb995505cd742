/** OLLAMA_HOST as the Ollama CLI reads it, and what it refuses instead of answering 503 forever. */
import { describe, expect, it } from 'vitest';
import { normaliseOllamaHost } from '../src/ollama-host.js';

describe('normaliseOllamaHost', () => {
  it.each([
    ['127.0.0.1:11434', 'http://127.0.0.1:11434'],
    ['0.0.0.0', 'http://0.0.0.0:11434'],
    ['ollama.internal', 'http://ollama.internal:11434'],
    [':8000', 'http://127.0.0.1:8000'],
    ['::1', 'http://[::1]:11434'],
    ['[::1]:9000', 'http://[::1]:9000'],
    ['http://host', 'http://host:11434'],
    ['http://host:80', 'http://host'],
    ['http://host:11434/ollama/', 'http://host:11434/ollama'],
    ['https://host', 'https://host'],
    ['  http://host:1234  ', 'http://host:1234'],
  ])('reads %j as %s', (value, expected) => {
    expect(normaliseOllamaHost(value)).toBe(expected);
  });

  it.each([
    ['', 'is empty'],
    ['http://bad host', 'is not a host, host:port or URL'],
    ['localhost:abc', 'is not a host, host:port or URL'],
    ['ftp://x', 'uses ftp:, but Ollama answers over http or https'],
  ])('refuses %j: it %s', (value, why) => {
    expect(() => normaliseOllamaHost(value)).toThrow(why);
  });
});
