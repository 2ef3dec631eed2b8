/** `server`: client-facing connection limits of every listener. */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { duration, int } from './values.js';

export const server = section<Config['server']>('server', 'always', {
  headersTimeout: key(duration, { default: '10s', apply: 'restart', doc: 'a client must send its request headers within this' }),
  requestTimeout: key(duration, { default: '0', defaultDoc: '`0` (off)', apply: 'restart', doc: 'whole-request limit (off: a slow but active download is fine)' }),
  keepAliveTimeout: key(duration, { default: '65s', apply: 'restart', doc: 'idle keep-alive connections are closed after this' }),
  idleTimeout: key(duration, { default: '120s', apply: 'restart', doc: 'a connection with no traffic in either direction for this long is closed' }),
  maxConnections: key(int(1), { default: 4096, apply: 'restart', doc: 'connections across all listeners; at the limit the longest-idle one is closed for a new one, and only when all are busy is the new one refused (503)' }),
  // Read from the running config when the signal arrives (serve.ts), so a reload applies.
  shutdownGrace: key(duration, { default: '30s', apply: 'live', doc: 'on SIGTERM, in-flight responses get this long to finish' }),
  streamStallTimeout: key(duration, { default: '60s', apply: 'restart', doc: 'an HTTP/2 stream whose pending write makes no progress for this long is reset' }),
});
