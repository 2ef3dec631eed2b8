/** Top-level scalar keys. */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { hostPort, oneOf, str } from './values.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const root = section<Pick<Config, 'listen' | 'dataDir' | 'logLevel' | 'logFormat' | 'defaultUpstream'>>('', 'root', {
  listen: key(hostPort, { default: '0.0.0.0:5000', apply: 'restart', doc: 'main listener `HOST:PORT` (`[::1]:5000` for IPv6)' }),
  dataDir: key(str, { default: './data', apply: 'restart', doc: 'store and index ([storage.md](storage.md))' }),
  logLevel: key(oneOf(LOG_LEVELS), { default: 'info', apply: 'restart', doc: LOG_LEVELS.map((l) => `\`${l}\``).join(', ') }),
  logFormat: key(oneOf(['json', 'pretty', 'auto'] as const), { default: 'auto', apply: 'restart', doc: '`json`, `pretty`, or `auto` (pretty on a terminal)' }),
  // Must name a configured upstream: checked in validate.ts, which sees both keys.
  defaultUpstream: key(str, { apply: 'live', doc: 'upstream for requests with no `ns` and no host prefix; must be a configured upstream' }),
});
