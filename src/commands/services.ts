import { Command } from 'commander';
import { type ClientFlags, clientFrom, withClientOptions } from './shared.js';

export function makeServicesCommand(): Command {
  return withClientOptions(
    new Command('services')
      .description('list registered services (or the instances of one)')
      .argument('[name]', 'show only this service, with every instance'),
  ).action(async (name: string | undefined, flags: ClientFlags) => {
    const client = await clientFrom(flags);
    const output = await import('../output.js');
    if (flags.json) {
      const answer = name ? await client.service(name) : await client.services();
      output.printJson(answer.text);
      return;
    }
    const services = name
      ? { [name]: (await client.service(name)).json.instances }
      : (await client.catalog()).json.services;
    const rows = Object.entries(services).flatMap(([service, instances]) =>
      instances.map((instance) => [
        output.style.name(service),
        instance.url,
        output.relative(instance.last_heartbeat),
        output.relative(instance.expires_at),
      ]),
    );
    if (rows.length === 0) {
      output.print(output.style.dim(`No services registered at ${client.baseUrl}`));
      return;
    }
    output.print(output.table(['SERVICE', 'URL', 'LAST HEARTBEAT', 'EXPIRES'], rows));
  });
}
