import { readdirSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { HeartbeatOutcome, Registry } from '../registry/registry.js';

/** The one label every forward to a name nothing registered is counted under (a 404). */
export const UNREGISTERED_TARGET = '(unregistered)';

/** What the forwarder reports about each forward; the metrics are one listener of it. */
export interface ForwardObserver {
  started(target: string): void;
  /** The answer's status is known (or the forward failed with `status`). */
  answered(target: string, status: number, seconds: number): void;
  firstChunk(target: string, seconds: number): void;
  /** A streamed answer broke after it had begun (counted under its 200 as well). */
  broken(target: string): void;
  finished(target: string): void;
}

export interface RegistrarMetrics {
  readonly forwards: ForwardObserver;
  /** A heartbeat was answered: renewed, re-registered, or unknown (answered 404). */
  heartbeat(outcome: HeartbeatOutcome): void;
  /** The Prometheus text exposition and its content type. */
  render(): Promise<{ body: string; contentType: string }>;
}

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * The registrar's metrics, on a registry of their own (no global state, so several apps in one
 * test process never mix their numbers).
 */
export function createRegistrarMetrics(registry: Registry): RegistrarMetrics {
  const prom = new PromRegistry();
  processMetrics(prom);
  new Gauge({
    name: 'svcmesh_instances',
    help: 'Live instances per service',
    labelNames: ['service'],
    registers: [prom],
    collect() {
      this.reset();
      for (const [name, instances] of registry.all()) this.set({ service: name }, instances.length);
    },
  });
  const registrations = new Counter({ name: 'svcmesh_registrations_total', help: 'New instances registered', registers: [prom] });
  const deregistrations = new Counter({ name: 'svcmesh_deregistrations_total', help: 'Instances deregistered', registers: [prom] });
  const evictions = new Counter({ name: 'svcmesh_evictions_total', help: 'Instances evicted for missing heartbeats', registers: [prom] });
  const heartbeats = new Counter({
    name: 'svcmesh_heartbeats_total',
    help: 'Heartbeats answered, by outcome: renewed, reregistered (the registrar had lost the instance), unknown (answered 404)',
    labelNames: ['outcome'],
    registers: [prom],
  });
  const forwards = new Counter({ name: 'svcmesh_forwards_total', help: 'Forwards by target and status', labelNames: ['target', 'status'], registers: [prom] });
  // Counted in a plain map and read at scrape time: a labelled gauge's inc() and dec() hash their
  // labels and allocate on every forward, the registrar's busiest path.
  const inFlightByTarget = new Map<string, number>();
  new Gauge({
    name: 'svcmesh_forwards_in_flight',
    help: 'Forwards in flight',
    labelNames: ['target'],
    registers: [prom],
    collect() {
      this.reset();
      for (const [target, count] of inFlightByTarget) this.set({ target }, count);
    },
  });
  const latency = new Histogram({
    name: 'svcmesh_forward_duration_seconds',
    help: 'Time until the target answered (its status line), by target',
    labelNames: ['target'],
    buckets: LATENCY_BUCKETS,
    registers: [prom],
  });
  const firstChunk = new Histogram({
    name: 'svcmesh_forward_first_chunk_seconds',
    help: 'Time to the first chunk of a streamed answer, by target',
    labelNames: ['target'],
    buckets: LATENCY_BUCKETS,
    registers: [prom],
  });

  const broken = new Counter({
    name: 'svcmesh_forward_streams_broken_total',
    help: 'Streamed answers that broke after they had begun (the caller got an error line), by target',
    labelNames: ['target'],
    registers: [prom],
  });

  // The statuses each target was answered with: removing a counter's series takes every label.
  const statusesByTarget = new Map<string, Set<string>>();
  // A service that is gone takes its forward series with it, once its last forward is over:
  // otherwise every name ever registered would stay in every scrape, and memory, for good.
  const dropIfGone = (target: string) => {
    if ((inFlightByTarget.get(target) ?? 0) > 0 || registry.instances(target).length > 0) return;
    for (const status of statusesByTarget.get(target) ?? []) forwards.remove({ target, status });
    statusesByTarget.delete(target);
    latency.remove({ target });
    firstChunk.remove({ target });
    broken.remove({ target });
    inFlightByTarget.delete(target);
  };

  registry.subscribe((event) => {
    if (event.type === 'registered') registrations.inc();
    else if (event.type === 'deregistered') deregistrations.inc();
    else if (event.type === 'evicted') evictions.inc();
    if ((event.type === 'deregistered' || event.type === 'evicted') && statusesByTarget.has(event.instance.name)) {
      dropIfGone(event.instance.name);
    }
  });

  return {
    forwards: {
      started: (target) => inFlightByTarget.set(target, (inFlightByTarget.get(target) ?? 0) + 1),
      answered(target, status, seconds) {
        const statusText = String(status);
        const statuses = statusesByTarget.get(target);
        if (!statuses) statusesByTarget.set(target, new Set([statusText]));
        else statuses.add(statusText);
        forwards.inc({ target, status: statusText });
        latency.observe({ target }, seconds);
      },
      firstChunk: (target, seconds) => firstChunk.observe({ target }, seconds),
      broken: (target) => broken.inc({ target }),
      // A target keeps its series at 0 once its forwards are over, as a gauge's dec() would,
      // for as long as its service is registered.
      finished(target) {
        const left = (inFlightByTarget.get(target) ?? 1) - 1;
        inFlightByTarget.set(target, left);
        if (left === 0 && target !== UNREGISTERED_TARGET && statusesByTarget.has(target)) dropIfGone(target);
      },
    },
    heartbeat: (outcome) => heartbeats.inc({ outcome }),
    async render() {
      return { body: await prom.metrics(), contentType: prom.contentType };
    },
  };
}

/**
 * What a Prometheus user looks for first about any process, under the usual names: its memory,
 * CPU, open files and start time, read when scraped. prom-client's default metrics would add an
 * event-loop monitor that wakes the process 100 times a second and a callback per garbage
 * collection: measured side by side, they cost a forward about a tenth of its CPU and raised its p99.
 */
function processMetrics(prom: PromRegistry): void {
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    registers: [prom],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: 'nodejs_heap_size_used_bytes',
    help: 'Process heap size used from Node.js in bytes.',
    registers: [prom],
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  new Counter({
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    registers: [prom],
    collect() {
      const { user, system } = process.cpuUsage();
      this.reset();
      this.inc((user + system) / 1e6);
    },
  });
  new Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers: [prom],
    collect() {
      try {
        this.set(readdirSync('/proc/self/fd').length);
      } catch {
        // Not Linux: there is no /proc to count them in.
      }
    },
  });
  new Gauge({ name: 'process_start_time_seconds', help: 'Start time of the process since unix epoch in seconds.', registers: [prom] }).set(
    Math.round(Date.now() / 1000 - process.uptime()),
  );
}
