/**
 * `svcmesh ask` against targets that misbehave, and a user who stops it: what reaches stdout,
 * stderr and the exit code. The targets are tiny node:http servers registered at a real registrar.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { describeIfInstalled } from './support/requires.js';
import { startSilentServer } from './support/silent-server.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath, closeServer, freePort, removeTempDirs, runSvcmesh, spawnSvcmesh, startSvcmesh, stopAll, type SvcmeshProcess, tempDir, waitFor } from './support/processes.js';

const NDJSON = { 'content-type': 'application/x-ndjson' };

/** Requests the targets below left hanging. */
let held = 0;

/** What each target does with a POST to `/<name>/receive`. */
const targets: Record<string, (body: { message?: string }, res: ServerResponse) => void> = {
  echo: (body, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `got: ${body.message}` })),
  // Never answers: a model that is still loading.
  silent: () => {
    held++;
  },
  // Starts a streamed answer and goes quiet in the middle of it.
  partial: (_body, res) => {
    held++;
    res.writeHead(200, NDJSON).write('{"message":"partial "}\n');
  },
  // A 200 that is JSON, but not an answer.
  unanswered: (_body, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"answer":"x"}'),
  garbled: (_body, res) => res.writeHead(200, NDJSON).end('{"message":"partial "}\nnot json\n'),
  // Behind a proxy that compresses whatever it sends: the registrar relays the bytes as they are.
  gzipped: (body, res) =>
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(JSON.stringify({ message: `zipped: ${body.message}` }))),
  brotli: (body, res) =>
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'br' }).end(brotliCompressSync(JSON.stringify({ message: `br: ${body.message}` }))),
  'gzipped-stream': (_body, res) => res.writeHead(200, { ...NDJSON, 'content-encoding': 'gzip' }).end(gzipSync('{"message":"one "}\n{"message":"two"}\n{"done":true}\n')),
  'gzipped-error': (_body, res) => res.writeHead(429, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync('{"error":"slow down"}')),
  // 65 KiB on the wire that unpack to 65 MiB: within what the registrar relays, past what ask reads whole.
  'gzip-bomb': (_body, res) =>
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(`{"message":"${'a'.repeat(65 * 1024 * 1024)}"}`)),
  // One streamed "line" that never ends.
  'endless-line': (_body, res) => res.writeHead(200, { ...NDJSON, 'content-encoding': 'gzip' }).end(gzipSync(`{"message":"${'a'.repeat(65 * 1024 * 1024)}`)),
  // Two codings, the last applied listed last (RFC 9110 §8.4).
  'twice-coded': (body, res) =>
    res
      .writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip, br' })
      .end(brotliCompressSync(gzipSync(JSON.stringify({ message: `twice: ${body.message}` })))),
  zstd: (_body, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'zstd' }).end(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 1, 2])),
  empty: (_body, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(),
  'no-content': (_body, res) => res.writeHead(204).end(),
  'empty-gzip': (_body, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(),
  // Says gzip, sends plain text.
  'not-gzip': (_body, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end('{"message":"plain"}'),
  // Eight pieces 200 ms apart: 1.6 s in all, never silent for long.
  steady: async (_body, res) => {
    res.writeHead(200, NDJSON);
    for (let piece = 1; piece <= 8; piece++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      res.write(`${JSON.stringify({ message: `${piece} ` })}\n`);
    }
    res.end('{"done":true}\n');
  },
  // A streamed answer that stops with an error whose text tries to add a line of advice under it.
  forged: (_body, res) => res.writeHead(200, NDJSON).end('{"message":"a"}\n{"error":"bad\\n  Did you mean rm -rf?"}\n'),
  // A model asked to clear the screen and retitle the terminal, with Windows line ends.
  escapes: (_body, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ message: '\u001b[2J\u001b]0;owned\u0007Title\r\n\tindented' })),
  // Longer than a registrar reads whole (64 MiB): it says so from the length, and hangs up.
  huge: (_body, res) => {
    res.on('error', () => {});
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 65 * 1024 * 1024 }).write('{"message":"');
  },
};

let target: Server;
let targetUrl: string;
let registrar: SvcmeshProcess;

async function register(registrarUrl: string, name: string): Promise<void> {
  const response = await fetch(`${registrarUrl}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ service_name: name, service_url: `${targetUrl}/${name}` }),
  });
  expect(response.status).toBe(200);
}

beforeAll(async () => {
  target = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    req.on('end', () => {
      const name = (req.url ?? '').split('/')[1] ?? '';
      const handle = targets[name];
      if (!handle) return void res.writeHead(404).end();
      handle(JSON.parse(text) as { message?: string }, res);
    });
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
  registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
  for (const name of Object.keys(targets)) await register(registrar.url, name);
});

/** Servers a test started, closed after all of them. */
const cleanups: Array<() => void> = [];

afterAll(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await stopAll();
  await closeServer(target);
  removeTempDirs();
});

/** A registrar that takes connections and never says a word: stopped, or deadlocked. */
async function hungRegistrar(): Promise<string> {
  const hung = await startSilentServer();
  cleanups.push(() => void hung.close());
  return hung.url;
}

/**
 * Starts `svcmesh <args>` (and what follows them on the shell line, a redirection say) on a
 * pseudo-terminal (util-linux `script`), as a person at a shell would: what the terminal shows,
 * a way to type, and its exit code once it ends.
 */
function terminalSession(args: string) {
  const command = `exec '${process.execPath}' '${binPath}' ${args}`;
  const session = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') } });
  let screen = '';
  session.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
  const closed = new Promise<number | null>((resolve) => session.once('close', resolve));
  return {
    screen: () => screen,
    type: (keys: string) => session.stdin.write(keys),
    closed,
    kill: () => session.kill('SIGKILL'),
  };
}

/** Runs `svcmesh <args>` on a pseudo-terminal to its end; its exit code and what the terminal showed. */
async function atTerminal(args: string): Promise<{ code: number | null; screen: string }> {
  const session = terminalSession(args);
  const code = await session.closed;
  return { code, screen: session.screen() };
}

describe('an answer too long to read whole', () => {
  it('says to ask again with --stream, the flag, not the HTTP field', async () => {
    const result = await runSvcmesh(['ask', 'huge', 'tell me everything'], { env: { SVCMESH_REGISTRAR: registrar.url } });
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain('answered more than 64 MiB');
    expect(result.stderr).toContain('Ask again with --stream');
  });
});

describe('the message', () => {
  it('takes words that start with "-" after --, and refuses them before it as an unknown option (exit 2)', async () => {
    const env = { SVCMESH_REGISTRAR: registrar.url };
    const after = await runSvcmesh(['ask', 'echo', '--', 'what', 'does', '-v', 'mean'], { env });
    expect(after, after.stderr).toMatchObject({ code: 0, stdout: 'got: what does -v mean\n' });
    const before = await runSvcmesh(['ask', 'echo', 'what', 'does', '-v', 'mean'], { env });
    expect(before).toMatchObject({ code: 2, stdout: '' });
    expect(before.stderr).toContain("unknown option '-v'");
    expect(before.stderr).toContain('go after --');
  });

  it.each([[''], ['   ']])('refuses an empty message %j given as an argument with exit 2, before contacting the registrar', async (message) => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const result = await runSvcmesh(['ask', 'echo', message, '--registrar', nowhere]);
    expect(result).toMatchObject({ code: 2, stdout: '' });
    expect(result.stderr).toContain('the message is empty');
  });

  it('refuses a message over 1 MiB as the request carries it (JSON-escaped), from arguments or standard input, with exit 2', async () => {
    // Nothing listens here: a message that was sent would fail with exit 1 instead.
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    // 550 KB of quotes as words (each under the kernel's 128 KiB per argument): 1.1 MB escaped.
    const words = Array.from({ length: 5 }, () => '"'.repeat(110_000));
    const asWords = await runSvcmesh(['ask', 'echo', ...words, '--registrar', nowhere]);
    expect(asWords).toMatchObject({ code: 2, stdout: '' });
    expect(asWords.stderr).toContain('the message is over 1 MiB as sent');
    const piped = await runSvcmesh(['ask', 'echo', '--registrar', nowhere], { input: '"'.repeat(1_000_000) });
    expect(piped).toMatchObject({ code: 2, stdout: '' });
    expect(piped.stderr).toContain('the message on standard input is over 1 MiB as sent');
  });

  it('says why standard input cannot be read (a directory: EISDIR) rather than that it held no message, exit 2', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        'bash',
        ['--norc', '--noprofile', '-c', `'${process.execPath}' '${binPath}' ask echo - --registrar ${nowhere} < "$0"`, tempDir()],
        { env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir() }, timeout: 15_000 },
        (error, _stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code) : 0, stderr }),
      );
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('cannot read standard input: EISDIR');
    expect(result.stderr).not.toContain('held no message');
  });
});

describe('words and piped text together', () => {
  /** A line of bash as a user types it, pipes and redirections included. */
  const shell = (line: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'bash',
        // `svcmesh` on the line is a shell function that runs the built binary.
        ['--norc', '--noprofile', '-c', `svcmesh() { '${process.execPath}' '${binPath}' "$@"; }; ${line}`],
        { env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir() }, timeout: 15_000 },
        (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code) : 0, stdout, stderr }),
      );
    });

  it('a "-" among the words stands for what is piped in or redirected from a file', async () => {
    expect(await shell(`printf 'the notes\n' | svcmesh ask echo 'summarize this:' - --registrar ${registrar.url}`)).toMatchObject({
      code: 0,
      stdout: 'got: summarize this: the notes\n',
    });
    const file = `${tempDir()}/notes.txt`;
    expect(await shell(`printf 'line one\nline two\n' > ${file}; svcmesh ask echo - 'in one word?' --registrar ${registrar.url} < ${file}`)).toMatchObject({
      code: 0,
      stdout: 'got: line one\nline two in one word?\n',
    });
    // From a program that spawns svcmesh and writes to its standard input (a socket, not a pipe).
    expect(await runSvcmesh(['ask', 'echo', 'summarize this:', '-', '--registrar', registrar.url], { input: 'spawned notes\n' })).toMatchObject({
      code: 0,
      stdout: 'got: summarize this: spawned notes\n',
    });
    const empty = await shell(`printf '' | svcmesh ask echo 'summarize this:' - --registrar ${registrar.url}`);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('"-" among the words stands for standard input, which held nothing');
  });

  it('words alone never read standard input: a while-read loop keeps its lines, and a minus with nothing piped is a minus', async () => {
    const loop = await shell(`printf 'one\ntwo\n' | while read -r word; do svcmesh ask echo "$word" --registrar ${registrar.url}; done`);
    expect(loop).toMatchObject({ code: 0, stdout: 'got: one\ngot: two\n' });
    expect(await shell(`svcmesh ask echo what is 5 - 3 --registrar ${registrar.url} < /dev/null`)).toMatchObject({ code: 0, stdout: 'got: what is 5 - 3\n' });
  });
});

describe('--timeout', () => {
  it('gives up on a registrar that says nothing for that long, with or without --stream: exit 1, saying what to do', async () => {
    const hung = await hungRegistrar();
    for (const stream of [[], ['--stream']]) {
      const result = await runSvcmesh(['ask', 'echo', 'hello', ...stream, '--timeout', '0.5', '--registrar', hung]);
      expect(result, result.stderr).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr).toContain(`${hung}/forward sent nothing for 0.5 s (--timeout 0.5)`);
      expect(result.stderr).toContain('leave it out to wait as long as the answer takes');
      expect(result.stderr).not.toContain('Is the registrar running there?');
    }
  });

  it('bounds every other client command\'s calls too (the default is 10 s): exit 1 with advice that names it', async () => {
    const hung = await hungRegistrar();
    for (const args of [['services'], ['status'], ['heartbeat', 'echo'], ['register', 'echo', 'http://127.0.0.1:8080'], ['deregister', 'echo']]) {
      // Killed after 5 s: without the flag, its own 10 s would be too late.
      const result = await runSvcmesh([...args, '--timeout', '0.5', '--registrar', hung], { timeoutMs: 5_000 });
      expect(result.code, args[0]).toBe(1);
      expect(result.stderr, args[0]).toContain(': no answer in time');
      expect(result.stderr, args[0]).toContain('(--timeout gives a slow one longer)');
    }
  });

  it('counts silence, not the whole answer: a stream that goes quiet is cut, one that keeps coming is not', async () => {
    const quiet = await runSvcmesh(['ask', 'partial', 'hello', '--stream', '--timeout', '0.5', '--registrar', registrar.url]);
    expect(quiet).toMatchObject({ code: 1, stdout: 'partial \n' });
    expect(quiet.stderr).toContain('sent nothing for 0.5 s (--timeout 0.5)');
    // 1.6 s in all, never more than 200 ms without a piece.
    const steady = await runSvcmesh(['ask', 'steady', 'hello', '--stream', '--timeout', '1', '--registrar', registrar.url]);
    expect(steady, steady.stderr).toMatchObject({ code: 0, stdout: '1 2 3 4 5 6 7 8 \n' });
  });

  it('keeps a streamed error line on one line: a line break in it is written out, not obeyed', async () => {
    const result = await runSvcmesh(['ask', 'forged', 'hello', '--stream', '--registrar', registrar.url]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`The answer from forged through ${registrar.url}/forward stopped: bad\\n  Did you mean rm -rf?`);
  });

  it('refuses a timeout that is not a number of seconds with exit 2', async () => {
    const result = await runSvcmesh(['ask', 'echo', 'hello', '--timeout', 'soon', '--registrar', registrar.url]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Expected a number of seconds');
    // The hint about words starting with "-" is for unknown options only.
    expect(result.stderr).toContain('(run `svcmesh ask --help` for usage)');
    expect(result.stderr).not.toContain('go after --');
  });
});

describeIfInstalled('ask at a terminal with no message', spawnSync('script', ['--version']).status === 0, 'util-linux `script` (Debian: bsdutils) is needed to give ask a terminal', () => {
  it('says a name the registrar does not know before any prompt, with the names it does know: exit 1', async () => {
    const { code, screen } = await atTerminal(`ask ecko --registrar ${registrar.url}`);
    expect(code, screen).toBe(1);
    expect(screen).toContain('ecko is not registered');
    expect(screen).toContain('Did you mean echo?');
    expect(screen).not.toContain('>>> ');
  });

  it('with its output sent to a file, shows the prompt on the terminal and writes only the answers to the file', async () => {
    const file = `${tempDir('svcmesh-ask-out-')}/answers.txt`;
    const session = terminalSession(`ask echo --registrar ${registrar.url} > '${file}'`);
    try {
      await waitFor(() => session.screen().includes('>>> '), 10_000, 'the prompt on the terminal');
      session.type('hello\r');
      await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('got: hello'), 10_000, 'the answer in the file');
      await waitFor(() => session.screen().split('>>> ').length > 2, 10_000, 'the next prompt');
      session.type('\x04');
      expect(await session.closed).toBe(0);
    } finally {
      session.kill();
    }
    expect(readFileSync(file, 'utf8')).toBe('got: hello\n');
  });

  it('Ctrl-D while an answer comes ends the session once the answer is over, exit 0, not a prompt that reads nothing', async () => {
    const session = terminalSession(`ask steady --registrar ${registrar.url}`);
    try {
      await waitFor(() => session.screen().includes('>>> '), 10_000, 'the prompt');
      session.type('count to eight\r');
      await waitFor(() => session.screen().includes('1 '), 10_000, 'the first piece of the answer');
      session.type('\x04');
      const code = await Promise.race([session.closed, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
      expect(code, session.screen()).toBe(0);
    } finally {
      session.kill();
    }
    expect(session.screen()).toContain('8 ');
    expect(session.screen().split('>>> ')).toHaveLength(2);
  });

  it('says before any prompt that the registrar wants a token for forwards, when none or a wrong one is given: exit 1', async () => {
    const guarded = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--token', 'ask-secret']);
    const registered = await fetch(`${guarded.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ask-secret' },
      body: JSON.stringify({ service_name: 'echo', service_url: `${targetUrl}/echo` }),
    });
    expect(registered.status).toBe(200);
    const { code, screen } = await atTerminal(`ask echo --registrar ${guarded.url}`);
    expect(code, screen).toBe(1);
    expect(screen).toContain(`The registrar at ${guarded.url} needs a token to forward questions: pass it with --token or SVCMESH_TOKEN`);
    expect(screen).not.toContain('>>> ');

    // A wrong one is said before the prompt too.
    const wrong = await atTerminal(`ask echo --token guess --registrar ${guarded.url}`);
    expect(wrong.code, wrong.screen).toBe(1);
    expect(wrong.screen).toContain(`The registrar at ${guarded.url} does not accept the token given: check --token, SVCMESH_TOKEN`);
    expect(wrong.screen).not.toContain('>>> ');

    // With the token, the session opens and answers.
    const session = terminalSession(`ask echo --token ask-secret --registrar ${guarded.url}`);
    try {
      await waitFor(() => session.screen().includes('>>> '), 10_000, 'the prompt');
      session.type('hello\r');
      await waitFor(() => session.screen().includes('got: hello'), 10_000, 'the answer');
      session.type('\x04');
      expect(await session.closed).toBe(0);
    } finally {
      session.kill();
    }
  });

  it('gives up on a hung registrar within --timeout before any prompt', async () => {
    const { code, screen } = await atTerminal(`ask echo --timeout 0.5 --registrar ${await hungRegistrar()}`);
    expect(code, screen).toBe(1);
    expect(screen).toContain('sent nothing for 0.5 s (--timeout 0.5)');
    expect(screen).not.toContain('>>> ');
  });
});

describe('control characters in an answer', () => {
  const answer = '\u001b[2J\u001b]0;owned\u0007Title\r\n\tindented';

  it('go out exactly as they came when the answer is piped', async () => {
    const result = await runSvcmesh(['ask', 'escapes', 'hello', '--registrar', registrar.url]);
    expect(result).toMatchObject({ code: 0, stdout: `${answer}\n` });
  });

  describeIfInstalled('at a terminal', spawnSync('script', ['--version']).status === 0, 'util-linux `script` (Debian: bsdutils) is needed to give ask a terminal', () => {
    it.each([[[]], [['--stream']]])('are written out, not obeyed, while line breaks and tabs lay the answer out (%j)', async (stream) => {
      const { code, screen } = await atTerminal(`ask escapes hello ${stream.join(' ')} --registrar ${registrar.url}`);
      expect(code, screen).toBe(0);
      // The terminal turns each line break into CRLF itself.
      expect(screen).toContain('\\u001b[2J\\u001b]0;owned\\u0007Title\r\n\tindented');
      expect(screen).not.toContain('\u001b[2J');
      expect(screen).not.toContain('\u0007');
    });
  });
});

describe('Ctrl-C', () => {
  it('while waiting for a whole answer: stops quietly with exit 130', async () => {
    const heldBefore = held;
    const ask = spawnSvcmesh(['ask', 'silent', 'hello', '--registrar', registrar.url]);
    await waitFor(() => held > heldBefore, 10_000, 'the question to reach the target');
    ask.child.kill('SIGINT');
    expect((await ask.exited).code).toBe(130);
    expect(ask.stderr()).toBe('');
    expect(ask.stdout()).toBe('');
  });

  it('in the middle of a streamed answer: ends the words printed with a line break, exit 130', async () => {
    const ask = spawnSvcmesh(['ask', 'partial', 'hello', '--stream', '--registrar', registrar.url]);
    expect(await ask.firstChunk).toBe('partial ');
    ask.child.kill('SIGINT');
    expect((await ask.exited).code).toBe(130);
    expect(ask.stderr()).toBe('');
    expect(ask.stdout()).toBe('partial \n');
  });
});

describe('a streamed answer that goes wrong', () => {
  it('the registrar lost mid-answer: the line is ended, the message names the registrar URL and the cause, exit 1', async () => {
    const doomed = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    await register(doomed.url, 'partial');
    const ask = spawnSvcmesh(['ask', 'partial', 'hello', '--stream', '--registrar', doomed.url]);
    expect(await ask.firstChunk).toBe('partial ');
    await doomed.stop('SIGKILL');
    expect((await ask.exited).code).toBe(1);
    expect(ask.stdout()).toBe('partial \n');
    expect(ask.stderr()).toContain(`Lost the registrar at ${doomed.url}/forward in the middle of the answer: the connection closed`);
  });

  it('a 200 with no "message" (and no "done"): exit 1, as without --stream', async () => {
    const streamed = await runSvcmesh(['ask', 'unanswered', 'hello', '--stream', '--registrar', registrar.url]);
    expect(streamed).toMatchObject({ code: 1, stdout: '' });
    expect(streamed.stderr).toContain('unanswered answered without a "message" text: {"answer":"x"}');
    const whole = await runSvcmesh(['ask', 'unanswered', 'hello', '--registrar', registrar.url]);
    expect(whole).toMatchObject({ code: 1, stdout: '' });
    expect(whole.stderr).toContain('unanswered answered without a "message" text');
  });

  it('a compressed answer is decoded, whole or streamed, and an error in one still reads as the error', async () => {
    expect(await runSvcmesh(['ask', 'gzipped', 'hello', '--registrar', registrar.url])).toMatchObject({ code: 0, stdout: 'zipped: hello\n' });
    expect(await runSvcmesh(['ask', 'brotli', 'hello', '--registrar', registrar.url])).toMatchObject({ code: 0, stdout: 'br: hello\n' });
    expect(await runSvcmesh(['ask', 'gzipped-stream', 'hello', '--stream', '--registrar', registrar.url])).toMatchObject({ code: 0, stdout: 'one two\n' });
    expect(await runSvcmesh(['ask', 'twice-coded', 'hello', '--registrar', registrar.url])).toMatchObject({ code: 0, stdout: 'twice: hello\n' });
    const refused = await runSvcmesh(['ask', 'gzipped-error', 'hello', '--registrar', registrar.url]);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toContain('answered 429: slow down');
  });

  it('a compressed answer that unpacks past 64 MiB, or a streamed line that long, is refused: exit 1, saying so', async () => {
    const whole = await runSvcmesh(['ask', 'gzip-bomb', 'hello', '--registrar', registrar.url]);
    expect(whole).toMatchObject({ code: 1, stdout: '' });
    expect(whole.stderr).toContain(`${registrar.url}/forward answered, but its body is more than 64 MiB once decoded`);
    expect(whole.stderr).toContain('--stream');
    const streamed = await runSvcmesh(['ask', 'endless-line', 'hello', '--stream', '--registrar', registrar.url]);
    expect(streamed).toMatchObject({ code: 1, stdout: '' });
    expect(streamed.stderr).toContain(`${registrar.url}/forward streamed a line longer than 64 Mi characters`);
  });

  it('an answer that says gzip but is not, or in a coding it cannot decode: exit 1, saying so rather than that the registrar was lost', async () => {
    const result = await runSvcmesh(['ask', 'not-gzip', 'hello', '--registrar', registrar.url]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain(`${registrar.url}/forward answered, but its body is not valid gzip (Z_DATA_ERROR)`);
    expect(result.stderr).not.toContain('Lost the registrar');
    // A coding it does not know is named, rather than its bytes shown as "not JSON".
    const unknown = await runSvcmesh(['ask', 'zstd', 'hello', '--registrar', registrar.url]);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toContain(`${registrar.url}/forward answered, but its body is in an encoding svcmesh cannot decode (zstd)`);
  });

  it('an empty answer (a 200 with no body, a 204) says so, rather than quoting nothing as "not JSON": exit 1', async () => {
    for (const [name, status] of [['empty', 200], ['no-content', 204], ['empty-gzip', 200]] as const) {
      const result = await runSvcmesh(['ask', name, 'hello', '--registrar', registrar.url]);
      expect(result).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr).toContain(`${registrar.url}/forward answered ${status} with an empty body, where JSON was expected`);
    }
  });

  it('a line that is not JSON: the line is ended, the message says so without calling the registrar unreachable, exit 1', async () => {
    const result = await runSvcmesh(['ask', 'garbled', 'hello', '--stream', '--registrar', registrar.url]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('partial \n');
    expect(result.stderr).toContain(`${registrar.url}/forward streamed a line that is not JSON`);
    expect(result.stderr).not.toContain('Is the registrar running there?');
  });
});
