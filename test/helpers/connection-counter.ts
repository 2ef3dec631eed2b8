/** A TCP listener that only counts accepted connections (and closes them at once): proves nothing connects somewhere. */
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ConnectionCounter {
  /** `127.0.0.1:PORT` */
  host: string;
  hostname: string;
  port: number;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** Connections accepted so far. */
  readonly connections: number;
  reset(): void;
  close(): Promise<void>;
}

export async function startConnectionCounter(): Promise<ConnectionCounter> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    hostname: '127.0.0.1',
    port,
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    reset() {
      connections = 0;
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
    },
  };
}
