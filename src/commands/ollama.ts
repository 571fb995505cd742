import { Command, Option } from 'commander';
import { resolveSetting } from '../config.js';
import { DEFAULT_REGISTRAR, parseHttpUrl, parsePort, parseSecret, parseSeconds } from './shared.js';

interface OllamaFlags {
  port: number;
  host: string;
  name: string;
  model: string;
  ollamaHost: string;
  register?: boolean;
  advertiseUrl?: string;
  heartbeatInterval?: number;
  registrar?: string;
  token?: string;
  receiveToken?: string;
  drainTimeout: number;
}

export function makeOllamaCommand(): Command {
  return new Command('ollama')
    .description('start the Ollama microservice: answers forwarded questions through a local Ollama')
    .addOption(new Option('--port <port>', 'port to listen on').default(5000).argParser(parsePort))
    .addOption(new Option('--host <host>', 'address to listen on').default('0.0.0.0'))
    .addOption(new Option('--name <name>', 'service name to register under').default('ollama_service'))
    .addOption(new Option('--model <model>', 'Ollama model that answers').env('OLLAMA_MODEL').default('llama3.2'))
    .addOption(new Option('--ollama-host <url>', 'where Ollama runs').env('OLLAMA_HOST').default('http://127.0.0.1:11434'))
    .option('--register', 'register with the registrar and keep the registration alive with heartbeats')
    .addOption(new Option('--advertise-url <url>', 'URL others reach this service by (default http://127.0.0.1:<port>)').argParser(parseHttpUrl))
    .addOption(new Option('--heartbeat-interval <seconds>', "seconds between heartbeats (default: 120, or a third of the registrar's TTL when that is under 240)").argParser(parseSeconds))
    .addOption(new Option('--registrar <url>', `registrar URL (env SVCMESH_REGISTRAR, setting \`registrar\`, default ${DEFAULT_REGISTRAR})`).argParser(parseHttpUrl))
    .addOption(new Option('--token <token>', "the registrar's token (env SVCMESH_TOKEN, setting `token`)"))
    .addOption(new Option('--receive-token <secret>', 'require Authorization: Bearer <secret> on /receive').env('SVCMESH_RECEIVE_TOKEN').argParser(parseSecret))
    .addOption(new Option('--drain-timeout <seconds>', 'on SIGINT/SIGTERM, how long answers in flight may take to finish').default(30).argParser(parseSeconds))
    .action(async (flags: OllamaFlags) => {
      const { Ollama, createOllamaApp, InFlightTracker, startServer, listenOrExplain, onShutdownSignal, normaliseOllamaHost } = await import(
        '../runtime/server.js'
      );
      const ollamaHost = normaliseOllamaHost(flags.ollamaHost);
      const tracker = new InFlightTracker();
      const app = createOllamaApp({
        ollama: new Ollama({ host: ollamaHost }),
        ollamaHost,
        model: flags.model,
        token: flags.receiveToken,
        tracker,
      });
      const server = await listenOrExplain(() => startServer(app, { host: flags.host, port: flags.port }), flags.host, flags.port);
      console.log(`svcmesh ollama service listening on ${server.url} (model: ${flags.model}, ollama: ${ollamaHost})`);

      let stopRegistration = async () => {};
      if (flags.register) stopRegistration = await keepRegistered(flags, server.port);

      onShutdownSignal(async (signal) => {
        console.log(`svcmesh ollama service: ${signal} received, deregistering and finishing answers in flight`);
        await stopRegistration();
        await server.close(flags.drainTimeout * 1000);
      });
    });
}

/** Registers and heartbeats; returns the function that stops the loop and deregisters. */
async function keepRegistered(flags: OllamaFlags, port: number): Promise<() => Promise<void>> {
  const [{ createRegistrarClient }, { startHeartbeatLoop }, output] = await Promise.all([
    import('../client/registrar-client.js'),
    import('../runtime/server.js'),
    import('../output.js'),
  ]);
  const baseUrl = (await resolveSetting('registrar', flags.registrar, 'SVCMESH_REGISTRAR', DEFAULT_REGISTRAR)) as string;
  const token = await resolveSetting('token', flags.token, 'SVCMESH_TOKEN');
  const client = createRegistrarClient({ baseUrl, token });
  const url = flags.advertiseUrl ?? `http://127.0.0.1:${port}`;
  const loop = startHeartbeatLoop({
    client,
    name: flags.name,
    url,
    metadata: { model: flags.model },
    intervalMs: flags.heartbeatInterval === undefined ? undefined : flags.heartbeatInterval * 1000,
    log: (line) => console.log(line),
    warn: (line) => output.warn(line),
  });
  return () => loop.leave();
}
