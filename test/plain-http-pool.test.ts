/**
 * The registrar's own HTTP/1.1 client for short forwards to plain-http targets, against real
 * sockets on 127.0.0.1 that answer with exact bytes: the framings a target may use, answers cut
 * into pieces, connections kept, refused and lost, and the limits that keep a bad target from
 * hanging or flooding the registrar.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AnswerTooLarge, createPlainHttpPool, type PlainHttpPool, type PlainReply, type PlainRequest, TargetError } from '../src/server/plain-http-pool.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Target {
  port: number;
  /** Every connection the target accepted. */
  sockets: Socket[];
  /** Every request's bytes (head and body), as received. */
  requests: string[];
}

/**
 * A target that calls `answer` once per request it has read whole (head and Content-Length body),
 * with the socket to answer on and the request's number (0 for the first).
 */
async function target(answer: (socket: Socket, index: number) => void): Promise<Target> {
  const state: Target = { port: 0, sockets: [], requests: [] };
  const server: Server = createServer((socket) => {
    state.sockets.push(socket);
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        const request = buffered.slice(0, end + 4 + length);
        buffered = buffered.slice(request.length);
        state.requests.push(request);
        answer(socket, state.requests.length - 1);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = (server.address() as { port: number }).port;
  cleanups.push(() => {
    for (const socket of state.sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return state;
}

function pool(options?: Parameters<typeof createPlainHttpPool>[0]): PlainHttpPool {
  const created = createPlainHttpPool(options);
  cleanups.push(() => created.close());
  return created;
}

function requestTo(port: number, extra: Partial<PlainRequest> = {}): PlainRequest {
  return {
    hostname: '127.0.0.1',
    port,
    host: `127.0.0.1:${port}`,
    path: '/receive',
    contentType: 'application/json',
    body: '{"message":"hi"}',
    headersTimeoutMs: 5_000,
    bodyTimeoutMs: 5_000,
    maxBodyBytes: 1024 * 1024,
    ...extra,
  };
}

function send(via: PlainHttpPool, request: PlainRequest): Promise<PlainReply> {
  return new Promise((resolve, reject) => via.request(request, (error, reply) => (error ? reject(error) : resolve(reply!))));
}

const ok = (body: string, headers = '') => `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${headers}\r\n${body}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the request', () => {
  it('is one POST with the Host, the type, the length and the extra headers, then the body', async () => {
    const t = await target((socket) => socket.write(ok('{}')));
    const via = pool();
    await send(via, requestTo(t.port, { path: '/base/receive?x=1', host: 'svc.local:81', headers: { authorization: 'Bearer abc' }, body: '{"message":"héllo"}' }));
    expect(Buffer.from(t.requests[0]!, 'latin1').toString('utf8')).toBe(
      'POST /base/receive?x=1 HTTP/1.1\r\nhost: svc.local:81\r\ncontent-type: application/json\r\ncontent-length: 20\r\nauthorization: Bearer abc\r\n\r\n{"message":"héllo"}',
    );
  });
});

describe('reading the answer', () => {
  it('puts together an answer that arrives a few bytes at a time', async () => {
    const answer = ok('{"message":"naïve ✓"}', 'x-other: 1\r\n');
    const t = await target(async (socket) => {
      const bytes = Buffer.from(answer);
      for (let at = 0; at < bytes.length; at += 7) {
        socket.write(bytes.subarray(at, at + 7));
        await sleep(1);
      }
    });
    const reply = await send(pool(), requestTo(t.port));
    expect(reply.status).toBe(200);
    expect(reply.contentType).toBe('application/json');
    expect(reply.body.toString('utf8')).toBe('{"message":"naïve ✓"}');
  });

  it('reads a chunked answer, with chunk extensions and trailers, and keeps the connection', async () => {
    const chunked = 'HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nx-trailer: yes\r\n\r\n';
    const t = await target(async (socket) => {
      // Split inside a size line, inside data and inside the final CRLFs.
      for (const piece of [chunked.slice(0, 80), chunked.slice(80, 83), chunked.slice(83, 101), chunked.slice(101)]) {
        socket.write(piece);
        await sleep(2);
      }
    });
    const via = pool();
    const first = await send(via, requestTo(t.port));
    expect(first.status).toBe(201);
    expect(first.contentType).toBe('text/plain');
    expect(first.body.toString()).toBe('hello 0123456789');
    const second = await send(via, requestTo(t.port));
    expect(second.body.toString()).toBe('hello 0123456789');
    expect(t.sockets).toHaveLength(1);
  });

  it('skips interim 1xx answers for the final one', async () => {
    const t = await target((socket) => socket.write(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n${ok('{"a":1}')}`));
    const reply = await send(pool(), requestTo(t.port));
    expect(reply.status).toBe(200);
    expect(reply.body.toString()).toBe('{"a":1}');
  });

  it('reads an answer without a length until the target closes, and opens a new connection after it', async () => {
    const t = await target((socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"till":"close"}'));
    const via = pool();
    expect((await send(via, requestTo(t.port))).body.toString()).toBe('{"till":"close"}');
    expect((await send(via, requestTo(t.port))).body.toString()).toBe('{"till":"close"}');
    expect(t.sockets).toHaveLength(2);
  });

  it('takes a bare LF as a line end, as curl and nginx do, in the head and in chunk lines', async () => {
    const t = await target((socket, index) =>
      socket.write(
        index === 0
          ? 'HTTP/1.1 200 OK\ncontent-type: application/json\nx-other: 1\r\ncontent-length: 7\n\n{"a":1}'
          : 'HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n3\n{"a\r\n4\n":2}\n0\n\n',
      ),
    );
    const via = pool();
    const mixed = await send(via, requestTo(t.port));
    expect(mixed.contentType).toBe('application/json');
    expect(mixed.body.toString()).toBe('{"a":1}');
    expect((await send(via, requestTo(t.port))).body.toString()).toBe('{"a":2}');
  });

  it('skips empty lines before the status line, so a stray CRLF after an answer does not fail the next on the connection', async () => {
    const t = await target((socket) =>
      setTimeout(() => {
        socket.write(ok('{}'));
        setTimeout(() => socket.write('\r\n'), 5);
      }, 20),
    );
    // One connection: the second request goes out on it as soon as the first answer is read, before the stray CRLF.
    const via = pool({ connections: 1 });
    const replies = await Promise.all([send(via, requestTo(t.port)), send(via, requestTo(t.port)), send(via, requestTo(t.port))]);
    expect(replies.map((reply) => reply.status)).toEqual([200, 200, 200]);
  });

  it('relays any three-digit status, as node can answer with one', async () => {
    const t = await target((socket) => socket.write('HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n'));
    expect((await send(pool(), requestTo(t.port))).status).toBe(600);
  });

  it('reads a chunk size written with leading zeros', async () => {
    const t = await target((socket) => socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${'0'.repeat(16)}2\r\n{}\r\n0\r\n\r\n`));
    expect((await send(pool(), requestTo(t.port))).body.toString()).toBe('{}');
  });

  it('answers 204 and 304 without waiting for a body', async () => {
    const t = await target((socket, index) => socket.write(index === 0 ? 'HTTP/1.1 204 No Content\r\n\r\n' : 'HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n'));
    const via = pool();
    expect((await send(via, requestTo(t.port))).status).toBe(204);
    expect((await send(via, requestTo(t.port))).status).toBe(304);
    expect(t.sockets).toHaveLength(1);
  });
});

describe('keeping connections', () => {
  it('reuses one connection for answers one after another', async () => {
    const t = await target((socket, index) => socket.write(ok(`{"n":${index}}`)));
    const via = pool();
    for (let n = 0; n < 5; n += 1) expect((await send(via, requestTo(t.port))).body.toString()).toBe(`{"n":${n}}`);
    expect(t.sockets).toHaveLength(1);
  });

  it('does not reuse a connection the target asked to close, nor an HTTP/1.0 one', async () => {
    const t = await target((socket, index) =>
      socket.write(index === 0 ? ok('{}', 'Connection: close\r\n') : `HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}`),
    );
    const via = pool();
    await send(via, requestTo(t.port));
    await send(via, requestTo(t.port));
    await send(via, requestTo(t.port));
    expect(t.sockets).toHaveLength(3);
  });

  it('lets a connection go a second before the Keep-Alive timeout the target gives', async () => {
    const t = await target((socket) => socket.write(ok('{}', 'keep-alive: timeout=2\r\n')));
    const via = pool();
    await send(via, requestTo(t.port));
    await send(via, requestTo(t.port));
    expect(t.sockets).toHaveLength(1);
    // Past timeout − 1 s the target may be closing it as the request goes out: a new one is safer.
    await sleep(1_100);
    await send(via, requestTo(t.port));
    expect(t.sockets).toHaveLength(2);
  });

  it('notices a kept connection the target closed, and answers the next request on a new one', async () => {
    const t = await target((socket) => {
      socket.write(ok('{}'));
      setTimeout(() => socket.end(), 20);
    });
    const via = pool();
    await send(via, requestTo(t.port));
    await sleep(150);
    expect((await send(via, requestTo(t.port))).status).toBe(200);
    expect(t.sockets).toHaveLength(2);
  });

  it('sends a request again on a new connection when a kept one turns out closed before any answer', async () => {
    // The target closes a connection as its second request arrives: its idle timeout, unannounced.
    const t = await target((socket, index) => (index === 1 ? socket.destroy() : socket.write(ok(`{"n":${index}}`))));
    const via = pool();
    expect((await send(via, requestTo(t.port))).body.toString()).toBe('{"n":0}');
    expect((await send(via, requestTo(t.port))).body.toString()).toBe('{"n":2}');
    expect(t.sockets).toHaveLength(2);
  });

  it('does not send again what failed on a new connection, nor after part of the answer came', async () => {
    const fresh = await target((socket) => socket.destroy());
    await expect(send(pool(), requestTo(fresh.port))).rejects.toMatchObject({ code: expect.stringMatching(/CONNECTION_CLOSED|ECONNRESET/) });
    expect(fresh.requests).toHaveLength(1);
    const partly = await target((socket, index) => (index === 0 ? socket.write(ok('{}')) : socket.end('HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{')));
    const via = pool();
    await send(via, requestTo(partly.port));
    await expect(send(via, requestTo(partly.port))).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    expect(partly.requests).toHaveLength(2);
  });

  it('does not reuse a connection that carried bytes after the answer', async () => {
    const t = await target((socket) => socket.write(`${ok('{}')}HTTP/1.1 200 OK\r\n`));
    const via = pool();
    await send(via, requestTo(t.port));
    await send(via, requestTo(t.port));
    expect(t.sockets).toHaveLength(2);
  });

  it('opens at most `connections` to a target; the requests past them wait their turn', async () => {
    const t = await target((socket) => setTimeout(() => socket.write(ok('{}')), 30));
    const via = pool({ connections: 2 });
    const replies = await Promise.all(Array.from({ length: 6 }, () => send(via, requestTo(t.port))));
    expect(replies.map((reply) => reply.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(t.sockets).toHaveLength(2);
  });
});

describe('targets that fail', () => {
  it('reports a refused connection with its code', async () => {
    const t = await target(() => {});
    const closed = t.port;
    for (const cleanup of cleanups.splice(0)) await cleanup();
    await expect(send(pool(), requestTo(closed))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('reports an answer cut off before its end', async () => {
    const t = await target((socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"cut":'));
    await expect(send(pool(), requestTo(t.port))).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });

  it.each([
    ['a status line that is not HTTP', 'SSH-2.0-OpenSSH_9.6\r\n\r\n', /status line is not HTTP/],
    ['two lengths that differ', 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}', /Content-Length is not one number/],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nbroken header\r\n\r\n', /header line is malformed/],
    ['a chunk size that is not hexadecimal', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', /chunk size is not hexadecimal/],
    ['an unasked protocol switch', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n', /switched protocols/],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n{}', /header line is malformed/],
    ['a control character in a value', 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\u0001x\r\ncontent-length: 2\r\n\r\n{}', /control character/],
    ['a bare CR in a value', 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\rx-injected: 1\r\ncontent-length: 2\r\n\r\n{}', /control character/],
  ])('refuses %s as an answer that is not HTTP/1.1', async (_case, bytes, why) => {
    const t = await target((socket) => socket.write(bytes));
    const failure = await send(pool(), requestTo(t.port)).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TargetError);
    expect(failure).toMatchObject({ code: 'BAD_ANSWER', message: expect.stringMatching(why) });
  });

  it('refuses headers that go on past 64 KiB, whether they come in pieces or at once', async () => {
    const unended = await target((socket) => socket.write(`HTTP/1.1 200 OK\r\nx-long: ${'a'.repeat(70_000)}`));
    await expect(send(pool(), requestTo(unended.port))).rejects.toMatchObject({ code: 'BAD_ANSWER', message: expect.stringMatching(/longer than 64 KiB/) });
    const whole = await target((socket) => socket.write(`HTTP/1.1 200 OK\r\nx-long: ${'a'.repeat(70_000)}\r\ncontent-length: 2\r\n\r\n{}`));
    await expect(send(pool(), requestTo(whole.port))).rejects.toMatchObject({ code: 'BAD_ANSWER', message: expect.stringMatching(/longer than 64 KiB/) });
  });

  it('refuses an answer over the limit, whether its length is declared or counted', async () => {
    const declared = await target((socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n'));
    await expect(send(pool(), requestTo(declared.port, { maxBodyBytes: 1000 }))).rejects.toBeInstanceOf(AnswerTooLarge);
    const chunked = await target((socket) => socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n400\r\n${'x'.repeat(1024)}\r\n`));
    await expect(send(pool(), requestTo(chunked.port, { maxBodyBytes: 1000 }))).rejects.toBeInstanceOf(AnswerTooLarge);
  });

  it('gives up on a target silent before its headers, and on one silent in the middle of the body', async () => {
    const silent = await target(() => {});
    await expect(send(pool(), requestTo(silent.port, { headersTimeoutMs: 100 }))).rejects.toMatchObject({ code: 'HEADERS_TIMEOUT' });
    const stalls = await target((socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{"a"'));
    await expect(send(pool(), requestTo(stalls.port, { bodyTimeoutMs: 100 }))).rejects.toMatchObject({ code: 'BODY_TIMEOUT' });
  });

  it('counts the wait for a free connection against the headers timeout, and never sends a request whose time is up', async () => {
    const silent = await target(() => {});
    const via = pool({ connections: 1 });
    const failures = await Promise.all(
      Array.from({ length: 3 }, () => send(via, requestTo(silent.port, { headersTimeoutMs: 200 })).catch((error: unknown) => error)),
    );
    expect(failures).toEqual([0, 1, 2].map(() => expect.objectContaining({ code: 'HEADERS_TIMEOUT' })));
    expect(silent.requests).toHaveLength(1);
  });

  it('refuses trailers that go on past 64 KiB', async () => {
    const t = await target(async (socket) => {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n');
      for (let line = 0; line < 100 && !socket.destroyed; line += 1) {
        socket.write(`x-trailer-${line}: ${'t'.repeat(1_000)}\r\n`);
        await sleep(1);
      }
    });
    await expect(send(pool(), requestTo(t.port))).rejects.toMatchObject({ code: 'BAD_ANSWER', message: expect.stringMatching(/trailers are longer than 64 KiB/) });
  });

  it('waits as long as the body keeps coming, however long it takes in all', async () => {
    const body = '{"slow":"but steady"}';
    const t = await target(async (socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`);
      for (const char of body) {
        await sleep(15);
        socket.write(char);
      }
    });
    const reply = await send(pool(), requestTo(t.port, { bodyTimeoutMs: 150 }));
    expect(reply.body.toString()).toBe(body);
  });
});

describe('abandoning a request', () => {
  it('calls back once, with an AbortError, and closes the connection so the target stops too', async () => {
    const t = await target(() => {});
    const via = pool();
    const calls: unknown[] = [];
    const abandon = via.request(requestTo(t.port), (error) => calls.push(error));
    await expect.poll(() => t.requests.length).toBe(1);
    abandon();
    abandon();
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ name: 'AbortError' });
    await once(t.sockets[0]!, 'close');
  });

  it('takes a waiting request out of the queue', async () => {
    const t = await target((socket) => setTimeout(() => socket.write(ok('{}')), 50));
    const via = pool({ connections: 1 });
    const first = send(via, requestTo(t.port));
    const calls: unknown[] = [];
    via.request(requestTo(t.port), (error) => calls.push(error))();
    expect((await first).status).toBe(200);
    await sleep(100);
    expect(t.requests).toHaveLength(1);
    expect(calls).toEqual([expect.objectContaining({ name: 'AbortError' })]);
  });
});
