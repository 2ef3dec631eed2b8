/** `upstreamTimeouts` and `upstreamHealth`: how every upstream client behaves. Clients are built at start. */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { duration, int } from './values.js';

export const upstreamTimeouts = section<Config['upstreamTimeouts']>('upstreamTimeouts', 'always', {
  connect: key(duration, { default: '10s', apply: 'restart', doc: 'TCP/TLS connect timeout to an upstream' }),
  headers: key(duration, { default: '30s', apply: 'restart', doc: 'time to the upstream\'s response headers' }),
  idle: key(duration, { default: '30s', apply: 'restart', doc: 'longest pause between two body chunks from an upstream' }),
  manifestTotal: key(duration, { default: '30s', apply: 'restart', doc: 'whole-answer deadline (headers and body, token included) for manifests, referrers, tag lists and tokens; 0 = none' }),
});

export const upstreamHealth = section<Config['upstreamHealth']>('upstreamHealth', 'always', {
  maxFails: key(int(1), { default: 3, apply: 'restart', doc: 'consecutive failures (connect errors, timeouts, 5xx, 429) before an upstream is marked down' }),
  failTimeout: key(duration, { default: '10s', apply: 'restart', doc: 'how long a down upstream fails fast before one probe request is let through' }),
});
