/**
 * End-to-end helpers: run the BUILT CLI (`node bin/svcmesh.js …`) the way a user would, with a
 * hermetic environment, bounded waits, and cleanup that never leaves a process behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export { waitFor } from './fake-ollama.js';

/** Repo root: two levels up from test/support. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const binPath = join(repoRoot, 'bin', 'svcmesh.js');

/** `undefined` removes a variable from the child's environment. */
export type EnvOverrides = Record<string, string | undefined>;

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SvcmeshProcess {
  /** The URL from the `listening on …` line. */
  url: string;
  port: number;
  pid: number;
  process: ChildProcess;
  /** stdout and stderr so far, interleaved in arrival order. */
  output(): string;
  /** Sends `signal`, then SIGKILL if the process is still alive after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitResult>;
  exited: Promise<ExitResult>;
}

export interface StartOptions {
  env?: EnvOverrides;
  cwd?: string;
  /** How long to wait for the `listening on` line. Default 15 s. */
  startTimeoutMs?: number;
}

export interface RunOptions {
  env?: EnvOverrides;
  cwd?: string;
  /** Written to stdin, which is then closed (always closed, so nothing waits on it). */
  input?: string;
  /** Killed with SIGKILL after this long. Default 15 s. */
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const LISTENING = /listening on (http:\/\/\S+)/;
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
const DEFAULT_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;

/** Every child not yet exited (with its exit promise), so `stopAll()` can reach what a failing test left behind. */
const running = new Map<ChildProcess, Promise<ExitResult>>();
const madeDirs = new Set<string>();

export function tempDir(prefix = 'svcmesh-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  madeDirs.add(dir);
  return dir;
}

/** Removes every directory `tempDir()` made in this test file. */
export function removeTempDirs(): void {
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
  madeDirs.clear();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The child's environment: the parent's minus anything that would make a test depend on the
 * developer's shell (a registrar URL, a token, an Ollama host, forced colour), plus NO_COLOR and
 * a private config dir, then the caller's overrides.
 */
function childEnv(overrides: EnvOverrides = {}): { env: NodeJS.ProcessEnv; privateDir?: string } {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(SVCMESH_|OLLAMA_)/.test(key) || key === 'FORCE_COLOR') continue;
    env[key] = value;
  }
  env.NO_COLOR = '1';
  const privateDir = 'SVCMESH_CONFIG_DIR' in overrides ? undefined : mkdtempSync(join(tmpdir(), 'svcmesh-config-'));
  if (privateDir) env.SVCMESH_CONFIG_DIR = privateDir;
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return { env, privateDir };
}

interface Spawned {
  child: ChildProcess;
  exited: Promise<ExitResult>;
}

/** Spawns the CLI and tracks it until it exits; its private config dir goes with it. */
function spawnCli(args: string[], env: EnvOverrides | undefined, cwd: string | undefined): Spawned {
  const prepared = childEnv(env);
  const child = spawn(process.execPath, [binPath, ...args], {
    cwd: cwd ?? repoRoot,
    env: prepared.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = whenExited(child).finally(() => {
    running.delete(child);
    if (prepared.privateDir) rmSync(prepared.privateDir, { recursive: true, force: true });
  });
  running.set(child, exited);
  return { child, exited };
}

/** Resolves on 'close' (not 'exit') so every byte of stdout/stderr has been read by then. */
function whenExited(child: ChildProcess): Promise<ExitResult> {
  return new Promise((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
    // spawn itself failed (e.g. no node binary): there will be no 'close' with a code.
    child.once('error', () => resolve({ code: null, signal: null }));
  });
}

function signalPid(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone: nothing to do.
  }
}

async function stopChild(child: ChildProcess, exited: Promise<ExitResult>, signal: NodeJS.Signals, graceMs: number): Promise<ExitResult> {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  signalPid(child.pid, signal);
  const timer = sleep(graceMs).then(() => 'timeout' as const);
  if ((await Promise.race([exited, timer])) === 'timeout') signalPid(child.pid, 'SIGKILL');
  return exited;
}

/** Waits for the first `listening on URL` line on stdout; fails with the output if the process dies or is slow. */
function waitForListening(child: ChildProcess, exited: Promise<ExitResult>, output: () => string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let pending = '';
    const fail = (why: string): void => {
      cleanup();
      reject(new Error(`svcmesh ${why}\n--- output ---\n${output()}`));
    };
    const onData = (chunk: Buffer): void => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const match = LISTENING.exec(line.replace(ANSI, ''));
        if (match?.[1]) {
          cleanup();
          resolve(match[1]);
          return;
        }
      }
    };
    const timer = setTimeout(() => {
      signalPid(child.pid, 'SIGKILL');
      fail(`did not print "listening on" within ${timeoutMs} ms`);
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
    };
    child.stdout?.on('data', onData);
    void exited.then(({ code, signal }) => fail(`exited (code ${code}, signal ${signal}) before listening`));
  });
}

export async function startSvcmesh(args: string[], options: StartOptions = {}): Promise<SvcmeshProcess> {
  const { child, exited } = spawnCli(args, options.env, options.cwd);
  child.stdin?.end();
  let combined = '';
  const collect = (chunk: Buffer): void => {
    combined += chunk.toString('utf8');
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const output = (): string => combined;

  const url = await waitForListening(child, exited, output, options.startTimeoutMs ?? DEFAULT_TIMEOUT_MS);
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid!,
    process: child,
    output,
    stop: (signal = 'SIGTERM', graceMs = STOP_GRACE_MS) => stopChild(child, exited, signal, graceMs),
    exited,
  };
}

export async function runSvcmesh(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const { child, exited } = spawnCli(args, options.env, options.cwd);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  // A command that exits before reading stdin would otherwise surface EPIPE as an unhandled error.
  child.stdin?.on('error', () => {});
  child.stdin?.end(options.input ?? '');

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalPid(child.pid, 'SIGKILL');
  }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const { code, signal } = await exited;
  clearTimeout(timer);
  return { code, signal, stdout, stderr, timedOut };
}

/** Stops every process this module started that is still running: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopAll(graceMs = 3_000): Promise<void> {
  const children = [...running];
  await Promise.all(children.map(([child, exited]) => stopChild(child, exited, 'SIGTERM', graceMs)));
}

/** A command whose output a test reads while it runs (e.g. `ask --stream`). */
export interface StreamingRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout chunk. */
  firstChunk: Promise<string>;
  exited: Promise<ExitResult>;
}

export function spawnSvcmesh(args: string[], options: { env?: EnvOverrides; cwd?: string } = {}): StreamingRun {
  const { child, exited } = spawnCli(args, options.env, options.cwd);
  child.stdin?.on('error', () => {});
  child.stdin?.end();
  let stdout = '';
  let stderr = '';
  const firstChunk = new Promise<string>((resolve) => child.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8'))));
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return { child, stdout: () => stdout, stderr: () => stderr, firstChunk, exited };
}

/** Closes a test's own HTTP server, cutting connections still open (a held request, a stream). */
export function closeServer(server: import('node:http').Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
