/**
 * The tag-freshness decisions of the proxy, as pure functions (a table of cases in
 * test/unit/tag-freshness.test.ts):
 *  - before asking anything: serve the cached tag, revalidate it with a HEAD, or fetch;
 *  - after the HEAD: what the answer means for the cached tag.
 */

export type TagDecision = 'hit' | 'revalidate' | 'fetch';

export interface CachedTagState {
  /** A cached tag whose manifest is cached and acceptable to this client. */
  usable: boolean;
  validatedAt: number;
  immutable: boolean;
}

export function decideTag(cached: CachedTagState | undefined, now: number, ttl: number): TagDecision {
  if (!cached || !cached.usable) return 'fetch';
  if (cached.immutable || now - cached.validatedAt < ttl) return 'hit';
  return 'revalidate';
}

export type RevalidationOutcome =
  /** Upstream confirms the cached digest. */
  | 'same'
  /** The tag moved to a digest that is cached and acceptable: serve it. */
  | 'moved-cached'
  /** Moved to an uncached digest; a client HEAD is answered from the upstream HEAD. */
  | 'moved-answer-head'
  /** Moved to an uncached digest: fetch it (falling back to stale if that fails transiently). */
  | 'moved-fetch'
  /** The upstream failed transiently: serve the cached manifest. */
  | 'stale'
  /** A definite answer (404, denied, ...): pass it on. */
  | 'fail';

export interface RevalidationInput {
  /** The HEAD's status, or 'transient-error' / 'error' when there was no usable answer. */
  status: number | 'transient-error' | 'error';
  transientStatus: boolean;
  current: string | undefined;
  cached: string;
  movedIsCachedAndAcceptable: boolean;
  method: 'GET' | 'HEAD';
  /** The upstream HEAD gave a valid digest and length. */
  headUsable: boolean;
}

export function afterRevalidation(i: RevalidationInput): RevalidationOutcome {
  if (i.status === 'transient-error') return 'stale';
  if (i.status === 'error') return 'fail';
  if (i.status === 200) {
    if (i.current === i.cached) return 'same';
    if (i.movedIsCachedAndAcceptable) return 'moved-cached';
    if (i.method === 'HEAD' && i.headUsable) return 'moved-answer-head';
    return 'moved-fetch';
  }
  return i.transientStatus ? 'stale' : 'fail';
}
