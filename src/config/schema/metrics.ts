/** `metrics`: where `/metrics` is served. */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { hostPort } from './values.js';

export const metrics = section<Config['metrics']>('metrics', 'always', {
  listen: key(hostPort, { apply: 'restart', doc: 'serve `/metrics` on this separate `HOST:PORT` instead of the main listener; must not clash with `listen` or an upstream port' }),
});
