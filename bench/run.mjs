#!/usr/bin/env node
/**
 * svcmesh benchmark (issue #6): starts the BUILT registrar, an echo target, a fake Ollama and the
 * Ollama service on loopback, drives them with autocannon, and prints each measurement next to
 * its target. A measurement, not a test: a missed target still exits 0; something that could not
 * be measured exits 1. Beside the registrar it measures two yardsticks in the same turns: a bare
 * node:http server sending the registrar's /services bytes (bench/bytes-server.mjs), and nginx
 * proxying to the echo target, when nginx is installed (otherwise that row is left out).
 *
 *   npm run bench                         build, then run (≈ 4 minutes)
 *   npm run bench -- --json out.json      also write the results as JSON to out.json
 *   npm run -s bench -- --json            the JSON on stdout (the table then goes to stderr;
 *                                         tsup's build lines still go to stdout: prefer a file)
 *   node bench/run.mjs --compare old.json show a previous --json run next to this one
 *
 * Options: --duration <s> (each load measurement, default 3), --rounds <n> (measurements of each
 * load, taken in turns with the loads it is compared with; medians reported; default 5),
 * --connections <n> (default 50),
 * --runs <n> (start-up runs per command, default 30), --ttfc-requests <n> (default 30),
 * --no-hyperfine (time start-up with spawnSync even when hyperfine is installed),
 * --cpu-prof <dir> (run the registrars under `node --cpu-prof`, profiles written to <dir>;
 * `SVCMESH_NO_MINIFY=1 npm run bench -- --cpu-prof DIR` builds with readable names).
 */
import autocannon from 'autocannon';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'svcmesh.js');
const DIST = path.join(ROOT, 'dist', 'cli.js');
const BENCH = path.join(ROOT, 'bench');

// ---------------------------------------------------------------------------------------------
// Options

function parseOptions(argv) {
  const options = {
    duration: 3,
    rounds: 5,
    connections: 50,
    runs: 30,
    ttfcRequests: 30,
    tokenDelayMs: 20,
    tokens: 20,
    json: undefined, // undefined: no JSON; '-': stdout; otherwise a file path
    compare: undefined,
    hyperfine: true,
    cpuProf: undefined,
  };
  const number = (name, value) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) usage(`${name} expects a positive number, got ${JSON.stringify(value)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const next = () => (i + 1 < argv.length ? argv[++i] : usage(`${arg} expects a value`));
    if (arg === '--json') options.json = argv[i + 1] && !argv[i + 1].startsWith('--') ? argv[++i] : '-';
    else if (arg === '--compare') options.compare = next();
    else if (arg === '--duration') options.duration = number(arg, next());
    else if (arg === '--rounds') options.rounds = Math.round(number(arg, next()));
    else if (arg === '--connections') options.connections = Math.round(number(arg, next()));
    else if (arg === '--runs') options.runs = Math.round(number(arg, next()));
    else if (arg === '--ttfc-requests') options.ttfcRequests = Math.round(number(arg, next()));
    else if (arg === '--no-hyperfine') options.hyperfine = false;
    else if (arg === '--cpu-prof') options.cpuProf = path.resolve(next());
    else if (arg === '--help' || arg === '-h') usage();
    else usage(`Unknown option ${arg}`);
  }
  return options;
}

function usage(problem) {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0].replace(/^#!.*\n\/\*\*\n/, '').replace(/^ \* ?/gm, '');
  if (problem) {
    process.stderr.write(`bench: ${problem}\n\n${text}`);
    process.exit(2);
  }
  process.stdout.write(text);
  process.exit(0);
}

const options = parseOptions(process.argv.slice(2));
// With the JSON on stdout, everything meant for people goes to stderr.
const out = options.json === '-' ? process.stderr : process.stdout;
const colour = out.isTTY && !process.env.NO_COLOR;
const paint = (code, text) => (colour ? `\x1b[${code}m${text}\x1b[0m` : text);
const progress = (line) => process.stderr.write(`${paint(2, `· ${line}`)}\n`);

// ---------------------------------------------------------------------------------------------
// Processes: every one started here is stopped here, by PID, also on failure.

const children = new Set();
const configDir = mkdtempSync(path.join(os.tmpdir(), 'svcmesh-bench-'));
const childEnv = { ...process.env, NO_COLOR: '1', SVCMESH_CONFIG_DIR: configDir };
for (const name of ['SVCMESH_TOKEN', 'SVCMESH_RECEIVE_TOKEN', 'SVCMESH_REGISTRAR', 'OLLAMA_HOST', 'OLLAMA_MODEL', 'NODE_OPTIONS']) {
  delete childEnv[name];
}

/**
 * Starts `node <args>` and resolves with its URL once it prints `listening on <url>`. Its stdout
 * goes to a file, not to this process: the registrar logs a line per request, and reading tens of
 * thousands of lines a second here would take CPU from autocannon, which runs in this process.
 */
function startProcess(label, args, nodeArgs = []) {
  const logFile = path.join(configDir, `${label.replace(/\W+/g, '-')}.log`);
  const stdoutFd = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    cwd: ROOT,
    env: childEnv,
    stdio: ['ignore', stdoutFd, 'pipe'],
  });
  closeSync(stdoutFd);
  const entry = { label, child, pid: child.pid, log: '', exited: false };
  children.add(entry);
  const output = () => `${readFileSync(logFile, 'utf8').slice(-4000)}${entry.log}`;
  // Keep draining stderr (a full pipe would stall the server), remembering the tail.
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    entry.log = (entry.log + chunk).slice(-8000);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  entry.exitedPromise = exited.then((result) => {
    entry.exited = true;
    return result;
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    const deadline = Date.now() + 20_000;
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      clearInterval(poll);
      fn(value);
    };
    const poll = setInterval(() => {
      const match = /listening on (https?:\/\/[^\s)]+)/.exec(readFileSync(logFile, 'utf8'));
      if (match) {
        entry.url = match[1];
        settle(resolve, entry);
      } else if (Date.now() > deadline) {
        settle(reject, new Error(`${label} did not start within 20 s:\n${output()}`));
      }
    }, 25);
    child.once('error', (error) => settle(reject, new Error(`${label} could not be started: ${error.message}`)));
    exited.then(({ code, signal }) => settle(reject, new Error(`${label} exited (${signal ?? `code ${code}`}) before listening:\n${output()}`)));
  });
}

async function stopProcess(entry) {
  if (!entry.exited) {
    try {
      process.kill(entry.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const killed = await Promise.race([entry.exitedPromise.then(() => true), sleep(5000).then(() => false)]);
    if (!killed) {
      try {
        process.kill(entry.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await Promise.race([entry.exitedPromise, sleep(2000)]);
    }
  }
  children.delete(entry);
}

async function stopAll() {
  await Promise.all([...children].map(stopProcess));
  rmSync(configDir, { recursive: true, force: true });
}

process.on('exit', () => {
  // Last resort (an uncaught error): nothing started here may outlive the run.
  for (const { pid, exited } of children) {
    if (!exited) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    progress(`${signal}: stopping everything this run started`);
    stopAll().finally(() => process.exit(130));
  });
}

/** A port free on 127.0.0.1 a moment ago, for a server that cannot listen on port 0 (nginx). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * nginx as a reverse proxy to `targetUrl`, as the issue measured it: one worker, keep-alive
 * connections pooled to the target, the access log on (the registrar logs each request too).
 * A single process (`master_process off`), so its CPU time is one PID's and it stops by PID.
 */
async function startNginxProxy(targetUrl) {
  const dir = mkdtempSync(path.join(configDir, 'nginx-'));
  const port = await freePort();
  const target = new URL(targetUrl);
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
master_process off;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream target { server ${target.host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://target;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', dir, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const entry = { label: 'nginx', child, pid: child.pid, log: '', exited: false, url: `http://127.0.0.1:${port}` };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => (entry.log = (entry.log + chunk).slice(-4000)));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  entry.exitedPromise = exited.then((result) => {
    entry.exited = true;
    return result;
  });
  const spawned = await new Promise((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', () => resolve(false));
  });
  if (!spawned) throw new Error('nginx is not installed (Debian: apt-get install nginx-light)');
  children.add(entry);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (entry.exited) throw new Error(`nginx exited before listening: ${entry.log.trim()}`);
    try {
      const answer = await httpRequest(`${entry.url}/`);
      if (answer.status === 200) return entry;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopProcess(entry);
      throw new Error(`nginx did not answer within 10 s: ${entry.log.trim()}`);
    }
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers for setup and streaming (not for load: that is autocannon's job).

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function httpRequest(url, { method = 'GET', body } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = http.request(
      url,
      {
        method,
        agent,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, text: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    request.setTimeout(30_000, () => request.destroy(new Error(`${method} ${url} timed out`)));
    request.on('error', reject);
    request.end(payload);
  });
}

async function postOk(url, body) {
  const answer = await httpRequest(url, { method: 'POST', body });
  if (answer.status !== 200) throw new Error(`POST ${url} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  return answer;
}

const svcUrl = (n) => `http://127.0.0.1:${1 + (n % 60000)}`;

/** Registers svc-<from>..svc-<to - 1>, `concurrency` requests in flight at a time. */
async function registerMany(registrar, from, to, concurrency = 64) {
  let next = from;
  const started = performance.now();
  const worker = async () => {
    while (next < to) {
      const n = next++;
      await postOk(`${registrar}/register`, { service_name: `svc-${n}`, service_url: svcUrl(n) });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  return { count: to - from, seconds, perSecond: (to - from) / seconds };
}

async function instanceCount(registrar) {
  const answer = await httpRequest(`${registrar}/health`);
  if (answer.status !== 200) throw new Error(`GET ${registrar}/health answered ${answer.status}`);
  const health = JSON.parse(answer.text);
  if (typeof health.instances === 'number') return health.instances;
  // Older registrars without counts in /health: count /services.
  return Object.keys(JSON.parse((await httpRequest(`${registrar}/services`)).text).services).length;
}

/** Registers svc-N until the registrar holds `total` instances (the ones already there count). */
async function fillTo(registrar, total, alreadyFilled) {
  const have = await instanceCount(registrar);
  const from = alreadyFilled;
  const to = alreadyFilled + Math.max(0, total - have);
  const result = await registerMany(registrar, from, to);
  const now = await instanceCount(registrar);
  if (now !== total) throw new Error(`expected ${total} instances registered, the registrar reports ${now}`);
  progress(`registered ${result.count} instances in ${result.seconds.toFixed(1)} s (${Math.round(result.perSecond)}/s); ${now} in all`);
  return { nextIndex: to, registration: result };
}

/**
 * One streamed POST: the time from the request's start to the first NDJSON line that carries a
 * `message`, and to the end of the answer.
 */
function streamedRequest(url, body) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const started = performance.now();
    let firstChunk;
    let sawDone = false;
    let error;
    let buffer = '';
    const request = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (response) => {
        response.setEncoding('utf8');
        response.on('data', (chunk) => {
          buffer += chunk;
          let newline;
          while ((newline = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, newline).trim();
            buffer = buffer.slice(newline + 1);
            if (!line) continue;
            let parsed;
            try {
              parsed = JSON.parse(line);
            } catch {
              error ??= `not NDJSON: ${line.slice(0, 200)}`;
              continue;
            }
            if (typeof parsed.message === 'string' && firstChunk === undefined) firstChunk = performance.now() - started;
            if (parsed.done === true) sawDone = true;
            if (parsed.error) error ??= parsed.error;
          }
        });
        response.on('end', () => {
          const total = performance.now() - started;
          if (response.statusCode !== 200) reject(new Error(`POST ${url} answered ${response.statusCode}: ${buffer.slice(0, 300)}`));
          else if (error) reject(new Error(`POST ${url} streamed an error: ${error}`));
          else if (firstChunk === undefined || !sawDone) reject(new Error(`POST ${url} streamed no message or no {"done": true}`));
          else resolve({ firstChunk, total });
        });
        response.on('error', reject);
      },
    );
    request.setTimeout(30_000, () => request.destroy(new Error(`POST ${url} timed out`)));
    request.on('error', reject);
    request.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------
// Measurements

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};
const round = (value, digits = 2) => (value === undefined || value === null ? value : Number(value.toFixed(digits)));

function cannon(opts) {
  return new Promise((resolve, reject) => {
    autocannon({ connections: options.connections, pipelining: 1, timeout: 20, ...opts }, (error, result) =>
      error ? reject(error) : resolve(result),
    );
  });
}

function autocannonRequest({ url, method = 'GET', body, headers = {} }) {
  if (body === undefined) return { url, method, headers };
  return { url, method, body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } };
}

/** Processes whose CPU time each load measurement records (label → pid). */
const cpuWatched = new Map();
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** User + system CPU time of a process so far, in µs (from /proc/<pid>/stat). */
function cpuMicros(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
}

/** One autocannon measurement; any error or non-2xx makes it fail. */
async function measureOnce(label, request) {
  const cpuBefore = new Map([...cpuWatched].map(([name, pid]) => [name, cpuMicros(pid)]));
  const selfBefore = process.cpuUsage();
  const result = await cannon({ ...autocannonRequest(request), duration: options.duration });
  const self = process.cpuUsage(selfBefore);
  // CPU time per request is steadier than a rate on a shared machine, and says where time goes.
  // autocannon runs in this process: its own share says when the load generator, not the
  // server, sets the rate (it decodes every body it receives into a string).
  const cpuPerRequest = Object.fromEntries([...cpuWatched].map(([name, pid]) => [name, (cpuMicros(pid) - cpuBefore.get(name)) / result.requests.total]));
  cpuPerRequest.autocannon = (self.user + self.system) / result.requests.total;
  // A load whose every answer is a 304 (If-None-Match) is valid too; anything else must be a 2xx.
  const notModified = request.status === 304;
  const expected = notModified ? result['3xx'] : result['2xx'];
  const unexpected = notModified ? result.requests.total - result['3xx'] : result.non2xx;
  if (result.errors || result.timeouts || unexpected || !expected) {
    throw new Error(
      `${label}: ${expected} answered ${notModified ? '304' : '2xx'}, ${unexpected} otherwise, ${result.errors} errors, ${result.timeouts} timeouts — the measurement is not valid`,
    );
  }
  return {
    rps: result.requests.average,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    requests: result.requests.total,
    mb_per_s: result.throughput.average / 1e6,
    cpu_us_per_request: cpuPerRequest,
  };
}

/**
 * Loads that are compared with each other, measured in turns: a one-second warm-up each, then
 * `--rounds` rounds in which every load runs once. This machine's speed drifts by tens of percent
 * from one second to the next; taking turns puts the loads of a comparison side by side in time,
 * and the medians drop the rounds a neighbour disturbed.
 */
async function loadsInTurns(loads) {
  for (const { label, request } of loads) {
    progress(`${label}: warm-up`);
    await cannon({ ...autocannonRequest(request), duration: 1 });
  }
  const rounds = loads.map(() => []);
  for (let round = 0; round < options.rounds; round += 1) {
    progress(`round ${round + 1} of ${options.rounds}: ${loads.map((l) => l.label).join(', ')} (${options.duration} s each)`);
    for (const [index, { label, request }] of loads.entries()) rounds[index].push(await measureOnce(label, request));
  }
  return loads.map((_, index) => summariseRounds(rounds[index]));
}

function summariseRounds(runs) {
  return {
    rps: round(median(runs.map((r) => r.rps)), 1),
    p50_ms: round(median(runs.map((r) => r.p50_ms))),
    p99_ms: round(median(runs.map((r) => r.p99_ms))),
    requests: runs.reduce((sum, r) => sum + r.requests, 0),
    mb_per_s: round(median(runs.map((r) => r.mb_per_s))),
    cpu_us_per_request: Object.fromEntries(Object.keys(runs[0].cpu_us_per_request).map((name) => [name, round(median(runs.map((r) => r.cpu_us_per_request[name])), 0)])),
    rounds: runs.map((r) => ({ rps: round(r.rps, 1), p50_ms: r.p50_ms, p99_ms: r.p99_ms })),
  };
}

/** The median of the per-round ratios a ÷ b: each round's pair ran side by side in time. */
function pairedRatio(a, b, field) {
  return round(median(a.rounds.map((run, i) => run[field] / b.rounds[i][field])));
}

function readStatus(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { rss_mb: round(kb('VmRSS') / 1024, 1), hwm_mb: round(kb('VmHWM') / 1024, 1) };
}

function hasHyperfine() {
  return spawnSync('hyperfine', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Median wall time of each command; hyperfine when installed, else spawnSync, interleaved. */
function startupTimes(commands) {
  for (const { label, argv } of commands) {
    const check = spawnSync(argv[0], argv.slice(1), { cwd: ROOT, env: childEnv, encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`${label} exited ${check.status}: ${check.stderr.trim().slice(0, 300)}`);
    if (label.includes('services')) JSON.parse(check.stdout); // it must print the registrar's JSON
  }
  if (options.hyperfine && hasHyperfine()) {
    const exportFile = path.join(configDir, 'hyperfine.json');
    const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
    const run = spawnSync(
      'hyperfine',
      ['-N', '--warmup', '3', '--runs', String(options.runs), '--style', 'none', '--export-json', exportFile, ...commands.map((c) => c.argv.map(quote).join(' '))],
      { cwd: ROOT, env: childEnv, encoding: 'utf8' },
    );
    if (run.status === 0) {
      const { results } = JSON.parse(readFileSync(exportFile, 'utf8'));
      return { method: 'hyperfine', medians: results.map((r) => r.median * 1000) };
    }
    progress(`hyperfine failed (${run.stderr.trim().split('\n').pop()}); timing with spawnSync`);
  }
  const times = commands.map(() => []);
  for (let round = -3; round < options.runs; round += 1) {
    commands.forEach(({ argv }, index) => {
      const started = performance.now();
      spawnSync(argv[0], argv.slice(1), { cwd: ROOT, env: childEnv, stdio: 'ignore' });
      if (round >= 0) times[index].push(performance.now() - started);
    });
  }
  return { method: 'spawnSync', medians: times.map(median) };
}

// ---------------------------------------------------------------------------------------------
// The run

const results = {
  schema: 'svcmesh-bench/1',
  date: new Date().toISOString(),
  svcmesh: JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
  node: process.version,
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, platform: `${os.platform()} ${os.release()}`, loadavg_at_start: os.loadavg().map((l) => round(l)) },
  settings: {
    duration_s: options.duration,
    rounds: options.rounds,
    connections: options.connections,
    startup_runs: options.runs,
    ttfc_requests: options.ttfcRequests,
    ollama_token_delay_ms: options.tokenDelayMs,
    ollama_tokens: options.tokens,
  },
  measurements: {},
  targets: [],
  errors: [],
  elapsed_s: undefined,
};
const m = results.measurements;

/** Runs one stage; a failure is recorded and the run goes on with what does not depend on it. */
async function stage(name, fn) {
  try {
    return await fn();
  } catch (error) {
    results.errors.push({ stage: name, error: error.message });
    progress(`${name} FAILED: ${error.message.split('\n')[0]}`);
    return undefined;
  }
}

async function main() {
  if (!existsSync(DIST)) throw new Error(`${path.relative(ROOT, DIST)} is missing: build first (npm run build)`);
  const registrarNodeArgs = options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProf] : [];

  progress('starting fake Ollama, echo target and registrar');
  const [fake, echo, registrar] = await Promise.all([
    startProcess('fake ollama', [path.join(BENCH, 'fake-ollama.mjs'), '--token-delay-ms', String(options.tokenDelayMs), '--tokens', String(options.tokens)]),
    startProcess('echo target', [path.join(BENCH, 'echo-target.mjs')]),
    startProcess('registrar', [BIN, 'registrar', '--port', '0', '--host', '127.0.0.1', '--ttl', '3600'], registrarNodeArgs),
  ]);
  const ollama = await startProcess('ollama service', [BIN, 'ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', fake.url, '--model', 'llama3.2']);
  const R = registrar.url;
  cpuWatched.set('registrar', registrar.pid).set('echo', echo.pid);
  await postOk(`${R}/register`, { service_name: 'echo', service_url: echo.url });
  m.instances_at_start = await instanceCount(R);
  m.rss_start = readStatus(registrar.pid);

  // 1, 2 and 4 at one instance: the trivial answer (the reference rate on this machine), GET
  // /services, and a forward next to a direct call, in turns.
  await stage('loads at 1 instance', async () => {
    const message = { from: 'bench', message: 'hi' };
    const direct = await httpRequest(`${echo.url}/receive`, { method: 'POST', body: message });
    const forwarded = await httpRequest(`${R}/forward`, { method: 'POST', body: { ...message, to: 'echo' } });
    if (forwarded.status !== 200 || forwarded.text !== direct.text) {
      throw new Error(`POST /forward answered ${forwarded.status} ${forwarded.text.slice(0, 200)}, direct ${direct.text}`);
    }
    const instances = await instanceCount(R);
    // The issue's yardstick for a proxy, when this machine has it: nginx, one worker, pooled
    // keep-alive connections to the same echo target, measured in the same turns.
    const nginx = await startNginxProxy(echo.url).catch((error) => {
      progress(`no nginx reference: ${error.message}`);
      return undefined;
    });
    if (nginx) cpuWatched.set('nginx', nginx.pid);
    const loads = [
      { label: 'echo target GET /', request: { url: `${echo.url}/` } },
      { label: 'GET /services, 1 instance', request: { url: `${R}/services` } },
      { label: 'POST /receive straight to echo', request: { url: `${echo.url}/receive`, method: 'POST', body: message } },
      { label: 'POST /forward to echo', request: { url: `${R}/forward`, method: 'POST', body: { ...message, to: 'echo' } } },
    ];
    if (nginx) loads.push({ label: 'POST /receive through nginx', request: { url: `${nginx.url}/receive`, method: 'POST', body: message } });
    const [trivial, services, receive, forward, proxied] = await loadsInTurns(loads);
    m.echo_trivial = trivial;
    m.services_1 = { instances, ...services, rps_ratio_to_trivial: pairedRatio(services, trivial, 'rps') };
    m.direct_receive = receive;
    m.forward = { ...forward, rps_ratio: pairedRatio(forward, receive, 'rps'), p99_ratio: pairedRatio(forward, receive, 'p99_ms') };
    if (proxied) {
      m.nginx_proxy = { ...proxied, rps_ratio: pairedRatio(proxied, receive, 'rps'), p99_ratio: pairedRatio(proxied, receive, 'p99_ms') };
      m.forward.rps_ratio_to_nginx = pairedRatio(forward, proxied, 'rps');
      cpuWatched.delete('nginx');
      await stopProcess(nginx);
    }
  });

  // 5. Streamed time to first chunk.
  await stage('streamed first chunk', async () => {
    await postOk(`${R}/register`, { service_name: 'ollama_service', service_url: ollama.url });
    const direct = () => streamedRequest(`${ollama.url}/receive`, { from: 'bench', message: 'hi', stream: true });
    const forward = () => streamedRequest(`${R}/forward`, { from: 'bench', to: 'ollama_service', message: 'hi', stream: true });
    progress(`streamed first chunk: ${options.ttfcRequests} sequential requests each, alternating`);
    for (let i = 0; i < 3; i += 1) {
      await direct();
      await forward();
    }
    const d = [];
    const f = [];
    for (let i = 0; i < options.ttfcRequests; i += 1) {
      d.push(await direct());
      f.push(await forward());
    }
    const summary = (runs) => ({
      first_chunk_p50_ms: round(median(runs.map((r) => r.firstChunk))),
      first_chunk_p90_ms: round(percentile(runs.map((r) => r.firstChunk), 90)),
      total_p50_ms: round(median(runs.map((r) => r.total))),
    });
    m.stream_direct = summary(d);
    m.stream_forward = summary(f);
    m.stream_forward.first_chunk_overhead_ms = round(m.stream_forward.first_chunk_p50_ms - m.stream_direct.first_chunk_p50_ms);
  });

  // 1 and 3 at 1000 instances.
  const at1k = await stage('register 1000', async () => {
    const { registration } = await fillTo(R, 1000, 0);
    m.registration_1k = { instances: 1000, per_s: round(registration.perSecond, 0) };
    m.rss_1k = readStatus(registrar.pid);
    return true;
  });
  if (at1k) {
    await stage('loads at 1000 instances', async () => {
      // A poller that sends back the ETag it holds gets a 304 and no body: what it pays, beside
      // what a full answer costs.
      const etag = (await httpRequest(`${R}/services`)).headers.etag;
      if (!etag) throw new Error('GET /services answered without an ETag');
      // The ceiling: a bare node:http server that sends the same bytes and does nothing else.
      const bytes = await startProcess('bytes server', [path.join(BENCH, 'bytes-server.mjs'), '--from', `${R}/services`]);
      cpuWatched.set('bytes', bytes.pid);
      const [trivial, services, revalidated, bare, gzipped] = await loadsInTurns([
        { label: 'echo target GET /', request: { url: `${echo.url}/` } },
        { label: 'GET /services, 1000 instances', request: { url: `${R}/services` } },
        { label: 'GET /services, 1000 instances, If-None-Match', request: { url: `${R}/services`, headers: { 'if-none-match': etag }, status: 304 } },
        { label: 'bare node:http, the same bytes', request: { url: `${bytes.url}/` } },
        // What Go's and Python's HTTP clients, browsers and fetch ask for by default.
        { label: 'GET /services, 1000 instances, gzip', request: { url: `${R}/services`, headers: { 'accept-encoding': 'gzip' } } },
      ]);
      cpuWatched.delete('bytes');
      await stopProcess(bytes);
      m.echo_trivial_1k = trivial;
      m.services_1k = {
        instances: 1000,
        ...services,
        rps_ratio_to_trivial: pairedRatio(services, trivial, 'rps'),
        rps_ratio_to_bare: pairedRatio(services, bare, 'rps'),
      };
      m.services_1k_not_modified = { instances: 1000, ...revalidated, rps_ratio_to_trivial: pairedRatio(revalidated, trivial, 'rps') };
      m.bare_bytes_1k = { ...bare, rps_ratio_to_trivial: pairedRatio(bare, trivial, 'rps') };
      m.services_1k_gzip = { instances: 1000, ...gzipped, rps_ratio_to_trivial: pairedRatio(gzipped, trivial, 'rps') };
    });
  }

  // 1, 3 and 6 at 100 000 instances, on a second registrar: heartbeats to the one holding 1000
  // and to the one holding 100 000 then run in turns, side by side in time like every comparison.
  const at100k = at1k && (await stage('register 100000', async () => {
    const big = await startProcess('registrar, 100 000 instances', [BIN, 'registrar', '--port', '0', '--host', '127.0.0.1', '--ttl', '3600'], registrarNodeArgs);
    cpuWatched.set('registrar_100k', big.pid);
    progress('registering 100 000 instances on a second registrar');
    const { registration } = await fillTo(big.url, 100_000, 0);
    m.registration_100k = { instances: 100_000, per_s: round(registration.perSecond, 0) };
    return big;
  }));
  if (at100k) {
    const big = at100k;
    await stage('RSS (100000)', async () => {
      await sleep(1000);
      m.rss_100k = readStatus(big.pid);
    });
    await stage('loads at 100000 instances', async () => {
      const [heartbeat1k, heartbeat100k, services] = await loadsInTurns([
        { label: 'POST /heartbeat, 1000 instances', request: heartbeatRequest(R) },
        { label: 'POST /heartbeat, 100 000 instances', request: heartbeatRequest(big.url) },
        { label: 'GET /services, 100 000 instances', request: { url: `${big.url}/services` } },
      ]);
      m.heartbeat_1k = { instances: 1000, ...heartbeat1k };
      m.heartbeat_100k = { instances: 100_000, ...heartbeat100k, rps_ratio_to_1k: pairedRatio(heartbeat100k, heartbeat1k, 'rps') };
      m.services_100k = { instances: 100_000, ...services };
    });
    await stage('RSS after load', async () => {
      m.rss_100k_after_load = readStatus(big.pid);
    });
  }

  // 7. Start-up, last: spawning a hundred node processes leaves this machine slower for minutes
  // (a server measured after it spent a third more CPU per request), so no load follows it.
  // `services --json` asks a registrar of its own, holding one instance as at the start.
  await stage('start-up', async () => {
    const small = await startProcess('registrar for start-up', [BIN, 'registrar', '--port', '0', '--host', '127.0.0.1', '--ttl', '3600']);
    await postOk(`${small.url}/register`, { service_name: 'echo', service_url: echo.url });
    progress(`start-up: median of ${options.runs} runs each`);
    const commands = [
      { label: 'node -e 0', argv: [process.execPath, '-e', '0'] },
      { label: 'svcmesh --version', argv: [process.execPath, BIN, '--version'] },
      { label: 'svcmesh services --json', argv: [process.execPath, BIN, 'services', '--json', '--registrar', small.url] },
    ];
    const { method, medians } = startupTimes(commands);
    await stopProcess(small);
    m.startup = {
      method,
      node_e0_ms: round(medians[0], 1),
      version_ms: round(medians[1], 1),
      services_json_ms: round(medians[2], 1),
      version_ratio: round(medians[1] / medians[0]),
      services_ratio: round(medians[2] / medians[0]),
    };
  });
}

function heartbeatRequest(registrar) {
  return { url: `${registrar}/heartbeat`, method: 'POST', body: { service_name: 'svc-1', service_url: svcUrl(1) } };
}

// ---------------------------------------------------------------------------------------------
// Targets and the report

function evaluateTargets() {
  const targets = [
    ['services_1_ratio', 'GET /services ÷ trivial answer, 1 instance', m.services_1?.rps_ratio_to_trivial, 0.7, '≥', '×'],
    ['services_1k_ratio', 'GET /services ÷ trivial answer, 1000 instances', m.services_1k?.rps_ratio_to_trivial, 0.7, '≥', '×'],
    ['heartbeat_ratio', 'POST /heartbeat req/s, 100k ÷ 1k', m.heartbeat_100k?.rps_ratio_to_1k, 0.9, '≥', '×'],
    ['forward_rps_ratio', 'POST /forward ÷ direct /receive, req/s', m.forward?.rps_ratio, 0.5, '≥', '×'],
    ['forward_p99_ratio', 'POST /forward ÷ direct /receive, p99', m.forward?.p99_ratio, 3, '≤', '×'],
    ['stream_overhead', 'streamed first chunk, forward − direct (medians)', m.stream_forward?.first_chunk_overhead_ms, 5, '≤', 'ms'],
    ['rss_100k', 'registrar RSS, 100 000 instances', m.rss_100k?.rss_mb, 200, '<', 'MB'],
    ['startup_ratio', 'start-up, --version ÷ node -e 0 (medians)', m.startup?.version_ratio, 1.4, '≤', '×'],
  ];
  results.targets = targets.map(([id, description, measured, target, op, unit]) => {
    const known = typeof measured === 'number' && typeof target === 'number';
    const ok = !known
      ? null
      : op === '≥'
        ? measured >= target
        : op === '≤'
          ? measured <= target
          : measured < target;
    return { id, description, measured: measured ?? null, target: target === undefined ? null : round(target, 2), op, unit, ok };
  });
}

function pad(text, width, right = false) {
  const s = String(text);
  const len = [...s].length;
  return right ? ' '.repeat(Math.max(0, width - len)) + s : s + ' '.repeat(Math.max(0, width - len));
}

function table(header, rows, rightAligned) {
  const widths = header.map((h, i) => Math.max([...h].length, ...rows.map((r) => [...String(r[i])].length)));
  const line = (cells) => cells.map((c, i) => pad(c, widths[i], rightAligned.includes(i))).join('  ').trimEnd();
  return [paint(1, line(header)), ...rows.map(line)].join('\n');
}

const fmt = (value, digits = 1) => (typeof value === 'number' ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 }) : '—');

function loadRows(previous) {
  const p = previous?.measurements ?? {};
  const rows = [
    ['GET /services, 1 instance', 'services_1'],
    ['GET /services, 1000 instances', 'services_1k'],
    ['GET /services, 1000, If-None-Match (304)', 'services_1k_not_modified'],
    ['GET /services, 1000, Accept-Encoding: gzip', 'services_1k_gzip'],
    ['bare node:http sending the same 1000 bytes', 'bare_bytes_1k', 'bytes'],
    ['GET /services, 100 000 instances', 'services_100k', 'registrar_100k'],
    ['echo target GET / (trivial answer)', 'echo_trivial'],
    ['echo target GET /, beside the 1000 loads', 'echo_trivial_1k'],
    ['POST /heartbeat, 1000 instances', 'heartbeat_1k'],
    ['POST /heartbeat, 100 000 instances', 'heartbeat_100k', 'registrar_100k'],
    ['POST /receive, straight to echo', 'direct_receive'],
    ['POST /forward → echo', 'forward'],
    ['POST /receive through nginx (1 worker) → echo', 'nginx_proxy', 'nginx'],
  ];
  return rows.filter(([, key]) => m[key] || p[key]).map(([label, key, serverName = 'registrar']) => {
    const cpu = m[key]?.cpu_us_per_request;
    const row = [label, fmt(m[key]?.rps, 0), fmt(m[key]?.p50_ms, 2), fmt(m[key]?.p99_ms, 2), fmt(cpu?.[serverName], 0), fmt(cpu?.echo, 0), fmt(cpu?.autocannon, 0)];
    if (previous) row.push(fmt(p[key]?.rps, 0), fmt(p[key]?.p50_ms, 2), fmt(p[key]?.p99_ms, 2));
    return row;
  });
}

function report(previous) {
  const lines = [];
  lines.push(
    `svcmesh ${results.svcmesh} bench — node ${results.node}, ${results.machine.cpus} CPUs (${results.machine.cpu}), ` +
      `${options.connections} connections, medians of ${options.rounds} rounds of ${options.duration} s per load${previous ? `; previous run: ${previous.date}` : ''}`,
    '',
  );
  const header = ['load (autocannon)', 'req/s', 'p50 ms', 'p99 ms', 'server µs', 'echo µs', 'client µs'];
  if (previous) header.push('prev req/s', 'prev p50', 'prev p99');
  lines.push(table(header, loadRows(previous), [1, 2, 3, 4, 5, 6, 7, 8, 9]), '');
  lines.push(
    '(CPU time per request of the load, medians: server µs, the process answering (the registrar, the bare server or nginx);\n' +
      ' echo µs, the echo target; client µs, autocannon itself. A process near 1,000,000 ÷ req/s µs uses a whole core: it holds the rate back.\n' +
      ' The 100 000 loads run on a second registrar, beside heartbeats to the first, which holds 1000)',
    '',
  );

  const other = [];
  if (m.services_1k?.rps_ratio_to_bare !== undefined) {
    other.push(['GET /services, 1000 ÷ bare node:http sending the same bytes', `${fmt(m.services_1k.rps_ratio_to_bare, 2)}×`]);
    other.push(['bare node:http sending the same bytes ÷ trivial answer', `${fmt(m.bare_bytes_1k.rps_ratio_to_trivial, 2)}×`]);
  }
  if (m.services_1k_gzip) other.push(['GET /services, 1000, gzip ÷ trivial answer (not the target: curl and wrk do not ask for gzip)', `${fmt(m.services_1k_gzip.rps_ratio_to_trivial, 2)}×`]);
  if (m.nginx_proxy) {
    other.push(['nginx proxy ÷ direct /receive, req/s (p99)', `${fmt(m.nginx_proxy.rps_ratio, 2)}× (${fmt(m.nginx_proxy.p99_ratio, 2)}×)`]);
    other.push(['POST /forward ÷ nginx proxy, req/s', `${fmt(m.forward.rps_ratio_to_nginx, 2)}×`]);
  }
  if (m.stream_direct) {
    other.push(['streamed first chunk, POST /receive direct (median / p90)', `${fmt(m.stream_direct.first_chunk_p50_ms, 2)} / ${fmt(m.stream_direct.first_chunk_p90_ms, 2)} ms`]);
    other.push(['streamed first chunk, POST /forward (median / p90)', `${fmt(m.stream_forward.first_chunk_p50_ms, 2)} / ${fmt(m.stream_forward.first_chunk_p90_ms, 2)} ms`]);
    other.push(['whole streamed answer, direct / forward (medians)', `${fmt(m.stream_direct.total_p50_ms, 1)} / ${fmt(m.stream_forward.total_p50_ms, 1)} ms`]);
  }
  if (m.rss_start) other.push(['registrar RSS at start, 1 instance (peak)', `${fmt(m.rss_start.rss_mb)} MB (${fmt(m.rss_start.hwm_mb)} MB)`]);
  if (m.rss_1k) other.push(['registrar RSS with 1000 instances (peak)', `${fmt(m.rss_1k.rss_mb)} MB (${fmt(m.rss_1k.hwm_mb)} MB)`]);
  if (m.rss_100k) other.push(['registrar RSS with 100 000 instances (peak so far)', `${fmt(m.rss_100k.rss_mb)} MB (${fmt(m.rss_100k.hwm_mb)} MB)`]);
  if (m.rss_100k_after_load) other.push(['registrar RSS after the 100 000 loads (peak)', `${fmt(m.rss_100k_after_load.rss_mb)} MB (${fmt(m.rss_100k_after_load.hwm_mb)} MB)`]);
  if (m.registration_100k) other.push(['POST /register rate while filling to 100 000 (64 in flight)', `${fmt(m.registration_100k.per_s, 0)} /s`]);
  if (m.startup) {
    other.push([`start-up: node -e 0 (median, ${m.startup.method})`, `${fmt(m.startup.node_e0_ms)} ms`]);
    other.push(['start-up: svcmesh --version', `${fmt(m.startup.version_ms)} ms (${fmt(m.startup.version_ratio, 2)}×)`]);
    other.push(['start-up: svcmesh services --json', `${fmt(m.startup.services_json_ms)} ms (${fmt(m.startup.services_ratio, 2)}×)`]);
  }
  if (other.length) lines.push(table(['other measurements', 'value'], other, []), '');

  const mark = (ok) => (ok === null ? paint(33, '?') : ok ? paint(32, '✓') : paint(31, '✗'));
  const targetRows = results.targets.map((t) => [
    mark(t.ok),
    t.description,
    `${fmt(t.measured, t.unit === 'req/s' ? 0 : 2)} ${t.unit}`,
    `${t.op} ${fmt(t.target, t.unit === 'req/s' ? 0 : 2)} ${t.unit}`,
  ]);
  lines.push(table([' ', 'target', 'measured', 'target'], targetRows, [2, 3]));
  const [load1] = results.machine.loadavg_at_start;
  if (load1 > results.machine.cpus / 2) {
    lines.push('', paint(33, `note: the load average was ${load1} when the run started: other work shared the ${results.machine.cpus} CPUs`));
  }
  const met = results.targets.filter((t) => t.ok).length;
  lines.push('', `${met} of ${results.targets.length} targets met; run took ${fmt(results.elapsed_s, 0)} s`);
  for (const { stage: name, error } of results.errors) lines.push(paint(31, `could not measure ${name}: ${error}`));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

const started = performance.now();
let previous;
if (options.compare) previous = JSON.parse(readFileSync(options.compare, 'utf8'));
try {
  await main();
} catch (error) {
  results.errors.push({ stage: 'setup', error: error.message });
  progress(`setup FAILED: ${error.message}`);
} finally {
  agent.destroy();
  if (options.cpuProf) progress(`stopping; CPU profiles go to ${options.cpuProf}`);
  await stopAll();
}
results.elapsed_s = round((performance.now() - started) / 1000, 1);
evaluateTargets();
out.write(`\n${report(previous)}\n`);
if (options.json === '-') process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
else if (options.json) {
  writeFileSync(options.json, `${JSON.stringify(results, null, 2)}\n`);
  progress(`results written to ${options.json}`);
}
process.exitCode = results.errors.length > 0 ? 1 : 0;
