/**
 * Client commands against something at the registrar's URL that does not answer as a registrar
 * does (a proxy's error page, another service, a hostile server): the user gets a short message
 * that names the URL and exit 1, never `undefined`, a minified internal error, 20 KB of HTML, or
 * escape sequences that take over the terminal.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, removeTempDirs, runSvcmesh, startSvcmesh, stopAll } from './support/processes.js';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
const ESC = '\u001b';
const HOSTILE = `${ESC}]0;pwned\u0007${ESC}[2J\u009b31m`;

/** The answers of each kind of odd server, by the first segment of the path (its "registrar URL"). */
const answers: Record<string, (path: string) => [number, string, string]> = {
  // JSON, but not the shape a registrar sends.
  wrongshape: (path) => [200, 'application/json', path === '/forward' || /register|heartbeat/.test(path) ? '{"foo":1}' : '{"services":[1,2],"name":3,"instances":"x"}'],
  // A text error page far longer than a line, as an app server's stack dump can be.
  err500: () => [500, 'text/plain', 'boom'.repeat(5_000)],
  // A proxy in front of a registrar that is down.
  html502: () => [502, 'text/html', `<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n${'<p>padding</p>\n'.repeat(2_000)}</body>\n</html>\n`],
  // Terminal escapes in every text a registrar sends.
  hostile: (path) => {
    if (path === '/health') return [200, 'application/json', JSON.stringify({ status: 'ok', detail: HOSTILE, version: HOSTILE, store: HOSTILE, ttl_seconds: 300, services: 1, instances: 1, uptime_seconds: 5 })];
    if (path === '/catalog') {
      const instance = { url: `http://x/${HOSTILE}`, registered_at: new Date().toISOString(), last_heartbeat: new Date().toISOString(), expires_at: new Date(Date.now() + 60_000).toISOString(), metadata: { model: HOSTILE } };
      return [200, 'application/json', JSON.stringify({ services: { [`evil${HOSTILE}`]: [instance] } })];
    }
    if (path === '/heartbeat') return [200, 'application/json', JSON.stringify({ message: `Heartbeat ${HOSTILE}` })];
    return [400, 'application/json', JSON.stringify({ error: `refused ${HOSTILE}\nerror forged line` })];
  },
  // JSON `null` everywhere, the event stream's snapshot included.
  null: (path) => (path === '/events' ? sse('snapshot', 'null') : [200, 'application/json', 'null']),
  // JSON that is not an object.
  arr: (path) => (path === '/events' ? sse('snapshot', '[1,2]') : [200, 'application/json', '[1,2]']),
  // A health answer with the right status but the counts of the wrong type and the rest missing.
  svcarr: () => [200, 'application/json', '{"services":[1,2],"instances":[null],"status":"ok"}'],
  // Instances whose times are not dates.
  baddate: (path) => {
    const instance = { url: 'http://a', registered_at: '2026-01-01T00:00:00Z', last_heartbeat: 'bad', expires_at: 'nope', metadata: {} };
    return [200, 'application/json', JSON.stringify(path === '/catalog' ? { services: { x: [instance] } } : { name: 'x', instances: [instance] })];
  },
  // A registrar that answers as one does, and then sends events of the wrong shape.
  badevents: (path) => {
    if (path === '/health') return [200, 'application/json', HEALTHY];
    if (path === '/services/x') return [200, 'application/json', '{"name":"x","instances":[]}'];
    return sse('snapshot', '{"type":"snapshot","services":{}}', 'registered', '{"type":"registered","name":"x","instance":5}');
  },
  badsnapshot: (path) => {
    if (path === '/health') return [200, 'application/json', HEALTHY];
    if (path === '/services/x') return [200, 'application/json', '{"name":"x","instances":[]}'];
    return sse('snapshot', '{"name":"x","instances":[null,5]}');
  },
  // Streamed answers from /forward: one that ends without its closing line, ones with lines of the wrong shape.
  nodone: () => [200, 'application/x-ndjson', '{"message":"a"}\n'],
  weirdmessage: () => [200, 'application/x-ndjson', '{"message":"a"}\n{"message":5}\n{"done":true}\n'],
  weirdarray: () => [200, 'application/x-ndjson', '{"message":"a"}\n[1]\n{"done":true}\n'],
  streamed: () => [200, 'application/x-ndjson', '{"message":"a"}\n{"message":"b"}\n{"done":true}\n'],
  // A service that does not stream: one JSON answer, even when asked to stream.
  whole: () => [200, 'application/json', '{"message":"whole"}'],
};

const HEALTHY = JSON.stringify({ status: 'ok', version: '0.1.0', store: 'memory', ttl_seconds: 300, services: 0, instances: 0, uptime_seconds: 1 });

/** An event stream of (event, data) pairs, ended after them (a watcher then reconnects). */
function sse(...pairs: string[]): [number, string, string] {
  let body = '';
  for (let i = 0; i < pairs.length; i += 2) body += `event: ${pairs[i]}\ndata: ${pairs[i + 1]}\n\n`;
  return [200, 'text/event-stream', body];
}

let odd: Server;
let base: string;

beforeAll(async () => {
  odd = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      // A relayed answer with a header past node's 16 KiB (the registrar relays up to 64 KiB).
      if (req.url === '/bigheader/forward') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'x'.repeat(20 * 1024) });
        res.end('{"message":"fine"}');
        return;
      }
      // Headers and the start of a body, then the connection dropped: a registrar killed as it answers.
      if (req.url?.startsWith('/cut/')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write(req.url.endsWith('/forward') ? '{"message":"half an ans' : '{"services":{"a":"http://');
        setTimeout(() => res.destroy(), 50);
        return;
      }
      const [, kind = '', ...rest] = (req.url ?? '').split('/');
      const answer = answers[kind];
      if (!answer) return void res.writeHead(404).end();
      const [status, type, body] = answer(`/${rest.join('/')}`);
      res.writeHead(status, { 'content-type': type }).end(body);
    });
  });
  await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(odd.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await stopAll();
  await closeServer(odd);
  removeTempDirs();
});

describe('a 200 without the "message" a write answers with', () => {
  it('register, deregister and heartbeat exit 1, naming the URL and what came back, instead of printing undefined', async () => {
    const at = ['--registrar', `${base}/wrongshape`];
    for (const [args, path] of [
      [['register', 'web', 'http://127.0.0.1:8080'], 'register'],
      [['deregister', 'web'], 'deregister'],
      [['heartbeat', 'web'], 'heartbeat'],
    ] as const) {
      const result = await runSvcmesh([...args, ...at]);
      expect(result.code, path).toBe(1);
      expect(result.stdout, path).toBe('');
      expect(result.stderr, path).toContain(`${base}/wrongshape/${path} answered without a "message" text: {"foo":1}`);
    }
  });
});

describe('an answer that is not a catalog', () => {
  it('services and services NAME say so with a snippet, exit 1; --json still prints it as it came', async () => {
    const at = ['--registrar', `${base}/wrongshape`];
    const all = await runSvcmesh(['services', ...at]);
    expect(all.code).toBe(1);
    expect(all.stderr).toContain(`${base}/wrongshape/catalog answered something that is not an svcmesh catalog: {"services":[1,2]`);
    expect(all.stderr).not.toContain('is not a function');
    const one = await runSvcmesh(['services', 'web', ...at]);
    expect(one.code).toBe(1);
    expect(one.stderr).toContain(`${base}/wrongshape/services/web answered something that is not an svcmesh catalog: {"services":[1,2]`);
    const json = await runSvcmesh(['services', '--json', ...at]);
    expect(json.code).toBe(0);
    expect(json.stdout).toBe('{"services":[1,2],"name":3,"instances":"x"}\n');
  });
});

describe('an error body that is not JSON', () => {
  it('is cut to a few hundred characters on one line, ending in "…"', async () => {
    for (const kind of ['err500', 'html502']) {
      const result = await runSvcmesh(['status', '--registrar', `${base}/${kind}`]);
      expect(result.code, kind).toBe(1);
      expect(result.stderr.length, kind).toBeLessThan(600);
      const line = result.stderr.split('\n')[0]!;
      expect(line, kind).toMatch(new RegExp(`^error ${base}/${kind}/health answered ${kind.slice(-3)}: \\S.*…$`));
    }
    const html = await runSvcmesh(['status', '--registrar', `${base}/html502`]);
    expect(html.stderr).toContain('<html> <head><title>502 Bad Gateway</title></head> <body>');
  });
});

describe('terminal escapes from the server', () => {
  it('are shown escaped in status, in the services table and in messages and errors; --json keeps them', async () => {
    const at = ['--registrar', `${base}/hostile`];
    const status = await runSvcmesh(['status', ...at]);
    expect(status.stdout).not.toMatch(CONTROL);
    expect(status.stdout).toMatch(/^Version +\\u001b\]0;pwned\\u0007\\u001b\[2J\\u009b31m$/m);

    const table = await runSvcmesh(['services', ...at]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).not.toMatch(CONTROL);
    expect(table.stdout).toContain('evil\\u001b]0;pwned\\u0007');
    expect(table.stdout).toContain('http://x/\\u001b]0;pwned');
    expect(table.stdout).toContain('model=\\u001b]0;pwned');

    const beat = await runSvcmesh(['heartbeat', 'web', ...at]);
    expect(beat.stdout).toBe('Heartbeat \\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\n');

    const refused = await runSvcmesh(['register', 'web', 'http://127.0.0.1:8080', ...at]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).not.toMatch(CONTROL);
    // A line break in the server's message is shown, not obeyed: no line of its own can be forged.
    expect(refused.stderr).toContain('refused \\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\nerror forged line');

    const json = await runSvcmesh(['status', '--json', ...at]);
    expect(JSON.parse(json.stdout).version).toBe(HOSTILE);
  });

  it('metadata registered with escapes is shown escaped in the table of a real registrar', async () => {
    const registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    const at = ['--registrar', registrar.url];
    const metadata = JSON.stringify({ model: `${ESC}]0;PWNED\u0007${ESC}[31mred${ESC}[0m`, x: 'a\nb', [`k${ESC}[1m`]: 'v' });
    expect((await runSvcmesh(['register', 'evil', 'http://127.0.0.1:7799', '--metadata', metadata, ...at])).code).toBe(0);
    for (const args of [['services'], ['services', 'evil']]) {
      const result = await runSvcmesh([...args, ...at]);
      expect(result.stdout, args.join(' ')).not.toMatch(CONTROL);
      expect(result.stdout, args.join(' ')).toContain('model=\\u001b]0;PWNED\\u0007\\u001b[31mred\\u001b[0m');
      expect(result.stdout, args.join(' ')).toContain('x="a\\nb"');
    }
    const json = await runSvcmesh(['services', 'evil', '--json', ...at]);
    expect(JSON.parse(json.stdout).instances[0].metadata.model).toBe(`${ESC}]0;PWNED\u0007${ESC}[31mred${ESC}[0m`);
    await registrar.stop();
  });
});

describe('a 200 of JSON null', () => {
  it('ask, status and services --watch exit 1 naming the URL and quoting it, not with a TypeError', async () => {
    const at = ['--registrar', `${base}/null`];
    const ask = await runSvcmesh(['ask', 'web', 'hi', ...at]);
    expect(ask).toMatchObject({ code: 1, stdout: '' });
    expect(ask.stderr).toContain('web answered without a "message" text: null');
    const status = await runSvcmesh(['status', ...at]);
    expect(status).toMatchObject({ code: 1, stdout: '' });
    expect(status.stderr).toContain(`${base}/null/health answered something that is not an svcmesh registrar's health: null`);
    for (const args of [['services', '--watch'], ['services', 'x', '--watch']]) {
      const watch = await runSvcmesh([...args, ...at], { timeoutMs: 8_000 });
      expect(watch.timedOut, args.join(' ')).toBe(false);
      expect(watch.code, args.join(' ')).toBe(1);
      expect(watch.stderr, args.join(' ')).toContain(`${base}/null/events sent an event that is not an svcmesh event: null`);
      expect(watch.stderr, args.join(' ')).not.toContain('Cannot read properties');
    }
    for (const text of [ask.stderr, status.stderr]) expect(text).not.toContain('Cannot read properties');
  });
});

describe('a health answer of the wrong shape', () => {
  it('status exits 1 naming the URL and quoting it, instead of a table of "unknown"; --json prints it as it came', async () => {
    for (const [kind, body] of [['arr', '[1,2]'], ['svcarr', '{"services":[1,2],"instances":[null],"status":"ok"}']]) {
      const result = await runSvcmesh(['status', '--registrar', `${base}/${kind}`]);
      expect(result, kind).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr, kind).toContain(`${base}/${kind}/health answered something that is not an svcmesh registrar's health: ${body}`);
    }
    const json = await runSvcmesh(['status', '--json', '--registrar', `${base}/svcarr`]);
    expect(json.stdout).toBe('{"services":[1,2],"instances":[null],"status":"ok"}\n');
  });
});

describe('times that are not dates', () => {
  it('services and services NAME refuse the answer as not a catalog, never showing NaN', async () => {
    const at = ['--registrar', `${base}/baddate`];
    for (const [args, path] of [[['services'], 'catalog'], [['services', 'x'], 'services/x']] as const) {
      const result = await runSvcmesh([...args, ...at]);
      expect(result, path).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr, path).toContain(`${base}/baddate/${path} answered something that is not an svcmesh catalog: {`);
      expect(result.stderr, path).not.toContain('NaN');
    }
  });
});

describe('services --watch: events of the wrong shape', () => {
  it('exit 1 naming …/events and quoting the data, instead of printing undefined and reconnecting forever', async () => {
    for (const [kind, data] of [
      ['arr', '[1,2]'],
      ['badsnapshot', '{"name":"x","instances":[null,5]}'],
      ['badevents', '{"type":"registered","name":"x","instance":5}'],
    ]) {
      for (const args of [['services', '--watch'], ['services', 'x', '--watch']]) {
        const label = `${kind}: ${args.join(' ')}`;
        const result = await runSvcmesh([...args, '--registrar', `${base}/${kind}`], { timeoutMs: 8_000 });
        expect(result.timedOut, label).toBe(false);
        expect(result.code, label).toBe(1);
        expect(result.stdout, label).not.toContain('undefined');
        expect(result.stderr, label).toContain(`${base}/${kind}/events sent an event that is not an svcmesh event: ${data}`);
      }
    }
  });
});

describe('ask --stream: a streamed answer of the wrong shape', () => {
  it('one that ends without {"done": true} prints what came, then exits 1 saying it is incomplete', async () => {
    const result = await runSvcmesh(['ask', 'web', 'hi', '--stream', '--registrar', `${base}/nodone`]);
    expect(result).toMatchObject({ code: 1, stdout: 'a\n' });
    expect(result.stderr).toContain(`${base}/nodone/forward ended the answer without its closing {"done": true} line`);
    const json = await runSvcmesh(['ask', 'web', 'hi', '--stream', '--json', '--registrar', `${base}/nodone`]);
    expect(json).toMatchObject({ code: 1, stdout: '{"message":"a"}\n' });
    expect(json.stderr).toContain('without its closing');
  });

  it('lines that are not answer lines stop it with exit 1, naming the URL and quoting the line', async () => {
    for (const [kind, line] of [['weirdmessage', '{"message":5}'], ['weirdarray', '[1]']]) {
      const result = await runSvcmesh(['ask', 'web', 'hi', '--stream', '--registrar', `${base}/${kind}`]);
      expect(result, kind).toMatchObject({ code: 1, stdout: 'a\n' });
      expect(result.stderr, kind).toContain(`${base}/${kind}/forward streamed a line that is not an answer line, so the answer stops here: ${line}`);
    }
  });

  it('a whole stream, and one JSON answer from a service that does not stream, are fine', async () => {
    expect(await runSvcmesh(['ask', 'web', 'hi', '--stream', '--registrar', `${base}/streamed`])).toMatchObject({ code: 0, stdout: 'ab\n', stderr: '' });
    expect(await runSvcmesh(['ask', 'web', 'hi', '--stream', '--registrar', `${base}/whole`])).toMatchObject({ code: 0, stdout: 'whole\n', stderr: '' });
  });
});

describe('an answer cut off after its headers', () => {
  it('every command exits 1 naming the URL and saying the connection closed mid-answer, not just "aborted"', async () => {
    const at = ['--registrar', `${base}/cut`];
    for (const [args, path] of [
      [['services'], 'catalog'],
      [['services', '--json'], 'services'],
      [['status'], 'health'],
      [['heartbeat', 'web'], 'heartbeat'],
      [['register', 'web', 'http://127.0.0.1:8080'], 'register'],
      [['ask', 'web', 'hi'], 'forward'],
    ] as const) {
      const result = await runSvcmesh([...args, ...at]);
      const label = args.join(' ');
      expect(result.code, label).toBe(1);
      expect(result.stdout, label).toBe('');
      expect(result.stderr, label).toContain(`Lost the registrar at ${base}/cut/${path} in the middle of the answer: the connection closed before the answer ended`);
    }
  });
});

describe('a long-running registration pointed at something that is no registrar', () => {
  it('register --keep-alive and ollama --register stop with exit 1 and the hint, rather than retry forever', async () => {
    const at = ['--registrar', `${base}/notaregistrar`];
    for (const args of [
      ['register', 'web', 'http://127.0.0.1:8080', '--keep-alive'],
      ['ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', 'http://127.0.0.1:9', '--register'],
    ]) {
      const result = await runSvcmesh([...args, ...at], { timeoutMs: 15_000 });
      expect(result.code, args[0]).toBe(1);
      expect(result.stderr, args[0]).toContain(`${base}/notaregistrar/register answered 404`);
      expect(result.stderr, args[0]).toContain(`Is ${base}/notaregistrar a svcmesh registrar?`);
    }
  });
});

describe('an answer with headers past 16 KiB', () => {
  it('ask reads it, as the registrar relays headers up to 64 KiB, rather than say the registrar cannot be reached', async () => {
    const result = await runSvcmesh(['ask', 'web', 'hi', '--registrar', `${base}/bigheader`]);
    expect(result).toMatchObject({ code: 0, stdout: 'fine\n' });
  });
});
