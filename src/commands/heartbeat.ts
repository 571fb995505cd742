import { Command, Option } from 'commander';
import { messageOf } from './bad-answer.js';
import { isNotARegistrar } from '../error-hint.js';
import { type ClientFlags, clientFrom, hinted, parseHttpUrl, parseServiceName, withClientOptions } from './shared.js';

export function makeHeartbeatCommand(): Command {
  return withClientOptions(
    new Command('heartbeat')
      .description('send one heartbeat for a service')
      .argument('<name>', 'service name', parseServiceName)
      .addOption(new Option('--url <url>', 'renew only this instance (and register it again if the registrar lost it)').argParser(parseHttpUrl)),
  ).action(async (name: string, flags: ClientFlags & { url?: string }) => {
    const client = await clientFrom(flags);
    const answer = await client
      .heartbeat(name, flags.url)
      .catch(hinted(client, name))
      .catch((error: unknown) => {
        throw withRegisterHint(error, name);
      });
    const output = await import('../output.js');
    if (flags.json) output.printJson(answer.text);
    else output.print(messageOf(answer, `${client.baseUrl}/heartbeat`));
    // A --url the registrar did not know (lost, evicted, or mistyped) was registered by this beat.
    if (answer.reregistered) output.info(`The registrar did not know ${name} at ${flags.url}: this heartbeat registered it`);
  });
}

/**
 * A heartbeat with a name alone, for a name the registrar does not know (never registered, or
 * evicted since: it cannot tell which): the registrar's advice is in HTTP terms, so it is cut from
 * the message and the commands that do the same go under it instead, said once. A name that looks
 * mistyped keeps its "Did you mean …?" alone.
 */
function withRegisterHint(error: unknown, name: string): unknown {
  const e = error as { name?: string; status?: number; hint?: string; message: string };
  if (e?.name !== 'HttpError' || e.status !== 404 || e.hint?.startsWith('Did you mean') || isNotARegistrar(e)) return error;
  // This registrar's advice, and the "register it again" of earlier ones.
  e.message = e.message.replace(/(is not registered): register it\b.*$/, '$1');
  const advice = `Register it with \`svcmesh register ${name} URL\`, or send \`svcmesh heartbeat ${name} --url URL\`, which registers it.`;
  e.hint = e.hint ? `${advice}\n  ${e.hint}` : advice;
  return error;
}
