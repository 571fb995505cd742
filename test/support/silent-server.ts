import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface SilentServer {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** Everything the server was sent, as text. */
  received(): string;
  /** How many connections it took. */
  connections(): number;
  /** Drops the connections held and stops listening. */
  close(): Promise<void>;
}

/**
 * A peer that takes connections and never says a word: a registrar stopped with SIGSTOP or
 * deadlocked, or a target that never finishes a TLS handshake. What it was sent is kept.
 */
export async function startSilentServer(): Promise<SilentServer> {
  const sockets: Socket[] = [];
  let received = '';
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received: () => received,
    connections: () => sockets.length,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
