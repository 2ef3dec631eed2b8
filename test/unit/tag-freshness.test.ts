/** The proxy's tag-freshness decisions, as a table of cases. */
import { describe, expect, it } from 'vitest';
import { afterRevalidation, decideTag, type RevalidationInput } from '../../src/registry/proxy/tag-freshness.js';

const TTL = 300_000;
const NOW = 10_000_000;

describe('decideTag', () => {
  it.each([
    ['nothing cached', undefined, 'fetch'],
    ['cached but not usable (manifest gone or not acceptable)', { usable: false, validatedAt: NOW, immutable: false }, 'fetch'],
    ['fresh', { usable: true, validatedAt: NOW - TTL + 1, immutable: false }, 'hit'],
    ['exactly at the TTL', { usable: true, validatedAt: NOW - TTL, immutable: false }, 'revalidate'],
    ['expired', { usable: true, validatedAt: NOW - TTL - 1, immutable: false }, 'revalidate'],
    ['expired but immutable', { usable: true, validatedAt: 0, immutable: true }, 'hit'],
    ['immutable but not usable', { usable: false, validatedAt: 0, immutable: true }, 'fetch'],
  ] as const)('%s -> %s', (_label, cached, want) => {
    expect(decideTag(cached, NOW, TTL)).toBe(want);
  });
});

describe('afterRevalidation', () => {
  const base: RevalidationInput = {
    status: 200, transientStatus: false, current: 'sha256:a', cached: 'sha256:a', movedIsCachedAndAcceptable: false, method: 'GET', headUsable: true,
  };
  it.each([
    ['same digest', {}, 'same'],
    ['moved to a cached, acceptable digest', { current: 'sha256:b', movedIsCachedAndAcceptable: true }, 'moved-cached'],
    ['moved, not cached, client HEAD with a usable upstream HEAD', { current: 'sha256:b', method: 'HEAD' }, 'moved-answer-head'],
    ['moved, not cached, client HEAD but the upstream HEAD lacks a length', { current: 'sha256:b', method: 'HEAD', headUsable: false }, 'moved-fetch'],
    ['moved, not cached, client GET', { current: 'sha256:b' }, 'moved-fetch'],
    ['200 without a digest', { current: undefined }, 'moved-fetch'],
    ['no answer, transient (down, timeout, reset)', { status: 'transient-error' }, 'stale'],
    ['no answer, not transient (redirect refused, auth)', { status: 'error' }, 'fail'],
    ['429', { status: 429, transientStatus: true }, 'stale'],
    ['503', { status: 503, transientStatus: true }, 'stale'],
    ['404', { status: 404 }, 'fail'],
    ['403', { status: 403 }, 'fail'],
  ] as const)('%s -> %s', (_label, change, want) => {
    expect(afterRevalidation({ ...base, ...change } as RevalidationInput)).toBe(want);
  });
});
