import { Command, Option } from 'commander';
import { messageOf } from './bad-answer.js';
import { type ClientFlags, clientFrom, hinted, parseHttpUrl, parseServiceName, withClientOptions } from './shared.js';

export function makeHeartbeatCommand(): Command {
  return withClientOptions(
    new Command('heartbeat')
      .description('send one heartbeat for a service')
      .argument('<name>', 'service name', parseServiceName)
      .addOption(new Option('--url <url>', 'renew only this instance (and register it again if the registrar lost it)').argParser(parseHttpUrl)),
  ).action(async (name: string, flags: ClientFlags & { url?: string }) => {
    const client = await clientFrom(flags);
    const answer = await client.heartbeat(name, flags.url).catch(hinted(client, name));
    const output = await import('../output.js');
    if (flags.json) output.printJson(answer.text);
    else output.print(messageOf(answer, `${client.baseUrl}/heartbeat`));
    // A --url the registrar did not know (lost, evicted, or mistyped) was registered by this beat.
    if (answer.reregistered) output.info(`The registrar did not know ${name} at ${flags.url}: this heartbeat registered it`);
  });
}
