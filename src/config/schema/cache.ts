/** `cache`: how cached content is trusted and bounded. */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { duration, size } from './values.js';

export const cache = section<Config['cache']>('cache', 'always', {
  tagTTL: key(duration, { default: '5m', apply: 'live', doc: 'a cached tag is trusted this long, then revalidated with an upstream HEAD' }),
  maxManifestSize: key(size, { default: '4MiB', apply: 'restart', doc: 'larger upstream manifests are refused (502 `MANIFEST_INVALID`) without being buffered' }),
});
