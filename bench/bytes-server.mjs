#!/usr/bin/env node
/**
 * The benchmark's ceiling for GET /services: a bare node:http server that answers every GET with
 * the bytes it fetched once from `--from` (the registrar's /services, with its ETag), and does
 * nothing else. Whatever the registrar's rate falls short of this one's is the registrar's own
 * cost; what this one falls short of the trivial answer is the cost of moving those bytes (in
 * the kernel, and in autocannon, which decodes every body it receives into a string).
 *
 *   node bench/bytes-server.mjs --from http://127.0.0.1:PORT/services [--port 0]
 *
 * Prints `bytes server listening on http://127.0.0.1:PORT (N bytes)` once it listens.
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { from: { type: 'string' }, port: { type: 'string', default: '0' } } });
if (!values.from) {
  process.stderr.write('bytes-server: --from URL is required\n');
  process.exit(2);
}
const source = await fetch(values.from);
if (!source.ok) {
  process.stderr.write(`bytes-server: GET ${values.from} answered ${source.status}\n`);
  process.exit(1);
}
const bytes = Buffer.from(await source.arrayBuffer());
const headers = { 'content-type': 'application/json', 'content-length': bytes.byteLength, etag: source.headers.get('etag') ?? '"0"' };

const server = createServer((req, res) => {
  res.writeHead(200, headers);
  res.end(bytes);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1', () => {
  console.log(`bytes server listening on http://127.0.0.1:${server.address().port} (${bytes.byteLength} bytes)`);
});
function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
