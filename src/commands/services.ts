import { Command } from 'commander';
import type { InstanceJson } from '../client/registrar-client.js';
import { type ClientFlags, clientFrom, withClientOptions } from './shared.js';

interface ServicesFlags extends ClientFlags {
  watch?: boolean;
}

type Catalog = Record<string, InstanceJson[]>;

export function makeServicesCommand(): Command {
  return withClientOptions(
    new Command('services')
      .description('list registered services (or the instances of one)')
      .argument('[name]', 'show only this service, with every instance')
      .option('--watch', 'follow changes live (reconnects by itself); with --json, one JSON line per event'),
  ).action(async (name: string | undefined, flags: ServicesFlags) => {
    const client = await clientFrom(flags);
    const output = await import('../output.js');
    if (flags.watch) return watch(client, flags, name);
    if (flags.json) {
      const answer = name ? await client.service(name) : await client.services();
      output.printJson(answer.text);
      return;
    }
    const services = name ? { [name]: (await client.service(name)).json.instances } : (await client.catalog()).json.services;
    output.print(renderCatalog(output, services, client.baseUrl));
  });
}

function renderCatalog(output: typeof import('../output.js'), services: Catalog, baseUrl: string): string {
  const rows = Object.entries(services).flatMap(([service, instances]) =>
    instances.map((instance) => [
      output.style.name(service),
      instance.url,
      output.relative(instance.last_heartbeat, Date.now(), { past: true }),
      output.relative(instance.expires_at),
    ]),
  );
  if (rows.length === 0) return output.style.dim(`No services registered at ${baseUrl}`);
  return output.table(['SERVICE', 'URL', 'LAST HEARTBEAT', 'EXPIRES'], rows);
}

async function watch(client: Awaited<ReturnType<typeof clientFrom>>, flags: ServicesFlags, only: string | undefined): Promise<void> {
  const [output, { watchEvents }] = await Promise.all([import('../output.js'), import('../client/event-stream.js')]);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  const live = output.isInteractive() && !flags.json;
  let catalog: Catalog = {};
  let lastChange = '';
  const redraw = () => {
    const shown = only ? { [only]: catalog[only] ?? [] } : catalog;
    process.stdout.write(`\x1b[2J\x1b[H${renderCatalog(output, shown, client.baseUrl)}\n\n${output.style.dim(`watching ${client.baseUrl}/events — Ctrl-C to stop`)}\n${lastChange}\n`);
  };
  const events = watchEvents({
    url: `${client.baseUrl}/events`,
    headers: client.authHeaders,
    signal: controller.signal,
    onDisconnect: (error, retryMs) => output.warn(`lost ${client.baseUrl}/events (${error.message}); reconnecting in ${Math.round(retryMs / 100) / 10} s`),
  });
  for await (const event of events) {
    const data = JSON.parse(event.data) as { type: string; services?: Catalog; name?: string; instance?: InstanceJson };
    if (only && data.name !== undefined && data.name !== only) continue;
    if (flags.json) {
      output.printJson(event.data);
      continue;
    }
    if (data.type === 'snapshot') catalog = data.services ?? {};
    else if (data.name && data.instance) catalog = applyChange(catalog, data.type, data.name, data.instance);
    const change = data.type === 'snapshot' ? `snapshot: ${Object.keys(catalog).length} services` : `${data.type}: ${data.name} at ${data.instance?.url}`;
    if (live) {
      lastChange = output.style.dim(`${new Date().toLocaleTimeString()} ${change}`);
      redraw();
    } else {
      output.print(`${new Date().toISOString()} ${change}`);
    }
  }
}

function applyChange(catalog: Catalog, type: string, name: string, instance: InstanceJson): Catalog {
  const others = (catalog[name] ?? []).filter((i) => i.url !== instance.url);
  const next = { ...catalog };
  if (type === 'deregistered' || type === 'evicted') {
    if (others.length > 0) next[name] = others;
    else delete next[name];
  } else if (type === 'registered' || type === 'updated') {
    next[name] = [...others, instance];
  }
  return next;
}
