import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';

// node:http and node:https (which brings tls and crypto) are loaded on the first request, not
// at start-up: loading them cost `svcmesh --version` about a fifth of its time.
const loadBuiltin = createRequire(import.meta.url);
let http: typeof import('node:http') | undefined;
let https: typeof import('node:https') | undefined;
const requestFor = (protocol: string) =>
  protocol === 'https:' ? (https ??= loadBuiltin('node:https') as typeof import('node:https')).request : (http ??= loadBuiltin('node:http') as typeof import('node:http')).request;

/** What the clients read of an answer; a web `Response` has all of it too. */
export interface ClientResponse {
  readonly ok: boolean;
  readonly status: number;
  readonly statusText: string;
  readonly headers: { get(name: string): string | null };
  /** A web Response's body is a ReadableStream, which Node can iterate as well. */
  readonly body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array> | null;
  text(): Promise<string>;
}

export interface ClientRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

export type ClientFetch = (url: string, init: ClientRequest) => Promise<ClientResponse>;

/**
 * A fetch for the CLI over node:http. Node 20's global fetch loads its bundled undici on first
 * use, about 150 ms: more than the rest of a client command's start-up put together.
 */
export const nodeFetch: ClientFetch = (url, init) =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = requestFor(target.protocol)(
      target,
      // Headers up to 64 KiB, as the registrar relays a target's: node's own limit is 16 KiB.
      { method: init.method ?? 'GET', headers: init.headers, signal: init.signal, maxHeaderSize: 64 * 1024 },
      (message) => resolve(wrap(message)),
    );
    request.on('error', reject);
    request.end(init.body);
  });

function wrap(message: IncomingMessage): ClientResponse {
  const status = message.statusCode ?? 0;
  return {
    ok: status >= 200 && status < 300,
    status,
    statusText: message.statusMessage ?? '',
    headers: {
      get(name) {
        const value = message.headers[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
      },
    },
    body: message,
    async text() {
      const chunks: Buffer[] = [];
      for await (const chunk of message) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}
