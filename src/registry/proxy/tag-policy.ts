/** Per-upstream tag freshness: tagTTL (override or global) and immutable tag globs. */
import type { UpstreamConfig } from '../../config/types.js';
import type { TagPolicy } from './manifest-cache.js';

/** `*` matches any run of characters, `?` one character; everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

export function tagPolicy(upstream: UpstreamConfig, defaultTTL: number): TagPolicy {
  const patterns = upstream.immutableTags.map(globToRegExp);
  return {
    tagTTL: upstream.tagTTL ?? defaultTTL,
    isImmutable: (tag) => patterns.some((p) => p.test(tag)),
  };
}
