/** `cache`: how cached content is trusted and bounded. */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { duration, int, size } from './values.js';

export const cache = section<Config['cache']>('cache', 'always', {
  tagTTL: key(duration, { default: '5m', apply: 'live', doc: 'a cached tag is trusted this long, then revalidated with an upstream HEAD' }),
  maxManifestSize: key(size, { default: '4MiB', apply: 'restart', doc: 'larger upstream manifests are refused (502 `MANIFEST_INVALID`) without being buffered' }),
  // Each reference is an index row (~360 bytes) written on the event loop: 44,500 of them
  // took 1 s to store and 16 MB of index; real images have at most ~128 layers.
  maxManifestReferences: key(int(1), { default: 1000, apply: 'restart', doc: 'an upstream manifest naming more descriptors (config, layers, index children) is refused (502 `MANIFEST_INVALID`), not stored' }),
  maxTagListSize: key(size, { default: '4MiB', apply: 'restart', doc: 'an upstream tags/list answer larger than this is refused (502 `UPSTREAM_ERROR`); clients page with `n` and `last`' }),
});
