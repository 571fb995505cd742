// test/support/etcd-cluster.ts
import { spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { describe, it } from "vitest";
function etcdBinary() {
  const candidates = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, "etcd")), "/usr/bin/etcd"];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
    }
  }
  return void 0;
}
var ETCD_MISSING_MESSAGE = "etcd binary missing: apt-get install -y etcd-server (Debian/Ubuntu) to run the etcd store tests";
async function freePorts(count) {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () => new Promise((resolve, reject) => {
        const server = createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server));
      })
    )
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
var sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function healthy(endpoint) {
  try {
    const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1e3) });
    const body = await response.json();
    return body.health === "true";
  } catch {
    return false;
  }
}
async function startEtcdCluster(options = {}) {
  const binary = etcdBinary();
  if (!binary) throw new Error(ETCD_MISSING_MESSAGE);
  const count = options.members ?? 3;
  const readyTimeoutMs = options.readyTimeoutMs ?? 2e4;
  const root = mkdtempSync(join(tmpdir(), "svcmesh-etcd-"));
  const ports = await freePorts(count * 2);
  const members = Array.from({ length: count }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
    dataDir: join(root, `m${i}`),
    logs: [],
    process: void 0
  }));
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  const token = `svcmesh-test-${process.pid}-${Date.now()}`;
  let stopped = false;
  const launch = (member) => {
    const child = spawn(
      binary,
      [
        "--name",
        member.name,
        "--data-dir",
        member.dataDir,
        "--listen-client-urls",
        member.clientUrl,
        "--advertise-client-urls",
        member.clientUrl,
        "--listen-peer-urls",
        member.peerUrl,
        "--initial-advertise-peer-urls",
        member.peerUrl,
        "--initial-cluster",
        initialCluster,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        token,
        // Heartbeats are puts: without compaction prefix reads slow down as history piles up.
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        "10000",
        "--log-level",
        "warn",
        "--logger",
        "zap"
      ],
      { stdio: ["ignore", "pipe", "pipe"] }
    );
    const keep = (chunk) => {
      member.logs.push(chunk.toString());
      if (member.logs.length > 200) member.logs.shift();
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    member.process = child;
  };
  const waitHealthy = async (targets, what) => {
    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline) {
      const exited = targets.find((m) => m.process?.exitCode !== null && m.process?.exitCode !== void 0);
      if (exited) throw new Error(`etcd member ${exited.name} exited with ${exited.process?.exitCode}:
${exited.logs.join("").slice(-3e3)}`);
      const states = await Promise.all(targets.map((m) => healthy(m.clientUrl)));
      if (states.every(Boolean)) return;
      await sleep(100);
    }
    throw new Error(`${what} not healthy within ${readyTimeoutMs} ms:
${targets.map((m) => `${m.name}: ${m.logs.join("").slice(-1500)}`).join("\n")}`);
  };
  const kill = async (member) => {
    const child = member.process;
    member.process = void 0;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await Promise.race([exited, sleep(5e3)]);
  };
  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
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
    stopAll
  };
}

// ../../tmp/exp/c.ts
var t0 = Date.now();
var c = await startEtcdCluster({});
console.log("up", Date.now() - t0, c.endpoints);
var { Etcd3 } = await import("etcd3");
var client = new Etcd3({ hosts: c.endpoints });
var r = await client.put("a").value("1");
console.log(r.header);
var lease = client.lease(1, { autoKeepAlive: false });
await lease.grant();
var resp = await client.leaseClient.leaseGrant({ TTL: 1 });
console.log("grant", resp);
var w = client.watch().prefix("").withPreviousKV().watcher();
w.on("connected", (res) => console.log("connected", JSON.stringify(res)));
w.on("data", (res) => console.log("data", JSON.stringify(res)));
w.on("error", (e) => console.log("error", e));
await new Promise((r2) => setTimeout(r2, 500));
var t = await client.if("x", "Create", "==", 0).then(client.put("x#t").value("t").lease(resp.ID), client.put("x").value("v").lease(resp.ID)).else(client.get("x")).commit();
console.log("txn", JSON.stringify(t));
var t2 = await client.if("x", "Mod", "==", 0).then(client.put("x").value("v2")).else(client.get("x")).commit();
console.log("txn2", JSON.stringify(t2));
await new Promise((r2) => setTimeout(r2, 3500));
client.close();
await c.stopAll();
