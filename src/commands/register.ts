import { Command, InvalidArgumentError, Option } from 'commander';
import { isHttpUrl } from '../http-url.js';
import { type ClientFlags, UsageError, clientFrom, withClientOptions } from './shared.js';

function parseMetadata(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('Expected a JSON object, e.g. \'{"model":"llama3.2"}\'.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError('Expected a JSON object.');
  return parsed as Record<string, unknown>;
}

export function makeRegisterCommand(): Command {
  return withClientOptions(
    new Command('register')
      .description('register a service instance by hand')
      .argument('<name>', 'service name')
      .argument('<url>', 'where the service answers, e.g. http://127.0.0.1:5000')
      .addOption(new Option('--metadata <json>', 'a JSON object stored with the instance').argParser(parseMetadata)),
  ).action(async (name: string, url: string, flags: ClientFlags & { metadata?: Record<string, unknown> }) => {
    if (!isHttpUrl(url)) throw new UsageError(`"${url}" is not an http(s) URL: give the address the service answers on, e.g. http://127.0.0.1:8080`);
    const client = await clientFrom(flags);
    const answer = await client.register(name, url, flags.metadata);
    const output = await import('../output.js');
    if (flags.json) output.printJson(answer.text);
    else output.print(answer.json.message);
  });
}

export function makeDeregisterCommand(): Command {
  return withClientOptions(
    new Command('deregister')
      .description('remove a service (every instance, or the one at <url>)')
      .argument('<name>', 'service name')
      .argument('[url]', 'only this instance'),
  ).action(async (name: string, url: string | undefined, flags: ClientFlags) => {
    if (url !== undefined && !isHttpUrl(url)) throw new UsageError(`"${url}" is not an http(s) URL: give the instance's URL as it was registered`);
    const client = await clientFrom(flags);
    const answer = await client.deregister(name, url);
    const output = await import('../output.js');
    if (flags.json) output.printJson(answer.text);
    else output.print(answer.json.message);
  });
}
