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

/** Node's decoder for each content coding a server may send; others are read as they come. */
const DECODERS = { gzip: 'createGunzip', 'x-gzip': 'createGunzip', deflate: 'createInflate', br: 'createBrotliDecompress' } as const;

/**
 * The body with its content codings undone, the last applied first. The CLI never asks for one,
 * but a forward relays a target's answer as it was sent, and some targets (behind a proxy that
 * compresses, say) gzip whatever they send. node:zlib is loaded only then.
 */
function decodedBody(message: IncomingMessage): AsyncIterable<Uint8Array> {
  const header = message.headers['content-encoding'];
  if (!header) return message;
  const codings = header
    .toLowerCase()
    .split(',')
    .map((coding) => coding.trim())
    .filter((coding) => coding !== '' && coding !== 'identity');
  if (codings.length === 0) return message;
  const unknown = codings.find((coding) => !Object.hasOwn(DECODERS, coding));
  if (unknown !== undefined) {
    message.resume();
    return refuse(new BrokenEncoding(header.trim(), `its body is in an encoding svcmesh cannot decode (${unknown.slice(0, 40)})`));
  }
  const zlib = loadBuiltin('node:zlib') as typeof import('node:zlib');
  const { pipeline } = loadBuiltin('node:stream') as typeof import('node:stream');
  const decoders = codings.reverse().map((coding) => zlib[DECODERS[coding as keyof typeof DECODERS]]());
  // No bytes at all is an empty answer (a 204 still labelled gzip), not a broken gzip.
  const received = { bytes: 0 };
  message.on('data', (chunk: Buffer) => {
    received.bytes += chunk.byteLength;
  });
  // A cut connection, or bytes that do not decode, end the decoded body with that error.
  const decoded = pipeline([message, ...decoders], () => {}) as unknown as AsyncIterable<Uint8Array>;
  return decodeOrSay(decoded, header.trim(), received);
}

async function* refuse(error: Error): AsyncGenerator<Uint8Array> {
  throw error;
}

async function* decodeOrSay(decoder: AsyncIterable<Uint8Array>, coding: string, received: { bytes: number }): AsyncGenerator<Uint8Array> {
  try {
    yield* decoder;
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    if (received.bytes === 0 && code === 'Z_BUF_ERROR') return;
    if (code.startsWith('Z_') || code.startsWith('ERR_BROTLI') || code.startsWith('ERR__ERROR')) throw new BrokenEncoding(coding, `its body is not valid ${coding} (${code})`);
    throw error;
  }
}

/** The most of a decoded answer read whole, as the registrar reads at most of one. */
const MAX_WHOLE_BYTES = 64 * 1024 * 1024;

/** An answer longer than the client reads. */
export class TooLong extends Error {
  override readonly name = 'TooLong';
}

/** The bytes came, but do not decode as the content coding the answer named. */
export class BrokenEncoding extends Error {
  override readonly name = 'BrokenEncoding';
  constructor(
    readonly coding: string,
    message: string,
  ) {
    super(message);
  }
}

function wrap(message: IncomingMessage): ClientResponse {
  const status = message.statusCode ?? 0;
  const body = decodedBody(message);
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
    body,
    async text() {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of body) {
        // The registrar relays at most 64 MiB whole, but a compressed answer may unpack to far
        // more: a thousandfold for a run of one letter.
        size += chunk.byteLength;
        if (size > MAX_WHOLE_BYTES) {
          message.destroy();
          throw new TooLong(`its body is more than ${MAX_WHOLE_BYTES / 1024 / 1024} MiB once decoded, more than is read whole: send "stream": true to get it as it comes`);
        }
        chunks.push(chunk as Buffer);
      }
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}
