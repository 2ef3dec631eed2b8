/**
 * Per-upstream tag freshness: tagTTL (override or global) and immutable tags, written in the
 * same tag-pattern syntax as sync jobs (`*`, `?`, `[seq]`; protocol/tag-pattern.ts).
 */
import type { UpstreamConfig } from '../../config/types.js';
import { patternSource } from '../../protocol/tag-pattern.js';
import type { TagPolicy } from './manifest-cache.js';

export function tagPolicy(upstream: UpstreamConfig, defaultTTL: number): TagPolicy {
  const patterns = upstream.immutableTags.map((p) => new RegExp(`^${patternSource(p)}$`));
  return {
    tagTTL: upstream.tagTTL ?? defaultTTL,
    isImmutable: (tag) => patterns.some((p) => p.test(tag)),
  };
}
