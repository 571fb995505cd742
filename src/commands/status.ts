import { Command } from 'commander';
import { type ClientFlags, clientFrom, withClientOptions } from './shared.js';

interface RegistrarHealth {
  status?: unknown;
  version?: unknown;
  store?: unknown;
  detail?: unknown;
  ttl_seconds?: unknown;
  services?: unknown;
  instances?: unknown;
  uptime_seconds?: unknown;
}

/** Like `etcdctl endpoint health` or `consul info`: is the registrar there, and in what shape. */
export function makeStatusCommand(): Command {
  return withClientOptions(
    new Command('status').description("show the registrar's health: version, store, TTL, counts, uptime (exit 1 unless it is ok)"),
  ).action(async (flags: ClientFlags) => {
    const client = await clientFrom(flags);
    const answer = await client.health();
    const output = await import('../output.js');
    const health = answer.json as RegistrarHealth;
    if (flags.json) output.printJson(answer.text);
    else output.print(renderStatus(output, client.baseUrl, health));
    // A degraded registrar (its store unreachable) still answers reads; a health check should still fail.
    if (health.status !== 'ok') process.exitCode = 1;
  });
}

function renderStatus(output: typeof import('../output.js'), baseUrl: string, health: RegistrarHealth): string {
  const ok = health.status === 'ok';
  // Every field is the server's text, shown as it is written rather than obeyed by the terminal.
  const status = output.printable(`${health.status ?? 'unknown'}${typeof health.detail === 'string' ? ` (${health.detail})` : ''}`);
  const rows: Array<[string, string]> = [
    ['Registrar', baseUrl],
    ['Status', ok ? output.style.ok(status) : output.style.bad(status)],
    ['Version', output.printable(String(health.version ?? 'unknown'))],
    ['Store', output.printable(String(health.store ?? 'unknown'))],
    ['TTL', typeof health.ttl_seconds === 'number' ? `${health.ttl_seconds} s` : 'unknown'],
    ['Catalog', `${count(health.services, 'service')}, ${count(health.instances, 'instance')}`],
    ['Up', typeof health.uptime_seconds === 'number' ? output.duration(health.uptime_seconds) : 'unknown'],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${output.style.bold(label.padEnd(width))}  ${value}`).join('\n');
}

function count(value: unknown, noun: string): string {
  return typeof value === 'number' ? `${value} ${noun}${value === 1 ? '' : 's'}` : `? ${noun}s`;
}
