/**
 * Normalises an Ollama host the way the Ollama CLI reads OLLAMA_HOST: `h` → `http://h:11434`,
 * `:8000` → `http://127.0.0.1:8000`, a full URL as given (without a trailing slash).
 */
export function normaliseOllamaHost(value: string): string {
  let host = value.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) host = `http://${host.startsWith(':') ? `127.0.0.1${host}` : host}`;
  const url = new URL(host);
  if (!url.port && url.protocol === 'http:' && !/:\d+$/.test(url.host)) url.port = '11434';
  return url.toString().replace(/\/+$/, '');
}
