import { Command, InvalidArgumentError, Option } from 'commander';
import { isHttpUrl } from '../http-url.js';
import type { RegistrarClient } from '../client/registrar-client.js';
import { messageOf } from './bad-answer.js';
import { type ClientFlags, UsageError, clientFrom, hinted, parseSeconds, parseServiceName, withClientOptions } from './shared.js';

interface RegisterFlags extends ClientFlags {
  metadata?: Record<string, unknown>;
  keepAlive?: boolean;
  heartbeatInterval?: number;
  checkPath?: string;
}

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
      .description('register a service instance by hand (--keep-alive keeps it registered while the command runs)')
      .argument('<name>', 'service name', parseServiceName)
      .argument('<url>', 'where the service answers, e.g. http://127.0.0.1:5000')
      .addOption(new Option('--metadata <json>', 'a JSON object stored with the instance').argParser(parseMetadata))
      .option('--keep-alive', 'stay running: heartbeat, register again after a registrar restart, deregister on Ctrl-C or SIGTERM')
      .addOption(
        new Option('--heartbeat-interval <seconds>', "with --keep-alive: seconds between heartbeats (default: 120, or a third of the registrar's TTL when that is under 240)").argParser(parseSeconds),
      )
      .addOption(
        new Option('--check-path <path>', 'with --keep-alive: GET <url><path> at least every 10 s; while it fails (no answer, or 400 and up) the instance is out of the registry'),
      ),
  ).action(async (name: string, url: string, flags: RegisterFlags) => {
    if (!isHttpUrl(url)) throw new UsageError(`"${url}" is not an http(s) URL: give the address the service answers on, e.g. http://127.0.0.1:8080`);
    for (const [given, option] of [
      [flags.heartbeatInterval, '--heartbeat-interval'],
      [flags.checkPath, '--check-path'],
    ] as const) {
      if (given !== undefined && !flags.keepAlive) throw new UsageError(`${option} only applies with --keep-alive: add --keep-alive, or leave ${option} out`);
    }
    if (flags.checkPath !== undefined && !flags.checkPath.startsWith('/')) {
      throw new UsageError(`--check-path "${flags.checkPath}" must start with "/", e.g. /health`);
    }
    if (flags.keepAlive && flags.json) {
      throw new UsageError('--json prints one answer, but --keep-alive keeps running: leave one of them out');
    }
    const client = await clientFrom(flags);
    if (flags.keepAlive) return keepRegistered(client, name, url, flags);
    const answer = await client.register(name, url, flags.metadata);
    const output = await import('../output.js');
    if (flags.json) output.printJson(answer.text);
    else output.print(messageOf(answer, `${client.baseUrl}/register`));
  });
}

/**
 * A sidecar for a service that does not speak to the registrar itself, as `svcmesh ollama
 * --register` does for the Ollama service: `python app.py & svcmesh register web URL --keep-alive`.
 * Runs until a signal, which deregisters the instance, or until the registrar refuses it.
 */
async function keepRegistered(client: RegistrarClient, name: string, url: string, flags: RegisterFlags): Promise<void> {
  const [output, { startHeartbeatLoop }, { onShutdownSignal }, { httpCheck }] = await Promise.all([
    import('../output.js'),
    import('../client/heartbeat-loop.js'),
    import('../server/shutdown.js'),
    import('../client/service-check.js'),
  ]);
  await new Promise<void>((_resolve, reject) => {
    const loop = startHeartbeatLoop({
      client,
      name,
      url,
      metadata: flags.metadata,
      intervalMs: flags.heartbeatInterval === undefined ? undefined : flags.heartbeatInterval * 1000,
      onRefused: reject,
      check: flags.checkPath === undefined ? undefined : httpCheck(url, flags.checkPath),
      log: (line) => output.print(line),
      warn: (line) => output.warn(line),
    });
    // Exit 1 when the deregistration failed: a script that stops the sidecar learns the instance is still listed.
    onShutdownSignal(async () => ((await loop.leave()) ? 0 : 1), {
      cut: (signal) =>
        `svcmesh register: second ${signal}, quitting now${loop.holdsRegistration() ? `: ${name} may stay registered until the registrar's TTL evicts it` : ''}`,
    });
  });
}

export function makeDeregisterCommand(): Command {
  return withClientOptions(
    new Command('deregister')
      .description('remove a service (every instance, or the one at <url>)')
      .argument('<name>', 'service name', parseServiceName)
      .argument('[url]', 'only this instance'),
  ).action(async (name: string, url: string | undefined, flags: ClientFlags) => {
    if (url !== undefined && !isHttpUrl(url)) throw new UsageError(`"${url}" is not an http(s) URL: give the instance's URL as it was registered`);
    const client = await clientFrom(flags);
    const answer = await client.deregister(name, url).catch(async (error: unknown) => {
      if (url === undefined) return hinted(client, name)(error);
      const { withInstanceHint } = await import('./unknown-service.js');
      throw await withInstanceHint(error, client, name, url);
    });
    const output = await import('../output.js');
    if (flags.json) output.printJson(answer.text);
    else output.print(messageOf(answer, `${client.baseUrl}/deregister`));
  });
}
