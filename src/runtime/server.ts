/**
 * Everything the server commands need, in one module. The build packs it (with hono, undici,
 * zod, ollama, prom-client, etcd3…) into a compressed payload inside the one bundle that is
 * unpacked only when a server starts: client commands never parse any of it.
 */
export { parseAllowHosts } from '../allow-hosts.js';
export { normaliseOllamaHost, OllamaHostError } from '../ollama-host.js';
export { openStore } from '../registry/open-store.js';
export { Registry } from '../registry/registry.js';
export { createForwarder } from '../server/forwarder.js';
export { createRegistrarMetrics } from '../server/metrics.js';
export { checkOllama, createOllamaApp, InFlightTracker } from '../server/ollama.js';
export { connectOllama } from '../server/ollama-connection.js';
export { createRegistrarApp } from '../server/registrar.js';
export { createLogger } from '../server/request-log.js';
export { createRegistrarFastPath } from '../server/registrar-fast-path.js';
export { onShutdownSignal } from '../server/shutdown.js';
export { listenOrExplain, startServer } from '../server/start.js';
export { parseTargetTokens, targetHeaders } from '../target-tokens.js';
export { serviceName } from '../server/validation.js';
