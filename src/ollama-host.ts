import { isIPv6 } from 'node:net';

/** A value that names no place Ollama could answer at; the message says what is wrong with it. */
export class OllamaHostError extends Error {
  override readonly name = 'OllamaHostError';
}

/**
 * Normalises an Ollama host the way the Ollama CLI (envconfig) and ollama-js read OLLAMA_HOST:
 * without a scheme Ollama's port is meant (`h` → `http://h:11434`, `:8000` →
 * `http://127.0.0.1:8000`, `::1` → `http://[::1]:11434`); a URL means what a URL means, so
 * `http://h` is port 80 and `https://h` port 443 (shown without it, as given, and without a
 * trailing slash). Throws an OllamaHostError for what is no host, or not http(s).
 */
export function normaliseOllamaHost(value: string): string {
  let host = value.trim();
  if (host === '') throw new OllamaHostError('is empty');
  if (isIPv6(host)) host = `[${host}]`;
  const withoutScheme = !/^[a-z][a-z0-9+.-]*:\/\//i.test(host);
  if (withoutScheme) host = `http://${host.startsWith(':') ? `127.0.0.1${host}` : host}`;
  let url: URL;
  try {
    url = new URL(host);
  } catch {
    throw new OllamaHostError('is not a host, host:port or URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OllamaHostError(`uses ${url.protocol}, but Ollama answers over http or https`);
  if (url.hostname === '') throw new OllamaHostError('names no host');
  // fetch refuses a URL with credentials, and the host is shown in every error a caller can read.
  if (url.username !== '' || url.password !== '') {
    throw new OllamaHostError('carries a user name or password, which Ollama does not take and which every error would show');
  }
  // Only a bare host gets Ollama's port: a reverse proxy at http://ollama.example.com answers on
  // 80, as `ollama list` finds it. URL parsing drops an explicit :80, so look at what was written.
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(host)?.[1] ?? '';
  if (withoutScheme && !url.port && !/:\d+$/.test(authority)) url.port = '11434';
  return url.toString().replace(/\/+$/, '');
}
