import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describeIfInstalled } from './requires.js';

/**
 * A throwaway etcd cluster on loopback ports for tests: every member gets its own free client and
 * peer port and a data directory under one temp directory, removed by stopAll().
 */
export interface EtcdCluster {
  /** Client URLs, one per member, e.g. `http://127.0.0.1:40123`. */
  readonly endpoints: string[];
  /** Kills member `i` (0-based) and waits until its process is gone. Its data directory stays. */
  stopMember(i: number): Promise<void>;
  /** Starts member `i` again on the same ports and data directory; waits until it answers. */
  startMember(i: number): Promise<void>;
  /** Freezes member `i` (SIGSTOP): it keeps its connections but answers nothing, as in a long GC or fsync stall. */
  pauseMember(i: number): void;
  /** Lets a paused member go on (SIGCONT): it then answers what it was sent meanwhile. */
  resumeMember(i: number): void;
  /** Kills every member (by PID) and removes the temp directories. Safe to call twice. */
  stopAll(): Promise<void>;
}

export interface EtcdClusterOptions {
  members?: number;
  /** Bound on waiting for the cluster (or a restarted member) to become healthy. */
  readyTimeoutMs?: number;
}

/**
 * The `etcd` binary: $ETCD_BIN when set (and then only that), else from PATH, else Debian's
 * /usr/bin/etcd; undefined when there is none.
 */
export function etcdBinary(): string | undefined {
  const candidates = process.env.ETCD_BIN ? [process.env.ETCD_BIN] : [...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'etcd')), '/usr/bin/etcd'];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function etcdAvailable(): boolean {
  return etcdBinary() !== undefined;
}

export const ETCD_MISSING_MESSAGE = 'etcd binary missing: apt-get install -y etcd-server (Debian/Ubuntu) to run the etcd store tests';

/** `describe` for suites that need it: skipped loudly locally, failing under CI=true when missing. */
export function describeEtcd(name: string, body: () => void): void {
  describeIfInstalled(name, etcdAvailable(), ETCD_MISSING_MESSAGE, body);
}

async function freePorts(count: number): Promise<number[]> {
  // All servers stay open until every port is known, so the same port is never handed out twice.
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<import('node:net').Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** True when the member answers `/health` with `{"health":"true"}` (it has a leader and quorum). */
async function healthy(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await response.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

interface Member {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logs: string[];
  process: ChildProcess | undefined;
}

export async function startEtcdCluster(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const binary = etcdBinary();
  if (!binary) throw new Error(ETCD_MISSING_MESSAGE);
  const count = options.members ?? 3;
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  const root = mkdtempSync(join(tmpdir(), 'svcmesh-etcd-'));
  const ports = await freePorts(count * 2);
  const members: Member[] = Array.from({ length: count }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
    dataDir: join(root, `m${i}`),
    logs: [],
    process: undefined,
  }));
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const token = `svcmesh-test-${process.pid}-${Date.now()}`;
  let stopped = false;

  const launch = (member: Member) => {
    const child = spawn(
      binary,
      [
        '--name', member.name,
        '--data-dir', member.dataDir,
        '--listen-client-urls', member.clientUrl,
        '--advertise-client-urls', member.clientUrl,
        '--listen-peer-urls', member.peerUrl,
        '--initial-advertise-peer-urls', member.peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        // Heartbeats are puts: without compaction prefix reads slow down as history piles up.
        '--auto-compaction-mode', 'revision',
        '--auto-compaction-retention', '10000',
        '--log-level', 'warn',
        '--logger', 'zap',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (chunk: Buffer) => {
      member.logs.push(chunk.toString());
      if (member.logs.length > 200) member.logs.shift();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    member.process = child;
  };

  const waitHealthy = async (targets: Member[], what: string) => {
    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline) {
      const exited = targets.find((m) => m.process?.exitCode !== null && m.process?.exitCode !== undefined);
      if (exited) throw new Error(`etcd member ${exited.name} exited with ${exited.process?.exitCode}:\n${exited.logs.join('').slice(-3000)}`);
      const states = await Promise.all(targets.map((m) => healthy(m.clientUrl)));
      if (states.every(Boolean)) return;
      await sleep(100);
    }
    throw new Error(`${what} not healthy within ${readyTimeoutMs} ms:\n${targets.map((m) => `${m.name}: ${m.logs.join('').slice(-1500)}`).join('\n')}`);
  };

  const kill = async (member: Member) => {
    const child = member.process;
    member.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await Promise.race([exited, sleep(5000)]);
  };

  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    // A paused member does not die of SIGKILL until it is let go on: it would keep its ports.
    for (const member of members) member.process?.kill('SIGCONT');
    await Promise.all(members.map(kill));
    rmSync(root, { recursive: true, force: true });
  };

  for (const member of members) launch(member);
  try {
    await waitHealthy(members, `etcd cluster of ${count}`);
  } catch (error) {
    await stopAll();
    throw error;
  }

  return {
    endpoints: members.map((m) => m.clientUrl),
    async stopMember(i) {
      const member = members[i];
      if (!member) throw new Error(`no member ${i}`);
      await kill(member);
    },
    async startMember(i) {
      const member = members[i];
      if (!member) throw new Error(`no member ${i}`);
      if (member.process) return;
      launch(member);
      await waitHealthy([member], `etcd member ${member.name}`);
    },
    pauseMember(i) {
      members[i]?.process?.kill('SIGSTOP');
    },
    resumeMember(i) {
      members[i]?.process?.kill('SIGCONT');
    },
    stopAll,
  };
}
