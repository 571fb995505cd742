import { Command, Option } from 'commander';
import type { HeartbeatLoop } from '../client/heartbeat-loop.js';
import { DEFAULT_REGISTRAR, UsageError, assertSecretFitsHeader, clientFrom, parseHttpUrl, parsePort, parseRegistrarUrl, parseSecret, parseSeconds } from './shared.js';

const DEFAULT_MODEL = 'llama3.2';
const DEFAULT_OLLAMA_HOST = 'http://127.0.0.1:11434';

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

type Runtime = typeof import('../runtime/server.js');

export function makeOllamaCommand(): Command {
  return new Command('ollama')
    .description('start the Ollama microservice: answers forwarded questions through a local Ollama')
    .addOption(new Option('--port <port>', 'port to listen on').default(5000).argParser(parsePort))
    .addOption(new Option('--host <host>', 'address to listen on').default('0.0.0.0'))
    .addOption(new Option('--name <name>', 'service name to register under').default('ollama_service'))
    .addOption(new Option('--model <model>', 'Ollama model that answers').env('OLLAMA_MODEL').default(DEFAULT_MODEL))
    .addOption(new Option('--ollama-host <url>', 'where Ollama runs: host, host:port or :port (port 11434 when none is given), or an http(s) URL (port 80 or 443 when none is given)').env('OLLAMA_HOST').default(DEFAULT_OLLAMA_HOST))
    .option('--register', 'register with the registrar and keep the registration alive with heartbeats')
    .addOption(new Option('--advertise-url <url>', 'URL others reach this service by (default http://127.0.0.1:<port>)').argParser(parseHttpUrl))
    .addOption(new Option('--heartbeat-interval <seconds>', "seconds between heartbeats (default: 120, or a third of the registrar's TTL when that is under 240)").argParser(parseSeconds))
    .addOption(new Option('--registrar <url>', `registrar URL (env SVCMESH_REGISTRAR, setting \`registrar\`, default ${DEFAULT_REGISTRAR})`).argParser(parseRegistrarUrl))
    .addOption(new Option('--token <token>', "the registrar's token (env SVCMESH_TOKEN, setting `token`)"))
    .addOption(new Option('--receive-token <secret>', 'require Authorization: Bearer <secret> on /receive').env('SVCMESH_RECEIVE_TOKEN').argParser(parseSecret))
    .addOption(new Option('--drain-timeout <seconds>', 'on SIGINT/SIGTERM, how long answers in flight may take to finish').default(30).argParser(parseSeconds))
    .action(async (flags: OllamaFlags, command: Command) => {
      const runtime = await import('../runtime/server.js');
      // Every mistake in the call is reported before anything listens or registers.
      const ollamaHost = ollamaHostFrom(runtime, flags.ollamaHost, command.getOptionValueSource('ollamaHost'));
      refuseRegistrationOptionsAlone(flags);
      const model = modelFrom(flags.model, command.getOptionValueSource('model'));
      const name = runtime.serviceName.safeParse(flags.name);
      if (!name.success) throw new UsageError(`--name "${flags.name}" ${name.error.issues[0]?.message}: the registrar would refuse it`);
      assertSecretFitsHeader(flags.receiveToken, '--receive-token', 'SVCMESH_RECEIVE_TOKEN');
      const client = flags.register ? await clientFrom(flags) : undefined;

      // The loop comes from this bundle, as the client does: one from the server payload would
      // hold another HttpError class, and refusals (instanceof HttpError) would go unrecognised.
      const [output, { startHeartbeatLoop }] = await Promise.all([import('../output.js'), import('../client/heartbeat-loop.js')]);
      const { connectOllama, createOllamaApp, InFlightTracker, startServer, listenOrExplain, onShutdownSignal } = runtime;
      const tracker = new InFlightTracker();
      const ollama = connectOllama(ollamaHost);
      const cutAnswers = new AbortController();
      const app = createOllamaApp({ ollama, model, token: flags.receiveToken, tracker, cutAnswers: cutAnswers.signal });
      const onDrainTimeout = () =>
        cutAnswers.abort(`The Ollama service shut down before the answer was complete (its --drain-timeout of ${flags.drainTimeout} s ran out)`);
      const server = await listenOrExplain(() => startServer(app, { host: flags.host, port: flags.port, onDrainTimeout }), flags.host, flags.port);

      // Runs until a signal (which exits), or until the registrar refuses the registration.
      await new Promise<void>((_resolve, reject) => {
        const drainMs = flags.drainTimeout * 1000;
        const checking = new AbortController();
        let registration: HeartbeatLoop | undefined;
        // Before the listening line: whoever waits for it may send a signal the moment it shows.
        onShutdownSignal(
          async (signal) => {
            console.log(`svcmesh ollama service: ${signal} received, deregistering and finishing answers in flight`);
            checking.abort();
            await registration?.leave();
            await server.close(drainMs);
          },
          { cut: (signal) => `svcmesh ollama service: second ${signal}, quitting now: answers in flight were cut` },
        );
        console.log(`svcmesh ollama service listening on ${server.url} (model: ${model}, ollama: ${ollamaHost})`);
        registration =
          client &&
          startHeartbeatLoop({
            client,
            name: flags.name,
            url: flags.advertiseUrl ?? `http://127.0.0.1:${server.port}`,
            metadata: { model },
            intervalMs: flags.heartbeatInterval === undefined ? undefined : flags.heartbeatInterval * 1000,
            // A wrong token or a refused name or URL stays refused: stop, as `register --keep-alive` does.
            onRefused: (error) => {
              checking.abort();
              // The pooled connections to Ollama would otherwise keep the process alive a while.
              server.close(drainMs).then(() => ollama.close()).then(() => reject(error), reject);
            },
            log: (line) => console.log(line),
            warn: (line) => output.warn(line),
          });
        // After listening and registering have begun, so that a slow Ollama delays neither.
        warnUnlessOllamaReady(runtime, output, ollama, model, checking.signal);
      });
    });
}

/**
 * OLLAMA_HOST set but empty is the default, as the Ollama CLI reads it; an empty --ollama-host, a
 * value that names no host, or a scheme Ollama does not speak is a usage error.
 */
function ollamaHostFrom(runtime: Runtime, value: string, source: string | undefined): string {
  if (source === 'env' && value.trim() === '') return DEFAULT_OLLAMA_HOST;
  try {
    return runtime.normaliseOllamaHost(value);
  } catch (error) {
    if (!(error instanceof runtime.OllamaHostError)) throw error;
    const given = source === 'env' ? 'OLLAMA_HOST' : '--ollama-host';
    // A password given in the URL is not printed back.
    const shown = value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/@]*@/i, '$1***@');
    throw new UsageError(`${given} "${shown}" ${error.message}: give where Ollama answers, such as 127.0.0.1:11434, :11434 or http://ollama.internal:11434`);
  }
}

/** OLLAMA_MODEL set but empty is the default; an empty --model is a mistake. */
/**
 * The characters of an Ollama model name (llama3.2, qwen2.5:7b, hf.co/user/repo:Q4_K_M,
 * name@sha256:…): anything else Ollama refuses, so every question would fail with its error.
 */
const MODEL_NAME = /^[A-Za-z0-9_][A-Za-z0-9._:/@-]*$/;

function modelFrom(value: string, source: string | undefined): string {
  const where = source === 'env' ? 'OLLAMA_MODEL' : '--model';
  if (value.trim() === '') {
    if (source === 'env') return DEFAULT_MODEL;
    throw new UsageError(`--model is empty: name the model that answers, such as ${DEFAULT_MODEL} (\`ollama list\` shows those pulled), or leave it out for ${DEFAULT_MODEL}`);
  }
  if (!MODEL_NAME.test(value)) {
    throw new UsageError(
      `${where} "${value}" is not a model name Ollama takes: letters, digits and . _ - : / @, as in ${DEFAULT_MODEL}, qwen2.5:7b or hf.co/user/repo:tag (\`ollama list\` shows those pulled)`,
    );
  }
  return value;
}

/** Options that only mean something with --register: given without it, the service would silently stay unregistered. */
function refuseRegistrationOptionsAlone(flags: OllamaFlags): void {
  if (flags.register) return;
  for (const [given, option] of [
    [flags.registrar, '--registrar'],
    [flags.token, '--token'],
    [flags.heartbeatInterval, '--heartbeat-interval'],
    [flags.advertiseUrl, '--advertise-url'],
  ] as const) {
    if (given !== undefined) throw new UsageError(`${option} only applies with --register: add --register to register with the registrar, or leave ${option} out`);
  }
}

/**
 * One warning at start-up when Ollama does not answer or lacks the model, in the words `/health`
 * uses. The service runs on: Ollama may start, or the model be pulled, later. `stop` ends the
 * check, so that one hanging on Ollama does not keep a stopping process alive.
 */
function warnUnlessOllamaReady(
  runtime: Runtime,
  output: typeof import('../output.js'),
  ollama: ReturnType<Runtime['connectOllama']>,
  model: string,
  stop: AbortSignal,
): void {
  void runtime.checkOllama(ollama, model, { signal: stop }).then((readiness) => {
    if (!readiness.ok && !stop.aborted) output.warn(readiness.error);
  });
}
