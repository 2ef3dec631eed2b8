/**
 * The order eviction candidates are planned in, for every MetadataStore: top-level manifests
 * and loose blobs (each already the oldest `limit` of its kind) merged oldest first, ties
 * by digest, at most `limit`.
 */
export type Candidate =
  | { kind: 'image'; digest: string; recency: number }
  | { kind: 'blob'; digest: string; recency: number; size: number };

export function oldestFirst(
  tops: Array<{ digest: string; recency: number }>, loose: Array<{ digest: string; recency: number; size: number }>, limit: number,
): Candidate[] {
  return [
    ...tops.map((t) => ({ kind: 'image' as const, digest: t.digest, recency: t.recency })),
    ...loose.map((b) => ({ kind: 'blob' as const, digest: b.digest, recency: b.recency, size: b.size })),
  ].sort((a, b) => a.recency - b.recency || (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0)).slice(0, limit);
}
