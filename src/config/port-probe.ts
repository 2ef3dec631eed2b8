/**
 * Whether the OS would let regcache bind a port: `mirror add` tries it before writing the
 * config, so a port another process holds is refused now instead of failing at reload.
 */
import { createServer } from 'node:net';

/** Resolves true when `port` can be bound on `host`. */
export type PortProbe = (host: string, port: number) => Promise<boolean>;

// Only these say "this bind would fail"; any other error (the host is not an address of this
// machine, say) means the probe cannot tell, and the server's own bind will be the test.
const HELD = new Set(['EADDRINUSE', 'EACCES']);

export const portIsFree: PortProbe = (host, port) => new Promise((resolve, reject) => {
  const server = createServer();
  server.once('error', (err: NodeJS.ErrnoException) => {
    if (HELD.has(err.code ?? '')) resolve(false);
    else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') resolve(true);
    else reject(err);
  });
  server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
});
