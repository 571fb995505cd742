import { Command, Option } from 'commander';
import { UsageError, assertSecretFitsHeader, parsePort, parseSecret, parseSeconds, parseTtl } from './shared.js';

const collectList = (value: string, previous: string[] = []) => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];

interface RegistrarFlags {
  port: number;
  host: string;
  ttl: number;
  store: string;
  token?: string;
  protectReads?: boolean;
  allowHosts?: string[];
  targetToken?: string;
  targetTokenFor: string[];
  forwardTimeout: number;
  drainTimeout: number;
  logFormat: 'text' | 'json';
}

export function makeRegistrarCommand(): Command {
  return new Command('registrar')
    .description('start the service registrar: registration, heartbeats, discovery, eviction, forwarding')
    .addOption(new Option('--port <port>', 'port to listen on').default(5001).argParser(parsePort))
    .addOption(new Option('--host <host>', 'address to listen on').default('0.0.0.0'))
    .addOption(new Option('--ttl <seconds>', 'evict an instance this long after its last heartbeat').default(300).argParser(parseTtl))
    .addOption(new Option('--store <store>', 'where the catalog lives: memory, file:PATH or etcd://HOST:PORT[,HOST:PORT...]').default('memory'))
    .addOption(new Option('--token <secret>', 'require Authorization: Bearer <secret> on writes and /forward').env('SVCMESH_TOKEN').argParser(parseSecret))
    .option('--protect-reads', 'with --token, reads (/services, /catalog, /events, /metrics) need the token too')
    .addOption(new Option('--allow-hosts <hosts...>', 'hosts, addresses or CIDRs that service URLs may point at (default: any)').env('SVCMESH_ALLOW_HOSTS').argParser(collectList))
    .addOption(new Option('--target-token <secret>', "bearer token sent to targets' /receive (for services started with --receive-token)").env('SVCMESH_TARGET_TOKEN').argParser(parseSecret))
    .addOption(
      new Option('--target-token-for <name=secret...>', "a service's own /receive token, instead of --target-token (repeat for each service)")
        .env('SVCMESH_TARGET_TOKENS')
        .argParser(collectList)
        .default([]),
    )
    .addOption(new Option('--log-format <format>', 'one log line per request and per registry change').choices(['text', 'json']).default('text'))
    .addOption(new Option('--forward-timeout <seconds>', 'longest wait for a target to start answering, and longest pause inside an answer').default(300).argParser(parseSeconds))
    .addOption(new Option('--drain-timeout <seconds>', 'on SIGINT/SIGTERM, how long answers in flight may take to finish').default(30).argParser(parseSeconds))
    .action(async (flags: RegistrarFlags, command: Command) => {
      if (flags.protectReads && !flags.token) throw new UsageError('--protect-reads needs --token (or SVCMESH_TOKEN): there is nothing to protect reads with');
      assertSecretFitsHeader(flags.token, '--token', 'SVCMESH_TOKEN');
      assertSecretFitsHeader(flags.targetToken, '--target-token', 'SVCMESH_TARGET_TOKEN');
      const {
        openStore,
        Registry,
        createForwarder,
        createRegistrarApp,
        startServer,
        listenOrExplain,
        onShutdownSignal,
        createRegistrarMetrics,
        createLogger,
        createRegistrarFastPath,
        parseAllowHosts,
        parseTargetTokens,
        targetHeaders,
      } = await import('../runtime/server.js');
      if (flags.allowHosts?.length === 0) {
        throw new UsageError('--allow-hosts (or SVCMESH_ALLOW_HOSTS) is empty: name at least one host, address or CIDR, or leave it out to allow any');
      }
      const hostPolicy = flags.allowHosts ? parseAllowHosts(flags.allowHosts) : undefined;
      const store = await openStore(flags.store, { ttlSeconds: flags.ttl });
      const registry = new Registry(store);
      const metrics = createRegistrarMetrics(registry);
      const logger = createLogger(flags.logFormat);
      const tokensByService = parseTargetTokens(
        flags.targetTokenFor,
        command.getOptionValueSource('targetTokenFor') === 'env' ? 'SVCMESH_TARGET_TOKENS' : '--target-token-for',
      );
      const forwarder = createForwarder({
        registry,
        timeoutMs: flags.forwardTimeout * 1000,
        observer: metrics.forwards,
        allowHost: hostPolicy && ((host) => hostPolicy.allows(host)),
        targetHeaders: targetHeaders(flags.targetToken, tokensByService),
        logger,
      });
      const shutdown = new AbortController();
      const app = createRegistrarApp({
        registry,
        forwarder,
        token: flags.token,
        protectReads: flags.protectReads,
        ttlSeconds: flags.ttl,
        hostPolicy,
        metrics,
        logger,
        shutdown: shutdown.signal,
      });
      const cutStreams = new AbortController();
      const fastPath = createRegistrarFastPath({
        registry,
        forwarder,
        token: flags.token,
        protectReads: flags.protectReads,
        hostPolicy,
        metrics,
        cutStreams: cutStreams.signal,
      });
      const onDrainTimeout = () =>
        cutStreams.abort(`The registrar shut down before the answer was over (its --drain-timeout of ${flags.drainTimeout} s ran out)`);
      const server = await listenOrExplain(
        () => startServer(app, { host: flags.host, port: flags.port, logger, fastPath, onDrainTimeout }),
        flags.host,
        flags.port,
      );
      if ((flags.targetToken || tokensByService.size > 0) && !flags.token) {
        console.error('svcmesh registrar: warning: target tokens without --token: anyone who can reach this registrar can register a URL and receive a target token');
      }
      // With --log-format json every line of stdout is JSON, these too: jq must not stop at the first.
      const announce = (message: string, parts: Record<string, unknown>) => {
        if (flags.logFormat !== 'json') return void console.log(message);
        logger.log(message, undefined, parts);
        logger.flush();
      };
      // Before the listening line: whoever waits for it may send a signal the moment it shows.
      onShutdownSignal(
        async (signal) => {
          announce(`svcmesh registrar: ${signal} received, finishing answers in flight`, { signal });
          shutdown.abort();
          await server.close(flags.drainTimeout * 1000);
          await forwarder.close();
          await registry.close();
          logger.flush();
        },
        { cut: (signal) => `svcmesh registrar: second ${signal}, quitting now: answers in flight were cut` },
      );
      // Listening on every address, the browser on this machine still wants a loopback URL.
      const local = flags.host === '0.0.0.0' ? `http://127.0.0.1:${server.port}` : flags.host === '::' ? `http://[::1]:${server.port}` : server.url;
      announce(
        `svcmesh registrar listening on ${server.url} (store: ${store.description}, ttl: ${flags.ttl} s${flags.token ? ', token required' : ''}); dashboard: ${local}/`,
        { url: server.url, store: store.description, ttl_seconds: flags.ttl, token_required: Boolean(flags.token), dashboard: `${local}/` },
      );
    });
}
