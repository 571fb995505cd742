#!/usr/bin/env node
/**
 * A fake Ollama for the benchmark: a node:http server on 127.0.0.1 answering the routes the
 * svcmesh Ollama service uses, shaped the way Ollama 0.5.x answers them.
 *
 *   node bench/fake-ollama.mjs [--port 0] [--token-delay-ms 20] [--tokens 20]
 *
 * POST /api/chat streams `--tokens` NDJSON parts, waiting `--token-delay-ms` before each one, then
 * a `done: true` part; GET /api/tags lists llama3.2:latest; GET /api/version says 0.5.7.
 * Prints `fake ollama listening on http://127.0.0.1:PORT` once it listens.
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'token-delay-ms': { type: 'string', default: '20' },
    tokens: { type: 'string', default: '20' },
  },
});
const tokenDelayMs = Number(values['token-delay-ms']);
const tokenCount = Number(values.tokens);
const MODEL = 'llama3.2:latest';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function json(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function part(model, content, done) {
  const base = { model, created_at: new Date().toISOString(), message: { role: 'assistant', content } };
  if (!done) return { ...base, done: false };
  return {
    ...base,
    done_reason: 'stop',
    done: true,
    total_duration: tokenCount * tokenDelayMs * 1e6,
    load_duration: 1_000_000,
    prompt_eval_count: 10,
    prompt_eval_duration: 1_000_000,
    eval_count: tokenCount,
    eval_duration: tokenCount * tokenDelayMs * 1e6,
  };
}

async function chat(req, res) {
  let request;
  try {
    request = JSON.parse(await readBody(req));
  } catch {
    return json(res, 400, { error: 'invalid character in request body' });
  }
  const model = String(request.model ?? '');
  if (model !== 'llama3.2' && model !== MODEL) {
    return json(res, 404, { error: `model "${model}" not found, try pulling it first` });
  }
  let gone = false;
  res.on('close', () => {
    gone = true;
  });
  if (request.stream === false) {
    await sleep(tokenDelayMs * tokenCount);
    return json(res, 200, part(model, 'tok '.repeat(tokenCount), true));
  }
  res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
  for (let i = 0; i < tokenCount; i += 1) {
    await sleep(tokenDelayMs);
    if (gone) return;
    res.write(`${JSON.stringify(part(model, 'tok ', false))}\n`);
  }
  if (!gone) res.end(`${JSON.stringify(part(model, '', true))}\n`);
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'POST' && path === '/api/chat') {
    chat(req, res).catch((error) => {
      if (!res.headersSent) json(res, 500, { error: String(error) });
      else res.destroy();
    });
    return;
  }
  if (req.method === 'GET' && path === '/api/tags') {
    return json(res, 200, {
      models: [{ name: MODEL, model: MODEL, modified_at: '2025-01-01T00:00:00Z', size: 2019393189, digest: 'a80c4f17acd5', details: { family: 'llama' } }],
    });
  }
  if (req.method === 'GET' && path === '/api/version') return json(res, 200, { version: '0.5.7' });
  if (req.method === 'GET' && path === '/') {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    return res.end('Ollama is running');
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('404 page not found');
});
server.keepAliveTimeout = 65_000;

server.listen(Number(values.port), '127.0.0.1', () => {
  console.log(`fake ollama listening on http://127.0.0.1:${server.address().port}`);
});
function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
