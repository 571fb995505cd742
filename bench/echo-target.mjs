#!/usr/bin/env node
/**
 * The benchmark's echo target: the cheapest service a registrar can forward to, and the
 * reference for what "a trivial answer" costs on this machine.
 *
 *   node bench/echo-target.mjs [--port 0]
 *
 * POST /receive `{"message": "hi"}` → `{"message": "hi"}`; GET / → `{"status":"ok"}`.
 * Prints `echo target listening on http://127.0.0.1:PORT` once it listens.
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/receive') {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      let message;
      try {
        message = JSON.parse(Buffer.concat(chunks).toString('utf8')).message;
      } catch {
        return json(res, 400, '{"error":"Request body must be JSON"}');
      }
      json(res, 200, JSON.stringify({ message }));
    });
    return;
  }
  if (req.method === 'GET' && req.url === '/') return json(res, 200, '{"status":"ok"}');
  json(res, 404, '{"error":"Not found"}');
});
server.keepAliveTimeout = 65_000;

server.listen(Number(values.port), '127.0.0.1', () => {
  console.log(`echo target listening on http://127.0.0.1:${server.address().port}`);
});
function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
