import { Command } from 'commander';
import { BadAnswerError, quoted } from './bad-answer.js';
import { type ClientFlags, clientFrom, withClientOptions } from './shared.js';

interface RegistrarHealth {
  status: string;
  version: string;
  store: string;
  detail?: string;
  ttl_seconds: number;
  services: number;
  instances: number;
  uptime_seconds: number;
  token_required?: boolean;
  token_accepted?: boolean;
}

/**
 * The `/health` answer, checked before a table is drawn from it: something else at the
 * registrar's URL (another service, a proxy's `{"status":"ok"}`) is not a healthy registrar.
 */
function healthIn(answer: { json: unknown; text: string }, url: string): RegistrarHealth {
  const health = answer.json as Record<string, unknown> | null;
  const fits =
    typeof health === 'object' &&
    health !== null &&
    !Array.isArray(health) &&
    ['status', 'version', 'store'].every((key) => typeof health[key] === 'string') &&
    (health.detail === undefined || typeof health.detail === 'string') &&
    ['ttl_seconds', 'services', 'instances', 'uptime_seconds'].every((key) => typeof health[key] === 'number');
  if (!fits) throw new BadAnswerError(`${url} answered something that is not an svcmesh registrar's health: ${quoted(answer.text)}`);
  return health as unknown as RegistrarHealth;
}

/** Like `etcdctl endpoint health` or `consul info`: is the registrar there, and in what shape. */
export function makeStatusCommand(): Command {
  return withClientOptions(
    new Command('status').description("show the registrar's health: version, store, TTL, counts, uptime (exit 1 unless it is ok)"),
  ).action(async (flags: ClientFlags) => {
    const client = await clientFrom(flags);
    const answer = await client.health();
    const output = await import('../output.js');
    if (flags.json) {
      // Printed as it came, whatever its shape; a health check still fails unless it says ok.
      output.printJson(answer.text);
      if ((answer.json as { status?: unknown } | null)?.status !== 'ok') process.exitCode = 1;
      return;
    }
    const health = healthIn(answer, `${client.baseUrl}/health`);
    output.print(renderStatus(output, client.baseUrl, health));
    // A degraded registrar (its store unreachable) still answers reads; a health check should still fail.
    if (health.status !== 'ok') process.exitCode = 1;
  });
}

function renderStatus(output: typeof import('../output.js'), baseUrl: string, health: RegistrarHealth): string {
  const ok = health.status === 'ok';
  // Every field is the server's text, shown as it is written rather than obeyed by the terminal.
  const status = output.printable(`${health.status}${health.detail !== undefined ? ` (${health.detail})` : ''}`);
  const rows: Array<[string, string]> = [
    ['Registrar', baseUrl],
    ['Status', ok ? output.style.ok(status) : output.style.bad(status)],
    ['Version', output.printable(health.version)],
    ['Store', output.printable(health.store)],
    ['TTL', `${health.ttl_seconds} s`],
    ['Catalog', `${count(health.services, 'service')}, ${count(health.instances, 'instance')}`],
    ['Up', output.duration(health.uptime_seconds)],
  ];
  // Older registrars do not say: then nothing is shown.
  if (health.token_required === false) rows.push(['Token', 'not required']);
  else if (health.token_required === true) {
    const yours = health.token_accepted === true ? output.style.ok('yours is accepted') : health.token_accepted === false ? output.style.bad('yours is not accepted') : 'none given';
    rows.push(['Token', `required; ${yours}`]);
  }
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${output.style.bold(label.padEnd(width))}  ${value}`).join('\n');
}

function count(value: number, noun: string): string {
  return `${value} ${noun}${value === 1 ? '' : 's'}`;
}
