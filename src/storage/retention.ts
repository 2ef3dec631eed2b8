/**
 * Retention: age- and size-based eviction by image, never by loose layer (docs/retention.md).
 *
 * A unit is a top-level manifest with its index children; its recency is the latest pull
 * of any of its manifests (every pull resolves a manifest, so pulls keep images alive,
 * counted from the last pull, not the first fetch). A blob goes only when no retained
 * manifest references it, so a layer shared with a retained image stays. Blobs that no
 * manifest references at all are units of their own. Pinned digests (being served or
 * fetched) are never deleted.
 */
import { rm } from 'node:fs/promises';
import type { IndexDb } from './index-db.js';
import type { Layout } from './layout.js';

export interface RetentionPolicy {
  maxAge?: number | undefined;
  maxSize?: number | undefined;
}

export interface EvictedUnit {
  kind: 'image' | 'blob';
  digest: string;
  reason: 'age' | 'size';
  lastPulledAt: number;
  manifests: string[];
  /** Blobs that this eviction freed (no longer referenced by anything retained). */
  blobs: string[];
  bytes: number;
}

export interface SweepPlan {
  units: EvictedUnit[];
  bytesBefore: number;
  bytesFreed: number;
}

interface Unit {
  kind: 'image' | 'blob';
  digest: string;
  manifests: string[];
  blobs: Set<string>;
  recency: number;
}

export function planSweep(index: IndexDb, policy: RetentionPolicy, now: number, isPinned: (d: string) => boolean, targetSize?: number): SweepPlan {
  index.flushTouches();
  const db = index.db;
  const manifests = new Map<string, { size: number; last: number }>();
  for (const r of db.prepare('SELECT digest, size, last_pulled_at AS last FROM manifests').iterate() as Iterable<{ digest: string; size: number; last: number }>) {
    manifests.set(r.digest, { size: r.size, last: r.last });
  }
  const blobs = new Map<string, { size: number; last: number }>();
  for (const r of db.prepare('SELECT digest, size, last_pulled_at AS last FROM blobs').iterate() as Iterable<{ digest: string; size: number; last: number }>) {
    blobs.set(r.digest, { size: r.size, last: r.last });
  }
  const childManifests = new Map<string, string[]>();
  const blobRefs = new Map<string, string[]>();
  const isChild = new Set<string>();
  for (const r of db.prepare('SELECT manifest, child, kind FROM manifest_refs').iterate() as Iterable<{ manifest: string; child: string; kind: string }>) {
    if (!manifests.has(r.manifest)) continue;
    const map = r.kind === 'manifest' ? childManifests : blobRefs;
    const list = map.get(r.manifest) ?? [];
    list.push(r.child);
    map.set(r.manifest, list);
    if (r.kind === 'manifest' && manifests.has(r.child)) isChild.add(r.child);
  }

  const units: Unit[] = [];
  const referenced = new Set<string>();
  for (const [digest, m] of manifests) {
    if (isChild.has(digest)) continue;
    const unit: Unit = { kind: 'image', digest, manifests: [digest], blobs: new Set(), recency: m.last };
    const stack = [digest];
    const seen = new Set<string>([digest]);
    while (stack.length) {
      const d = stack.pop()!;
      for (const b of blobRefs.get(d) ?? []) { unit.blobs.add(b); referenced.add(b); }
      for (const c of childManifests.get(d) ?? []) {
        const cm = manifests.get(c);
        if (!cm || seen.has(c)) continue;
        seen.add(c);
        unit.manifests.push(c);
        unit.recency = Math.max(unit.recency, cm.last);
        stack.push(c);
      }
    }
    units.push(unit);
  }
  for (const [digest, b] of blobs) {
    if (referenced.has(digest)) continue;
    units.push({ kind: 'blob', digest, manifests: [], blobs: new Set([digest]), recency: b.last });
  }
  units.sort((a, b) => a.recency - b.recency);

  // How many retained units reference each blob, and each manifest (an index child can be
  // shared by several indexes: it goes only with the last of them).
  const refCount = new Map<string, number>();
  for (const u of units) for (const b of u.blobs) refCount.set(b, (refCount.get(b) ?? 0) + 1);
  const manifestRefs = new Map<string, number>();
  for (const u of units) for (const m of u.manifests) manifestRefs.set(m, (manifestRefs.get(m) ?? 0) + 1);

  let total = 0;
  for (const m of manifests.values()) total += m.size;
  for (const b of blobs.values()) total += b.size;
  const bytesBefore = total;
  const evicted: EvictedUnit[] = [];

  const evict = (u: Unit, reason: 'age' | 'size'): void => {
    const freed: string[] = [];
    const freedManifests: string[] = [];
    let bytes = 0;
    for (const m of u.manifests) {
      const n = (manifestRefs.get(m) ?? 1) - 1;
      manifestRefs.set(m, n);
      if (n === 0) {
        freedManifests.push(m);
        bytes += manifests.get(m)?.size ?? 0;
      }
    }
    for (const b of u.blobs) {
      const n = (refCount.get(b) ?? 1) - 1;
      refCount.set(b, n);
      const row = blobs.get(b);
      if (n === 0 && row && !isPinned(b)) {
        freed.push(b);
        bytes += row.size;
      }
    }
    total -= bytes;
    evicted.push({ kind: u.kind, digest: u.digest, reason, lastPulledAt: u.recency, manifests: freedManifests, blobs: freed, bytes });
  };

  const remaining: Unit[] = [];
  for (const u of units) {
    const pinned = u.kind === 'blob' && isPinned(u.digest);
    if (!pinned && policy.maxAge !== undefined && u.recency < now - policy.maxAge) evict(u, 'age');
    else remaining.push(u);
  }
  const limit = targetSize ?? policy.maxSize;
  if (limit !== undefined) {
    for (const u of remaining) {
      if (total <= limit) break;
      if (u.kind === 'blob' && isPinned(u.digest)) continue;
      evict(u, 'size');
    }
  }
  return { units: evicted, bytesBefore, bytesFreed: bytesBefore - total };
}

/**
 * Deletes what a plan names: index rows first (one transaction), then `afterRows` (drop
 * memory caches), then files — each only if no new fill has committed that digest again
 * meanwhile and nobody is reading it.
 */
export async function applySweep(index: IndexDb, layout: Layout, plan: SweepPlan, isPinned: (d: string) => boolean, afterRows: (manifests: string[]) => void = () => undefined): Promise<string[]> {
  const db = index.db;
  const manifests = plan.units.flatMap((u) => u.manifests);
  const blobs = plan.units.flatMap((u) => u.blobs).filter((b) => !isPinned(b));
  const delManifest = db.prepare('DELETE FROM manifests WHERE digest = ?');
  const delRefs = db.prepare('DELETE FROM manifest_refs WHERE manifest = ?');
  const delTags = db.prepare('DELETE FROM tags WHERE digest = ?');
  const delLinks = db.prepare('DELETE FROM repo_links WHERE digest = ?');
  const delBlob = db.prepare('DELETE FROM blobs WHERE digest = ?');
  db.transaction(() => {
    for (const m of manifests) {
      delManifest.run(m);
      delRefs.run(m);
      delTags.run(m);
      delLinks.run(m);
    }
    for (const b of blobs) {
      delBlob.run(b);
      delLinks.run(b);
    }
  })();
  afterRows(manifests);
  for (const b of blobs) {
    if (isPinned(b) || index.blobSize(b) !== undefined) continue;
    await rm(layout.blobPath(b), { force: true });
  }
  return manifests;
}
