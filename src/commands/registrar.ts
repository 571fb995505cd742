import { Command, Option } from 'commander';
import { parsePort, parseSeconds } from './shared.js';

interface RegistrarFlags {
  port: number;
  host: string;
  ttl: number;
  store: string;
  token?: string;
  forwardTimeout: number;
  drainTimeout: number;
}

export function makeRegistrarCommand(): Command {
  return new Command('registrar')
    .description('start the service registrar: registration, heartbeats, discovery, eviction, forwarding')
    .addOption(new Option('--port <port>', 'port to listen on').default(5001).argParser(parsePort))
    .addOption(new Option('--host <host>', 'address to listen on').default('0.0.0.0'))
    .addOption(new Option('--ttl <seconds>', 'evict an instance this long after its last heartbeat').default(300).argParser(parseSeconds))
    .addOption(new Option('--store <store>', 'where the catalog lives: memory, file:PATH or etcd://HOST:PORT[,HOST:PORT...]').default('memory'))
    .addOption(new Option('--token <secret>', 'require Authorization: Bearer <secret> on writes and /forward').env('SVCMESH_TOKEN'))
    .addOption(new Option('--forward-timeout <seconds>', 'longest wait for a target to start answering, and longest pause inside an answer').default(300).argParser(parseSeconds))
    .addOption(new Option('--drain-timeout <seconds>', 'on SIGINT/SIGTERM, how long answers in flight may take to finish').default(30).argParser(parseSeconds))
    .action(async (flags: RegistrarFlags) => {
      const [{ openStore }, { Registry }, { createForwarder }, { createRegistrarApp }, { startServer, listenOrExplain }, { onShutdownSignal }] =
        await Promise.all([
          import('../registry/open-store.js'),
          import('../registry/registry.js'),
          import('../server/forwarder.js'),
          import('../server/registrar.js'),
          import('../server/start.js'),
          import('../server/shutdown.js'),
        ]);
      const store = await openStore(flags.store, { ttlSeconds: flags.ttl });
      const registry = new Registry(store);
      const forwarder = createForwarder({ registry, timeoutMs: flags.forwardTimeout * 1000 });
      const app = createRegistrarApp({ registry, forwarder, token: flags.token, ttlSeconds: flags.ttl });
      const server = await listenOrExplain(() => startServer(app, { host: flags.host, port: flags.port }), flags.host, flags.port);
      console.log(
        `svcmesh registrar listening on ${server.url} (store: ${store.description}, ttl: ${flags.ttl} s${flags.token ? ', token required' : ''})`,
      );
      onShutdownSignal(async (signal) => {
        console.log(`svcmesh registrar: ${signal} received, finishing answers in flight`);
        await server.close(flags.drainTimeout * 1000);
        await forwarder.close();
        await registry.close();
      });
    });
}
