import { connect, type Socket } from 'node:net';
import { keepRelayed, RELAYED_HEADERS } from './relayed-headers.js';

/**
 * Keep-alive HTTP/1.1 connections to plain-http targets, for answers read whole: the registrar's
 * short forwards. A forward is one small POST and one small answer; undici's general machinery
 * (a request object, handler callbacks, its own parser in WebAssembly, timers per request) cost
 * the registrar a fifth of each such forward in side-by-side runs, more than nginx spends on the
 * whole proxying. Streamed answers and https targets stay on undici.
 */
export interface PlainRequest {
  /** Where to connect: a host name or address (IPv6 without brackets) and a port. */
  hostname: string;
  port: number;
  /** The Host header: the URL's host, port included when it is not 80. */
  host: string;
  path: string;
  contentType: string;
  /** Extra headers (a target's token); names and values were checked where they were set. */
  headers?: Readonly<Record<string, string>>;
  body: string;
  /** The longest wait from the request sent to the answer's headers complete. */
  headersTimeoutMs: number;
  /** The longest pause inside the answer's body. */
  bodyTimeoutMs: number;
  /** Past this many body bytes the answer is refused (AnswerTooLarge). */
  maxBodyBytes: number;
}

export interface PlainReply {
  status: number;
  contentType?: string;
  /** The headers a forward passes on (RELAYED_HEADERS), when the answer had any. */
  relayed?: Record<string, string>;
  body: Buffer;
}

export interface PlainHttpPool {
  /** Sends one request; `done` is called once. Returns the function that abandons it. */
  request(request: PlainRequest, done: (error: Error | undefined, reply?: PlainReply) => void): () => void;
  /** Closes idle connections now and busy ones once their answer is over. */
  close(): void;
}

/** A target's failure, with a code a log line can name (as node's own ECONNREFUSED and the like). */
export class TargetError extends Error {
  override readonly name = 'TargetError';
  constructor(
    readonly code: TargetErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type TargetErrorCode = 'HEADERS_TIMEOUT' | 'BODY_TIMEOUT' | 'CONNECT_TIMEOUT' | 'CONNECTION_CLOSED' | 'BAD_ANSWER';

/** An answer went past maxBodyBytes. */
export class AnswerTooLarge extends Error {
  override readonly name = 'AnswerTooLarge';
}

export interface PlainHttpPoolOptions {
  /** Connections per target at most; more requests wait for one to be free. */
  connections?: number;
  /** How long an unused connection is kept, unless the target asks for less (Keep-Alive: timeout). */
  idleMs?: number;
  connectTimeoutMs?: number;
}

const MAX_HEAD_BYTES = 64 * 1024;
const CR = 0x0d;
const LF = 0x0a;
/** A header name is a token (RFC 9110 §5.1): `Content-Length :` is refused, not read as another name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// biome-ignore lint: matching control characters is the point of this pattern
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/;
/** Losses of a kept connection that mean the target closed it as the request went out. */
const STALE_CODES = new Set(['CONNECTION_CLOSED', 'ECONNRESET', 'EPIPE']);
/** Taken off a target's own Keep-Alive timeout: a connection is not reused as the target closes it. */
const IDLE_MARGIN_MS = 1_000;
const SWEEP_MS = 1_000;
/**
 * A waiting request with less of its headers timeout left than this is answered with the timeout
 * rather than sent: it would be written to the target only to be given up on at once.
 */
const MIN_USEFUL_MS = 10;

/** One request on a connection, from its head written to its answer complete. */
interface Exchange {
  request: PlainRequest;
  done: (error: Error | undefined, reply?: PlainReply) => void;
  connection?: Connection;
  over: boolean;
  /** Sent again once already, on a new connection, after a kept one was found closed. */
  resent?: boolean;
  /** When it began to wait for a free connection: the wait counts against its headers timeout. */
  queuedAt?: number;
}

interface Connection {
  socket: Socket;
  dropped: boolean;
  target: Target;
  exchange?: Exchange;
  idleUntil: number;
  parser: AnswerParser;
  /** Requests sent on it: past the first, it is a kept connection the target may have closed. */
  sent: number;
  /** Whether any byte of the current answer came. */
  heard: boolean;
  timer?: NodeJS.Timeout;
}

interface Target {
  key: string;
  idle: Connection[];
  open: number;
  waiting: Exchange[];
}

export function createPlainHttpPool(options: PlainHttpPoolOptions = {}): PlainHttpPool {
  const maxConnections = options.connections ?? 256;
  const idleMs = options.idleMs ?? 30_000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const targets = new Map<string, Target>();
  let sweeper: NodeJS.Timeout | undefined;
  let closed = false;

  function targetFor(request: PlainRequest): Target {
    const key = `${request.hostname}:${request.port}`;
    let target = targets.get(key);
    if (!target) {
      target = { key, idle: [], open: 0, waiting: [] };
      targets.set(key, target);
    }
    return target;
  }

  function request(request: PlainRequest, done: Exchange['done']): () => void {
    const exchange: Exchange = { request, done, over: false };
    if (closed) {
      finish(exchange, new TargetError('CONNECTION_CLOSED', 'the registrar is shutting down'));
      return noop;
    }
    const target = targetFor(request);
    const connection = takeIdle(target);
    if (connection) send(connection, exchange);
    else if (target.open < maxConnections) send(open(target), exchange);
    else {
      exchange.queuedAt = performance.now();
      target.waiting.push(exchange);
    }
    return () => {
      if (exchange.over) return;
      const { connection: busy } = exchange;
      if (busy) drop(busy);
      else {
        const at = target.waiting.indexOf(exchange);
        if (at >= 0) target.waiting.splice(at, 1);
      }
      finish(exchange, abortError());
    };
  }

  function takeIdle(target: Target): Connection | undefined {
    const now = Date.now();
    for (let connection = target.idle.pop(); connection; connection = target.idle.pop()) {
      if (connection.idleUntil > now) return connection;
      drop(connection);
    }
    return undefined;
  }

  function open(target: Target): Connection {
    target.open += 1;
    const [hostname, port] = splitKey(target.key);
    const socket = connect({ host: hostname, port, noDelay: true });
    const connection: Connection = { socket, dropped: false, target, idleUntil: 0, parser: new AnswerParser(), sent: 0, heard: false };
    socket.setTimeout(connectTimeoutMs, () => {
      fail(connection, new TargetError('CONNECT_TIMEOUT', `no connection within ${connectTimeoutMs / 1000} s`));
    });
    socket.once('connect', () => socket.setTimeout(0));
    socket.on('data', (chunk: Buffer) => received(connection, chunk));
    socket.on('end', () => ended(connection));
    socket.on('error', (error) => fail(connection, error));
    socket.on('close', () => closedSocket(connection));
    return connection;
  }

  function send(connection: Connection, exchange: Exchange): void {
    const { request } = exchange;
    exchange.connection = connection;
    connection.exchange = exchange;
    connection.sent += 1;
    connection.heard = false;
    connection.parser.reset(request.maxBodyBytes);
    let head = `POST ${request.path} HTTP/1.1\r\nhost: ${request.host}\r\ncontent-type: ${request.contentType}\r\ncontent-length: ${Buffer.byteLength(request.body)}\r\n`;
    if (request.headers) for (const name in request.headers) head += `${name}: ${request.headers[name]}\r\n`;
    connection.socket.write(`${head}\r\n${request.body}`);
    const waited = exchange.queuedAt === undefined ? 0 : performance.now() - exchange.queuedAt;
    exchange.queuedAt = undefined;
    connection.timer = setTimeout(() => timedOut(connection, 'HEADERS_TIMEOUT'), Math.max(0, request.headersTimeoutMs - waited));
  }

  function received(connection: Connection, chunk: Buffer): void {
    const { exchange, parser } = connection;
    if (!exchange) {
      // Bytes nobody asked for: the connection cannot be trusted for the next request.
      drop(connection);
      return;
    }
    const hadHead = parser.headComplete;
    connection.heard = true;
    let complete: boolean;
    try {
      complete = parser.push(chunk);
    } catch (error) {
      fail(connection, error as Error);
      return;
    }
    if (complete) {
      clearTimeout(connection.timer);
      answered(connection, exchange);
      return;
    }
    if (parser.headComplete) {
      if (!hadHead) {
        clearTimeout(connection.timer);
        connection.timer = setTimeout(() => timedOut(connection, 'BODY_TIMEOUT'), exchange.request.bodyTimeoutMs);
      } else connection.timer?.refresh();
    }
  }

  function answered(connection: Connection, exchange: Exchange): void {
    const { parser } = connection;
    connection.exchange = undefined;
    exchange.connection = undefined;
    const reply: PlainReply = { status: parser.status, contentType: parser.contentType, relayed: parser.relayed, body: parser.body() };
    const keepMs = parser.keepAliveMs === undefined ? idleMs : Math.min(idleMs, parser.keepAliveMs - IDLE_MARGIN_MS);
    if (parser.reusable && keepMs > 0 && !closed) {
      connection.idleUntil = Date.now() + keepMs;
      release(connection);
    } else drop(connection);
    finish(exchange, undefined, reply);
  }

  /** A connection free again: the next waiting request takes it, or it waits in the pool. */
  function release(connection: Connection): void {
    const { target } = connection;
    const next = nextWaiting(target);
    if (next) {
      send(connection, next);
      return;
    }
    target.idle.push(connection);
    sweeper ??= setInterval(sweep, SWEEP_MS).unref();
  }

  /**
   * The next request waiting for a connection; those that waited past their headers timeout are
   * answered with it instead of being sent.
   */
  function nextWaiting(target: Target): Exchange | undefined {
    for (let exchange = target.waiting.shift(); exchange; exchange = target.waiting.shift()) {
      const { headersTimeoutMs } = exchange.request;
      if (performance.now() - exchange.queuedAt! < headersTimeoutMs - MIN_USEFUL_MS) return exchange;
      finish(exchange, new TargetError('HEADERS_TIMEOUT', `no answer within ${headersTimeoutMs / 1000} s`));
    }
    return undefined;
  }

  function sweep(): void {
    const now = Date.now();
    let idle = 0;
    for (const target of targets.values()) {
      for (const connection of target.idle.filter((each) => each.idleUntil <= now)) drop(connection);
      idle += target.idle.length;
      if (target.open === 0 && target.waiting.length === 0) targets.delete(target.key);
    }
    if (idle === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }

  function timedOut(connection: Connection, code: 'HEADERS_TIMEOUT' | 'BODY_TIMEOUT'): void {
    const ms = code === 'HEADERS_TIMEOUT' ? connection.exchange?.request.headersTimeoutMs : connection.exchange?.request.bodyTimeoutMs;
    fail(connection, new TargetError(code, code === 'HEADERS_TIMEOUT' ? `no answer within ${ms! / 1000} s` : `silent for ${ms! / 1000} s in the middle of the answer`));
  }

  function ended(connection: Connection): void {
    const { exchange, parser } = connection;
    // An answer without a length ends when the target closes.
    if (exchange && parser.headComplete && parser.untilClose) {
      clearTimeout(connection.timer);
      answered(connection, exchange);
      return;
    }
    fail(connection, new TargetError('CONNECTION_CLOSED', 'the target closed the connection before the answer was complete'));
  }

  /**
   * The connection is lost, and with it the request on it. A kept connection that the target
   * closed before a byte of the answer came was most likely closed idle as the request went out
   * (a target's idle timeout it did not announce): the request goes again once, on a new
   * connection, rather than fail an instance that is fine. Any retrying proxy does the same, and
   * a forward is sent to another instance on the same failure anyway.
   */
  function fail(connection: Connection, error: Error): void {
    const { exchange, target } = connection;
    const resend =
      exchange !== undefined && !exchange.resent && connection.sent > 1 && !connection.heard && STALE_CODES.has((error as { code?: string }).code ?? '');
    drop(connection);
    if (!exchange) return;
    if (!resend || closed) {
      finish(exchange, error);
      return;
    }
    exchange.resent = true;
    if (target.open < maxConnections) send(open(target), exchange);
    else {
      exchange.queuedAt = performance.now();
      target.waiting.unshift(exchange);
    }
  }

  function closedSocket(connection: Connection): void {
    if (connection.exchange) {
      fail(connection, new TargetError('CONNECTION_CLOSED', 'the target closed the connection before the answer was complete'));
      return;
    }
    drop(connection);
  }

  /** Closes a connection for good; a request waiting for one gets a new connection instead. */
  function drop(connection: Connection): void {
    if (connection.dropped) return;
    connection.dropped = true;
    clearTimeout(connection.timer);
    connection.socket.destroy();
    const { target } = connection;
    const at = target.idle.indexOf(connection);
    if (at >= 0) target.idle.splice(at, 1);
    target.open -= 1;
    const exchange = connection.exchange;
    connection.exchange = undefined;
    if (exchange) exchange.connection = undefined;
    const next = !closed && nextWaiting(target);
    if (next) send(open(target), next);
  }

  function finish(exchange: Exchange, error: Error | undefined, reply?: PlainReply): void {
    if (exchange.over) return;
    exchange.over = true;
    exchange.done(error, reply);
  }

  return {
    request,
    close() {
      closed = true;
      clearInterval(sweeper);
      sweeper = undefined;
      for (const target of targets.values()) {
        for (const connection of [...target.idle]) drop(connection);
        for (const exchange of target.waiting.splice(0)) finish(exchange, new TargetError('CONNECTION_CLOSED', 'the registrar is shutting down'));
      }
    },
  };
}

/**
 * Reads one HTTP/1.1 answer as its bytes arrive: the status line and headers, then a body framed
 * by Content-Length, by chunks, or by the connection closing. Anything else is a BAD_ANSWER: a
 * target that speaks broken HTTP is a target that failed.
 */
export class AnswerParser {
  status = 0;
  contentType: string | undefined;
  relayed: Record<string, string> | undefined;
  headComplete = false;
  /** Whether the connection may carry another request after this answer. */
  reusable = true;
  untilClose = false;
  /** The target's Keep-Alive timeout, when it gave one. */
  keepAliveMs: number | undefined;
  private pending: Buffer | undefined;
  private chunks: Buffer[] = [];
  private size = 0;
  private maxBodyBytes = Infinity;
  /** Body bytes still expected: of the whole body, or of the current chunk. */
  private remaining = 0;
  private chunked = false;
  /** In a chunked body: 'size' line, 'data', the CRLF after data, or the trailer lines. */
  private chunkState: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  private trailerBytes = 0;

  reset(maxBodyBytes: number): void {
    this.status = 0;
    this.contentType = undefined;
    this.relayed = undefined;
    this.headComplete = false;
    this.reusable = true;
    this.untilClose = false;
    this.keepAliveMs = undefined;
    this.pending = undefined;
    this.chunks = [];
    this.size = 0;
    this.maxBodyBytes = maxBodyBytes;
    this.remaining = 0;
    this.chunked = false;
    this.chunkState = 'size';
    this.trailerBytes = 0;
  }

  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
  }

  /** Takes the next bytes; true once the answer is complete. */
  push(chunk: Buffer): boolean {
    let data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    while (!this.headComplete) {
      // Empty lines before a status line are skipped (RFC 9112 §2.2): a stray CRLF some servers
      // send after a body must not fail the next answer on the connection.
      let start = 0;
      while (start < data.length && (data[start] === CR || data[start] === LF)) start += 1;
      if (start > 0) data = data.subarray(start);
      const end = headEnd(data);
      if (end === undefined || end.head > MAX_HEAD_BYTES) {
        if (data.length > MAX_HEAD_BYTES) throw bad(`its headers are longer than ${MAX_HEAD_BYTES / 1024} KiB`);
        this.pending = data;
        return false;
      }
      const interim = this.readHead(data.toString('latin1', 0, end.head));
      data = data.subarray(end.next);
      if (interim) continue;
      this.headComplete = true;
      if (!this.chunked && !this.untilClose && this.remaining === 0) return this.over(data);
    }
    return this.readBody(data);
  }

  /** The status line and headers; true for a 1xx answer, which another head follows. */
  private readHead(head: string): boolean {
    // A line ends with CRLF, or with a bare LF as curl and nginx take it (RFC 9112 §2.2).
    const lines = head.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
    const statusLine = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: |$)/.exec(lines[0]!);
    if (!statusLine) throw bad(`its status line is not HTTP/1.x: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const status = Number(statusLine[2]);
    if (status === 101) throw bad('it switched protocols, which was not asked for');
    if (status < 200) return true;
    this.status = status;
    let keepAlive = statusLine[1] === '1';
    let length: string | undefined;
    let transferEncoding: string | undefined;
    for (let i = 1; i < lines.length; i += 1) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) throw bad(`a header line is malformed: ${JSON.stringify(line.slice(0, 80))}`);
      // A control character (a bare CR among them) in a value is refused, as llhttp does: relayed,
      // it could split the registrar's own answer.
      if (CONTROL.test(line)) throw bad(`a header holds a control character: ${JSON.stringify(line.slice(0, 80))}`);
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== value)) throw bad(`its Content-Length is not one number: ${JSON.stringify(value.slice(0, 40))}`);
        length = value;
      } else if (name === 'transfer-encoding') transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
      else if (name === 'content-type') this.contentType = this.contentType === undefined ? value : `${this.contentType}, ${value}`;
      else if (name === 'connection') {
        const tokens = value.toLowerCase();
        if (/(?:^|,)\s*close\s*(?:,|$)/.test(tokens)) keepAlive = false;
        else if (/(?:^|,)\s*keep-alive\s*(?:,|$)/.test(tokens)) keepAlive = true;
      } else if (name === 'keep-alive') {
        const timeout = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(value);
        if (timeout) this.keepAliveMs = Number(timeout[1]) * 1000;
      } else if (RELAYED_HEADERS.has(name)) this.relayed = keepRelayed(this.relayed, name, value);
    }
    this.reusable = keepAlive;
    if (status === 204 || status === 304) return false;
    if (transferEncoding !== undefined) {
      // Framing by both is a smuggling attempt or a broken server: not a connection to reuse.
      if (length !== undefined) this.reusable = false;
      if (/(?:^|,)\s*chunked\s*$/i.test(transferEncoding)) this.chunked = true;
      else {
        this.untilClose = true;
        this.reusable = false;
      }
    } else if (length !== undefined) {
      this.remaining = Number(length);
      if (this.remaining > this.maxBodyBytes) throw new AnswerTooLarge();
    } else {
      this.untilClose = true;
      this.reusable = false;
    }
    return false;
  }

  private readBody(data: Buffer): boolean {
    if (this.untilClose) {
      this.take(data);
      return false;
    }
    if (!this.chunked) {
      if (data.length < this.remaining) {
        this.take(data);
        this.remaining -= data.length;
        return false;
      }
      this.take(data.subarray(0, this.remaining));
      const rest = data.subarray(this.remaining);
      this.remaining = 0;
      return this.over(rest);
    }
    while (data.length > 0) {
      if (this.chunkState === 'data') {
        const piece = data.subarray(0, this.remaining);
        this.take(piece);
        this.remaining -= piece.length;
        data = data.subarray(piece.length);
        if (this.remaining === 0) this.chunkState = 'crlf';
        continue;
      }
      const end = data.indexOf(LF);
      if (end < 0) {
        if (data.length > 4096) throw bad('a chunk header is too long');
        this.pending = data;
        return false;
      }
      const line = data.toString('latin1', 0, end > 0 && data[end - 1] === CR ? end - 1 : end);
      data = data.subarray(end + 1);
      if (this.chunkState === 'crlf') {
        if (line !== '') throw bad('a chunk does not end where its size says');
        this.chunkState = 'size';
      } else if (this.chunkState === 'size') {
        const size = /^0*([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
        if (!size) throw bad(`a chunk size is not hexadecimal: ${JSON.stringify(line.slice(0, 40))}`);
        this.remaining = Number.parseInt(size[1]!, 16);
        this.chunkState = this.remaining === 0 ? 'trailer' : 'data';
      } else if (line === '') return this.over(data);
      else {
        // Trailers are read and dropped: an endless run of them must still end.
        this.trailerBytes += end + 1;
        if (this.trailerBytes > MAX_HEAD_BYTES) throw bad(`its trailers are longer than ${MAX_HEAD_BYTES / 1024} KiB`);
      }
    }
    return false;
  }

  private take(piece: Buffer): void {
    if (piece.length === 0) return;
    this.size += piece.length;
    if (this.size > this.maxBodyBytes) throw new AnswerTooLarge();
    this.chunks.push(piece);
  }

  /** The answer is complete; bytes after it were not asked for, so the connection is not reused. */
  private over(rest: Buffer): true {
    if (rest.length > 0) this.reusable = false;
    return true;
  }
}

/** Where the head ends (the blank line, CRLF or bare LF), and where the body starts. */
function headEnd(data: Buffer): { head: number; next: number } | undefined {
  for (let at = data.indexOf(LF); at !== -1; at = data.indexOf(LF, at + 1)) {
    if (data[at + 1] === LF) return { head: at, next: at + 2 };
    if (data[at + 1] === CR && data[at + 2] === LF) return { head: at, next: at + 3 };
    if (at > MAX_HEAD_BYTES) return undefined;
  }
  return undefined;
}

function bad(why: string): TargetError {
  return new TargetError('BAD_ANSWER', `the answer is not valid HTTP/1.1: ${why}`);
}

function splitKey(key: string): [string, number] {
  const colon = key.lastIndexOf(':');
  return [key.slice(0, colon), Number(key.slice(colon + 1))];
}

const noop = () => {};
const abortError = () => new DOMException('The caller went away', 'AbortError');
