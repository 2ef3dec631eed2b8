/**
 * The SQLite index work that runs off the event loop when it can (index-worker.ts): planning
 * eviction batches, removing their rows, and writing the batched last-pull times. In bench
 * scenario 8 this was most of the event loop a cap-crossing fill cost (eviction ~0.7 of 1.6
 * CPU-s of regcache: warm-hit p99 28-30 ms with it, 16-17 ms without it, same host, same hour).
 *
 * `indexOps` is self-contained on purpose: the worker thread evaluates its source
 * (Function.prototype.toString), so the one implementation runs there and, when there is no
 * worker (`:memory:`, `checkpointMs: 0`, a worker that died), on the main thread. It refers
 * to nothing but its arguments (type imports are erased). Each operation is one transaction.
 */
import type Database from 'better-sqlite3';
import type { Candidate } from '../eviction-order.js';
import type { EvictionUnit } from '../metadata-store.js';
import { digestId, digestKey, digestText } from './digest-sql.js';

/** manifest_refs.kind */
const BLOB = 0;
const MANIFEST = 1;

/** SQL: no hosted repository links the row of `table` being deleted. */
const NOT_HOSTED = (table: string): string => `NOT EXISTS (SELECT 1 FROM repo_links h WHERE h.upstream = 'hosted' AND h.digest = ${table}.digest)`;

export const OPS_SQL = {
  topManifests: `SELECT digest, last_pulled_at AS recency FROM manifests INDEXED BY manifests_top
                 WHERE parents = 0 AND last_pulled_at < ? AND (last_pulled_at, digest) > (?, ?)
                   AND NOT EXISTS (SELECT 1 FROM repo_links h WHERE h.upstream = 'hosted' AND h.digest = manifests.digest)
                 ORDER BY last_pulled_at, digest LIMIT ?`,
  looseBlobs: `SELECT digest, last_pulled_at AS recency, size FROM blobs INDEXED BY blobs_loose
               WHERE refs = 0 AND last_pulled_at < ? AND (last_pulled_at, digest) > (?, ?)
                 AND NOT EXISTS (SELECT 1 FROM repo_links h WHERE h.upstream = 'hosted' AND h.digest = blobs.digest)
               ORDER BY last_pulled_at, digest LIMIT ?`,
  children: `SELECT m.digest, m.size AS size, m.last_pulled_at AS recency FROM manifest_refs r JOIN digest_ids c ON c.id = r.child_id
             JOIN manifests m ON m.digest = ${digestText('c.digest')} WHERE r.manifest_id = ${digestId('?')} AND r.kind = ${MANIFEST}`,
  parentsOf: `SELECT ${digestText('p.digest')} AS manifest FROM manifest_refs r JOIN digest_ids p ON p.id = r.manifest_id
              WHERE r.child_id = ${digestId('?')} AND r.kind = ${MANIFEST}`,
  blobRefs: `SELECT b.digest AS digest, b.size AS size, b.refs AS refs,
               EXISTS (SELECT 1 FROM repo_links h WHERE h.upstream = 'hosted' AND h.digest = b.digest) AS hosted
             FROM manifest_refs r JOIN digest_ids c ON c.id = r.child_id
             JOIN blobs b ON b.digest = ${digestText('c.digest')} WHERE r.manifest_id = ${digestId('?')} AND r.kind = ${BLOB}`,
  referencedBy: `SELECT ${digestText('p.digest')} AS manifest FROM manifest_refs r JOIN digest_ids p ON p.id = r.manifest_id
                 WHERE r.child_id = ${digestId('?')}`,
  manifestSize: 'SELECT size, parents FROM manifests WHERE digest = ?',
  isHosted: "SELECT 1 FROM repo_links WHERE upstream = 'hosted' AND digest = ?",
  // An evicted unit's top-level manifest, or a loose blob unit, only while no pull newer than the one it was planned with has been written.
  // Never what a hosted repository linked since the unit was planned (a push, a mount): pushed content is not the cache's to evict.
  delTopIfNotPulled: `DELETE FROM manifests WHERE digest = ? AND parents = 0 AND last_pulled_at <= ? AND ${NOT_HOSTED('manifests')}`,
  delManifestIfTop: `DELETE FROM manifests WHERE digest = ? AND parents = 0 AND ${NOT_HOSTED('manifests')}`,
  delRefs: `DELETE FROM manifest_refs WHERE manifest_id = ${digestId('?')}`,
  delTags: 'DELETE FROM tags WHERE digest = ?',
  delLinks: 'DELETE FROM repo_links WHERE digest = ?',
  delBlobLinks: 'DELETE FROM repo_links WHERE digest = ? RETURNING upstream, repo',
  delBlobIfLoose: `DELETE FROM blobs WHERE digest = ? AND refs = 0 AND ${NOT_HOSTED('blobs')} RETURNING size, last_pulled_at AS recency`,
  delLooseBlobIfNotPulled: `DELETE FROM blobs WHERE digest = ? AND refs = 0 AND last_pulled_at <= ? AND ${NOT_HOSTED('blobs')}
                            RETURNING size, last_pulled_at AS recency`,
  touchBlob: 'UPDATE blobs SET last_pulled_at = max(last_pulled_at, ?) WHERE digest = ?',
  touchManifest: 'UPDATE manifests SET last_pulled_at = max(last_pulled_at, ?) WHERE digest = ?',
  touchParents: `UPDATE manifests SET last_pulled_at = max(last_pulled_at, ?)
                 WHERE digest IN (SELECT ${digestText('p.digest')} FROM manifest_refs r JOIN digest_ids p ON p.id = r.manifest_id
                                  WHERE r.child_id = ${digestId('?')} AND r.kind = ${MANIFEST})`,
} as const;

export type OpsSql = Record<keyof typeof OPS_SQL, string>;

/** A blob row removeBlobs() deleted: what putting it back would need. */
export interface RemovedBlob {
  digest: string;
  size: number;
  recency: number;
  /** The repositories that linked it: [upstream, repo]. */
  links: Array<[string, string]>;
}

export interface IndexOps {
  /** The next batch of eviction units, oldest first, each planned as if the ones before it were removed. */
  candidates(before: number, limit: number, after: { recency: number; digest: string } | undefined): EvictionUnit[];
  /** Removes the units' manifests (parents first) with their references, tags and links; returns the units kept (pulled since planned). */
  removeImages(units: EvictionUnit[]): string[];
  /**
   * Removes blob rows that are still loose (a loose blob unit's only while no pull newer than
   * its recency, in `looseAt`, was written), skipping `skip`; returns the rows removed.
   */
  removeBlobs(blobs: string[], looseAt: Array<[string, number]>, skip: string[]): RemovedBlob[];
  /** Writes last-pull times (an index child's refresh its parents). */
  writeTouches(batch: Array<[string, number]>): void;
}

type Oldest = (tops: Array<{ digest: string; recency: number }>, loose: Array<{ digest: string; recency: number; size: number }>, limit: number) => Candidate[];

export function indexOps(db: Database.Database, sql: OpsSql, oldestFirst: Oldest): IndexOps {
  const s = {} as Record<keyof OpsSql, Database.Statement>;
  for (const k of Object.keys(sql) as Array<keyof OpsSql>) s[k] = db.prepare(sql[k]);

  /** The manifests and blobs that go with a top-level manifest, given what already goes. */
  const planImage = (digest: string, recency: number, gone: Set<string>): EvictionUnit => {
    const unit: EvictionUnit = { kind: 'image', digest, recency, manifests: [], blobs: [], bytes: 0 };
    // Read until the first manifest that stays: a layer shared by many images costs one row.
    const allGone = (users: Database.Statement, d: string): boolean => {
      for (const u of users.iterate(d) as IterableIterator<{ manifest: string }>) if (!gone.has(u.manifest)) return false;
      return true;
    };
    const stack = [digest];
    const seen = new Set<string>();
    while (stack.length) {
      const m = stack.pop()!;
      if (seen.has(m)) continue;
      seen.add(m);
      if (m !== digest && !allGone(s.parentsOf, m)) continue;
      // Hosted content is never a cache retention unit, nor part of one.
      if (m !== digest && s.isHosted.get(m) !== undefined) continue;
      const row = s.manifestSize.get(m) as { size: number } | undefined;
      if (!row) continue;
      gone.add(m);
      unit.manifests.push(m);
      unit.bytes += row.size;
      for (const c of s.children.all(m) as Array<{ digest: string }>) stack.push(c.digest);
    }
    for (const m of unit.manifests) {
      // Each blob row carries its reference count and whether it is hosted, so a layer only
      // this image uses (refs = 1: the reference is m's) costs no further statement.
      for (const b of s.blobRefs.all(m) as Array<{ digest: string; size: number; refs: number; hosted: number }>) {
        if (b.hosted || gone.has(b.digest)) continue;
        if (b.refs > 1 && !allGone(s.referencedBy, b.digest)) continue;
        gone.add(b.digest);
        unit.blobs.push(b.digest);
        unit.bytes += b.size;
      }
    }
    return unit;
  };

  return {
    candidates(before, limit, after) {
      const from = after ?? { recency: -1, digest: '' };
      const tops = s.topManifests.all(before, from.recency, from.digest, limit) as Array<{ digest: string; recency: number }>;
      const loose = s.looseBlobs.all(before, from.recency, from.digest, limit) as Array<{ digest: string; recency: number; size: number }>;
      // Units in this batch are planned as if removed in order: a child or blob shared by two of them goes with the second.
      const gone = new Set<string>();
      return oldestFirst(tops, loose, limit).map((c): EvictionUnit => (c.kind === 'blob'
        ? { kind: 'blob', digest: c.digest, recency: c.recency, manifests: [], blobs: [c.digest], bytes: c.size }
        : planImage(c.digest, c.recency, gone)));
    },

    removeImages(units) {
      const kept: string[] = [];
      db.transaction(() => {
        for (const u of units) {
          // Parents first: deleting a manifest's refs is what makes its children top-level.
          for (const m of u.manifests) {
            // A pull of the image written since it was planned keeps it (and so its children and blobs).
            const del = m === u.digest ? s.delTopIfNotPulled.run(m, u.recency) : s.delManifestIfTop.run(m);
            if (del.changes === 0) {
              if (m === u.digest) kept.push(m);
              continue;
            }
            s.delRefs.run(m);
            s.delTags.run(m);
            s.delLinks.run(m);
          }
        }
      })();
      return kept;
    },

    removeBlobs(blobs, looseAt, skip) {
      const at = new Map(looseAt);
      const skipped = new Set(skip);
      const removed: RemovedBlob[] = [];
      db.transaction(() => {
        for (const b of blobs) {
          if (skipped.has(b)) continue;
          // A manifest committed meanwhile may reference it again (refs > 0): then it stays.
          const t = at.get(b);
          const row = (t === undefined ? s.delBlobIfLoose.get(b) : s.delLooseBlobIfNotPulled.get(b, t)) as { size: number; recency: number } | undefined;
          if (!row) continue;
          const links = (s.delBlobLinks.all(b) as Array<{ upstream: string; repo: string }>).map((l): [string, string] => [l.upstream, l.repo]);
          removed.push({ digest: b, size: row.size, recency: row.recency, links });
        }
      })();
      return removed;
    },

    writeTouches(batch) {
      db.transaction(() => {
        for (const [digest, t] of batch) {
          s.touchBlob.run(t, digest);
          if (s.touchManifest.run(t, digest).changes > 0) s.touchParents.run(t, digest);
        }
      })();
    },
  };
}
