/**
 * A fake Ollama server for tests: a real node:http server on 127.0.0.1 that answers the
 * routes svcmesh uses (chat, tags, version, show) the way Ollama 0.5.x does, byte for byte
 * where it matters to the `ollama` npm client: status codes, content types, NDJSON framing,
 * in-stream `{"error"}` lines, and stopping generation when the client goes away.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ChatMessage {
  role: string;
  content: string;
  [extra: string]: unknown;
}

/** What a chat request carried, as the fake parsed it. */
export interface ChatRequestBody {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  [extra: string]: unknown;
}

export type ReplyFn = (messages: ChatMessage[], request: ChatRequestBody) => string | Promise<string>;

export interface FakeOllamaOptions {
  /** Installed models; `llama3.2` is stored as `llama3.2:latest`, as Ollama does. */
  models?: string[];
  /** The assistant's whole answer; default `Answer to: <last user message>`. */
  reply?: string | ReplyFn;
  /** Time the "model" spends on each token, written before each one. Default 0. */
  tokenDelayMs?: number;
  /** Splits a reply into the pieces streamed one per line. Default: words with their trailing whitespace. */
  tokenize?: (reply: string) => string[];
  /** After this many tokens, end the generation with an error (in-stream line, or HTTP 500 when not streaming). */
  failAfterTokens?: number;
  /** The error text used by `failAfterTokens`. */
  failMessage?: string;
  /** Reported by GET /api/version. Default `0.5.7`. */
  version?: string;
  /**
   * Time before the first token (model loading, prompt evaluation, waiting in Ollama's queue);
   * like Ollama, nothing is sent until then, not even the status line. Default 0.
   */
  firstTokenDelayMs?: number;
  /**
   * Refuse every chat before any work with this status and JSON error, as Ollama does when its
   * queue is full: 503 `server busy, please try again.  maximum pending requests exceeded`.
   */
  refuseChats?: { status: number; error: string };
  /** The line of this token (0-based) is sent cut short, not JSON: as a proxy that truncates a line would. */
  corruptTokenAt?: number;
  /** After this many tokens the connection is cut, mid-answer, with no last line: as when Ollama crashes or the network drops. */
  dropAfterTokens?: number;
  /** Routes (`GET /api/tags`) that take the request and never answer: a hung Ollama. */
  silentRoutes?: string[];
}

/** Options after defaults; the server reads them on every request, so a test may change them mid-way. */
export interface FakeOllamaConfig {
  models: string[];
  reply: string | ReplyFn;
  tokenDelayMs: number;
  tokenize: (reply: string) => string[];
  failAfterTokens: number | undefined;
  failMessage: string;
  version: string;
  firstTokenDelayMs: number;
  refuseChats: { status: number; error: string } | undefined;
  corruptTokenAt: number | undefined;
  dropAfterTokens: number | undefined;
  silentRoutes: string[];
}

export type ChatStatus = 'running' | 'completed' | 'aborted' | 'failed';

/** One chat request that reached generation (a known model and at least one message). */
export interface ChatRecord {
  id: number;
  model: string;
  messages: ChatMessage[];
  stream: boolean;
  status: ChatStatus;
  /** Every token of the reply the fake meant to produce. */
  plannedTokens: string[];
  /** The tokens actually written (or, without streaming, generated) before the end. */
  tokens: string[];
}

export interface RequestRecord {
  method: string;
  path: string;
  status?: number;
}

/** Observable facts for assertions; the counters are derived from `chats`. */
export class FakeOllamaStats {
  readonly chats: ChatRecord[] = [];
  readonly requests: RequestRecord[] = [];

  get started(): number {
    return this.chats.length;
  }
  get running(): number {
    return this.count('running');
  }
  get completed(): number {
    return this.count('completed');
  }
  get aborted(): number {
    return this.count('aborted');
  }
  get failed(): number {
    return this.count('failed');
  }
  /** Tokens written per chat request, in arrival order. */
  get tokensWritten(): number[] {
    return this.chats.map((chat) => chat.tokens.length);
  }

  private count(status: ChatStatus): number {
    return this.chats.filter((chat) => chat.status === status).length;
  }
}

export interface FakeOllama {
  /** Base URL, e.g. `http://127.0.0.1:PORT`; `host` is the same string (the ollama client's option name). */
  url: string;
  host: string;
  port: number;
  config: FakeOllamaConfig;
  stats: FakeOllamaStats;
  /** Stops listening and destroys open connections, so no test waits on a half-sent stream. */
  close(): Promise<void>;
}

const DEFAULT_FAIL_MESSAGE = 'an error was encountered while running the model: unexpected EOF';

/** Words keep their trailing whitespace, so joining the tokens gives back the reply exactly. */
export function splitKeepingWhitespace(reply: string): string[] {
  return reply.match(/^\s+|\S+\s*/g) ?? [];
}

function defaultReply(messages: ChatMessage[]): string {
  const lastUser = [...messages].reverse().find((message) => message.role === 'user');
  return `Answer to: ${lastUser?.content ?? ''}`;
}

/** Ollama's name rules, enough for tests: case-insensitive, and no tag means `:latest`. */
export function canonicalModelName(name: string): string {
  const lower = name.trim().toLowerCase();
  const afterLastSlash = lower.slice(lower.lastIndexOf('/') + 1);
  return afterLastSlash.includes(':') ? lower : `${lower}:latest`;
}

function resolveConfig(options: FakeOllamaOptions): FakeOllamaConfig {
  return {
    models: options.models ?? ['llama3.2:latest'],
    reply: options.reply ?? defaultReply,
    tokenDelayMs: options.tokenDelayMs ?? 0,
    tokenize: options.tokenize ?? splitKeepingWhitespace,
    failAfterTokens: options.failAfterTokens,
    failMessage: options.failMessage ?? DEFAULT_FAIL_MESSAGE,
    version: options.version ?? '0.5.7',
    firstTokenDelayMs: options.firstTokenDelayMs ?? 0,
    refuseChats: options.refuseChats,
    corruptTokenAt: options.corruptTokenAt,
    dropAfterTokens: options.dropAfterTokens,
    silentRoutes: options.silentRoutes ?? [],
  };
}

// ---------------------------------------------------------------------------------------------
// Response writers: the exact shapes Ollama (gin) answers with.

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, error: string): void {
  sendJson(res, status, { error });
}

/** gin's answer for a route (or method) it does not know. */
function sendNotFoundPage(res: ServerResponse): void {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('404 page not found');
}

function sendText(res: ServerResponse, text: string): void {
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}

// ---------------------------------------------------------------------------------------------
// Request parsing.

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** Ollama answers 400 with Go's decoder messages; the wording differs, the status and shape do not. */
async function readJson(req: IncomingMessage): Promise<Parsed<Record<string, unknown>>> {
  const text = await readBody(req);
  if (text.trim() === '') return { ok: false, error: 'missing request body' };
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return { ok: false, error: 'json: cannot unmarshal into Go value of type api.ChatRequest' };
    }
    return { ok: true, value: value as Record<string, unknown> };
  } catch (error) {
    return { ok: false, error: `invalid character in request body: ${(error as Error).message}` };
  }
}

function parseChatRequest(body: Record<string, unknown>): Parsed<ChatRequestBody> {
  if (typeof body.model !== 'string' || body.model === '') return { ok: false, error: 'model is required' };
  const messages = body.messages ?? [];
  if (!Array.isArray(messages)) return { ok: false, error: 'json: cannot unmarshal messages' };
  return { ok: true, value: { ...body, model: body.model, messages: messages as ChatMessage[] } };
}

// ---------------------------------------------------------------------------------------------
// Chat generation.

function findModel(config: FakeOllamaConfig, name: string): string | undefined {
  const wanted = canonicalModelName(name);
  return config.models.map(canonicalModelName).find((model) => model === wanted);
}

/** Resolves on 'drain', or at once if the client has gone (then nothing will drain). */
async function writeLine(res: ServerResponse, value: unknown): Promise<void> {
  if (res.destroyed) return;
  if (res.write(`${JSON.stringify(value)}\n`)) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** The counters Ollama puts on its final message; durations in nanoseconds, as Ollama reports them. */
function finalCounters(startedAt: bigint, record: ChatRecord) {
  const total = Number(process.hrtime.bigint() - startedAt);
  const promptTokens = record.messages.reduce((sum, m) => sum + splitKeepingWhitespace(String(m.content ?? '')).length, 0);
  return {
    total_duration: total,
    load_duration: Math.round(total * 0.05),
    prompt_eval_count: promptTokens,
    prompt_eval_duration: Math.round(total * 0.1),
    eval_count: record.tokens.length,
    eval_duration: Math.round(total * 0.85),
  };
}

function assistantMessage(content: string): ChatMessage {
  return { role: 'assistant', content };
}

type GenerationEnd = 'done' | 'aborted' | 'failed';

/**
 * Produces tokens one by one, handing each to `emit`. A departed client ends the wait at once
 * and no further token is produced: real Ollama cancels the generation (and a model load or a
 * place in its queue) when the request context ends, and tests assert exactly that.
 */
async function generate(
  record: ChatRecord,
  config: FakeOllamaConfig,
  left: AbortSignal,
  emit: (token: string) => Promise<void>,
): Promise<GenerationEnd> {
  if (config.firstTokenDelayMs > 0) await sleep(config.firstTokenDelayMs, undefined, { signal: left }).catch(() => {});
  for (const token of record.plannedTokens) {
    if (config.failAfterTokens !== undefined && record.tokens.length >= config.failAfterTokens) return 'failed';
    if (left.aborted) return 'aborted';
    await (config.tokenDelayMs > 0 ? sleep(config.tokenDelayMs, undefined, { signal: left }).catch(() => {}) : new Promise<void>((r) => setImmediate(r)));
    if (left.aborted) return 'aborted';
    await emit(token);
    record.tokens.push(token);
  }
  if (config.failAfterTokens !== undefined && record.tokens.length >= config.failAfterTokens) return 'failed';
  return left.aborted ? 'aborted' : 'done';
}

/** Aborted when the client closes the connection before the response was finished. */
function watchForAbort(res: ServerResponse): AbortSignal {
  const left = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) left.abort();
  });
  return left.signal;
}

async function streamChat(res: ServerResponse, record: ChatRecord, config: FakeOllamaConfig): Promise<GenerationEnd> {
  const startedAt = process.hrtime.bigint();
  const left = watchForAbort(res);
  // Like gin's c.Stream, the status line goes out with the first line written, not before.
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/x-ndjson');
  const end = await generate(record, config, left, async (token) => {
    const line = { model: record.model, created_at: new Date().toISOString(), message: assistantMessage(token), done: false };
    if (record.tokens.length === config.dropAfterTokens) {
      res.destroy();
      return;
    }
    if (record.tokens.length !== config.corruptTokenAt) return writeLine(res, line);
    if (!res.destroyed) res.write(`${JSON.stringify(line).slice(0, 20)}\n`);
  });
  if (end === 'failed') {
    // Headers are already sent, so Ollama reports the failure as one more line and stops.
    await writeLine(res, { error: config.failMessage });
    res.end();
  } else if (end === 'done') {
    await writeLine(res, {
      model: record.model,
      created_at: new Date().toISOString(),
      message: assistantMessage(''),
      done_reason: 'stop',
      done: true,
      ...finalCounters(startedAt, record),
    });
    res.end();
  }
  return end;
}

async function completeChat(res: ServerResponse, record: ChatRecord, config: FakeOllamaConfig): Promise<GenerationEnd> {
  const startedAt = process.hrtime.bigint();
  const left = watchForAbort(res);
  const end = await generate(record, config, left, async () => {});
  if (end === 'failed') sendError(res, 500, config.failMessage);
  if (end === 'done') {
    sendJson(res, 200, {
      model: record.model,
      created_at: new Date().toISOString(),
      message: assistantMessage(record.tokens.join('')),
      done_reason: 'stop',
      done: true,
      ...finalCounters(startedAt, record),
    });
  }
  return end;
}

async function computeReply(config: FakeOllamaConfig, request: ChatRequestBody): Promise<string> {
  return typeof config.reply === 'string' ? config.reply : config.reply(request.messages, request);
}

function toStatus(end: GenerationEnd): ChatStatus {
  return end === 'done' ? 'completed' : end;
}

async function handleChat(req: IncomingMessage, res: ServerResponse, config: FakeOllamaConfig, stats: FakeOllamaStats): Promise<void> {
  const body = await readJson(req);
  if (!body.ok) return sendError(res, 400, body.error);
  const parsed = parseChatRequest(body.value);
  if (!parsed.ok) return sendError(res, 400, parsed.error);
  const request = parsed.value;

  if (!findModel(config, request.model)) {
    return sendError(res, 404, `model "${request.model}" not found, try pulling it first`);
  }
  if (config.refuseChats) return sendError(res, config.refuseChats.status, config.refuseChats.error);
  // With no messages Ollama only loads the model and answers one JSON document, stream or not.
  if (request.messages.length === 0) {
    return sendJson(res, 200, {
      model: request.model,
      created_at: new Date().toISOString(),
      message: assistantMessage(''),
      done_reason: 'load',
      done: true,
    });
  }

  const record: ChatRecord = {
    id: stats.chats.length + 1,
    model: request.model,
    messages: request.messages,
    stream: request.stream !== false, // Ollama streams unless told otherwise
    status: 'running',
    plannedTokens: config.tokenize(await computeReply(config, request)),
    tokens: [],
  };
  stats.chats.push(record);
  const end = record.stream ? await streamChat(res, record, config) : await completeChat(res, record, config);
  record.status = toStatus(end);
}

// ---------------------------------------------------------------------------------------------
// Model listing.

function modelEntry(name: string) {
  const canonical = canonicalModelName(name);
  const family = canonical.split(/[:/.\d]/)[0] || 'llama';
  return {
    name: canonical,
    model: canonical,
    modified_at: '2025-01-20T10:00:00.000000000Z',
    size: 2019393189,
    digest: createHash('sha256').update(canonical).digest('hex'),
    details: {
      parent_model: '',
      format: 'gguf',
      family,
      families: [family],
      parameter_size: '3.2B',
      quantization_level: 'Q4_K_M',
    },
  };
}

async function handleShow(req: IncomingMessage, res: ServerResponse, config: FakeOllamaConfig): Promise<void> {
  const body = await readJson(req);
  if (!body.ok) return sendError(res, 400, body.error);
  const name = body.value.model ?? body.value.name;
  if (typeof name !== 'string' || name === '') return sendError(res, 400, 'model is required');
  const model = findModel(config, name);
  if (!model) return sendError(res, 404, `model '${name}' not found`);
  const entry = modelEntry(model);
  sendJson(res, 200, {
    modelfile: `FROM ${model}`,
    parameters: '',
    template: '{{ .Prompt }}',
    details: entry.details,
    model_info: {},
    modified_at: entry.modified_at,
    capabilities: ['completion'],
  });
}

// ---------------------------------------------------------------------------------------------
// Server.

type Handler = (req: IncomingMessage, res: ServerResponse, config: FakeOllamaConfig, stats: FakeOllamaStats) => Promise<void> | void;

const routes: Record<string, Handler> = {
  'GET /': (_req, res) => sendText(res, 'Ollama is running'),
  'HEAD /': (_req, res) => sendText(res, ''),
  'POST /api/chat': handleChat,
  'POST /api/show': handleShow,
  'GET /api/tags': (_req, res, config) => sendJson(res, 200, { models: config.models.map(modelEntry) }),
  'GET /api/version': (_req, res, config) => sendJson(res, 200, { version: config.version }),
};

function dispatch(req: IncomingMessage, res: ServerResponse, config: FakeOllamaConfig, stats: FakeOllamaStats): void {
  const path = new URL(req.url ?? '/', 'http://fake').pathname;
  const record: RequestRecord = { method: req.method ?? 'GET', path };
  stats.requests.push(record);
  res.on('finish', () => (record.status = res.statusCode));
  const route = `${record.method} ${path}`;
  // A hung Ollama: the request is read and never answered (close() destroys the socket).
  if (config.silentRoutes.includes(route)) return void req.resume();
  const handler = routes[route];
  if (!handler) return sendNotFoundPage(res);
  Promise.resolve(handler(req, res, config, stats)).catch((error: unknown) => {
    // A bug in the fake must show up in the test, not as a hung request.
    if (!res.headersSent) sendError(res, 500, `fake-ollama: ${(error as Error).message}`);
    else res.destroy(error as Error);
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startFakeOllama(options: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const config = resolveConfig(options);
  const stats = new FakeOllamaStats();
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => dispatch(req, res, config, stats));
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server);
  const url = `http://127.0.0.1:${port}`;

  const close = (): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });

  return { url, host: url, port, config, stats, close };
}

/** Polls `predicate` until it holds; rejects after `timeoutMs` so a test fails instead of hanging. */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() >= deadline) throw new Error(`waitFor: ${what} not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}
