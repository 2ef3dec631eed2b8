/**
 * Retention sweeps over the two stores (docs/retention.md): age- and size-based eviction
 * by image (a top-level manifest with its index children), never by a loose layer that a
 * retained image uses. Candidates come from the metadata store in bounded batches, oldest
 * first (pull times as last written: a unit pulled since is judged by that pull, see
 * below); each batch is removed (rows in one transaction, then files) before the next is
 * read, and the event loop gets a turn between batches, so a sweep over a large store
 * never stalls requests. Pinned digests (being served or fetched) are never deleted, nor
 * images a sync job holds (a held image keeps its blobs: they stay referenced).
 */
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import type { BlobStore } from './blob-store.js';
import type { EvictionUnit, MetadataStore, PinWatch } from './metadata-store.js';

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
  /** Blobs this eviction freed (no longer referenced by anything retained). */
  blobs: string[];
  bytes: number;
  /** Tags (or repositories) that named the unit, when asked for. */
  names?: string[];
}

export interface SweepCounts {
  units: number;
  images: number;
  age: number;
  size: number;
}

export interface SweepPlan {
  /** Every unit, in order (empty when the sweep ran with `summaryOnly`: see `counts`). */
  units: EvictedUnit[];
  counts: SweepCounts;
  bytesBefore: number;
  bytesFreed: number;
}

export interface SweepOptions {
  dryRun?: boolean;
  /** Evict by size down to this many bytes instead of policy.maxSize. */
  targetSize?: number;
  /** Fill in `names` of each unit (operators' output). */
  withNames?: boolean;
  /** Units per batch at most (default 32; a sweep starts at 1 and grows while batches are cheap). */
  batch?: number;
  /** Told of each batch once it is removed (planned, in a dry run): the CLI prints it as it goes. */
  onUnits?(units: EvictedUnit[]): void;
  /**
   * Keep only `counts`, not every unit (background sweeps: one that evicts 12,000 images would
   * otherwise hold ~20 MB of digests until it ends, and the garbage collector marks them all).
   */
  summaryOnly?: boolean;
  /**
   * The share of the event loop a sweep may take (0 < pace <= 1; default 1: a turn between
   * batches). A server's sweeps run at 0.5: after a batch that cost N ms of event loop the
   * sweep waits N ms, so requests that arrive during a long sweep wait for at most one batch,
   * not for a queue of them (nothing waits for a sweep to finish: commits claim their room).
   */
  pace?: number;
  /** Stops the sweep after the batch in progress (a server shutting down does not wait for a long sweep). */
  signal?: AbortSignal;
}

export interface EvictionDeps {
  /** Where freed blobs are deleted (replicas: after a grace period, replicas/grace-deletes.ts). */
  blobs: Pick<BlobStore, 'delete'>;
  meta: MetadataStore;
  isPinned(digest: string): boolean;
  /** Pins seen from a moment on (Pins.watch()), so a store that removes rows on another thread can keep what was pinned meanwhile. */
  watchPins?(): PinWatch;
  /** Images (top-level manifest digests) a sync job holds: never evicted while held. */
  isHeld?(digest: string): boolean;
  /**
   * Marks a blob whose file is about to be deleted; the returned function unmarks it
   * (Pins.markDeleting): a push or fill committing the same digest meanwhile waits until the
   * file is gone, then renames its own into place (it is not deleted after it).
   */
  markDeleting?(digest: string): () => void;
  /** Called with the manifests whose rows were removed (memory caches drop them). */
  onRemoved?(manifests: string[]): void;
}

/**
 * Units per batch at most. Each unit's removal is ~100 statements (rows, references, the
 * triggers that keep totals), more for images with many layers; planning and removing a
 * batch run on the event loop. The batch adapts to what a batch costs here: halved when
 * planning or removing one took more than BATCH_BUDGET_MS, grown back when it took less than
 * a quarter of it, so a sweep over a store of 300k blobs never stalls requests for long
 * (bench scenario 8), whatever the images look like and however busy the machine is. A sweep
 * starts at the smallest batch: its first batch finds the store's pages cold (a first batch
 * of 32 took 200 ms in scenario 8), and sweeps start often (each fill that crosses the cap).
 * At 300k blobs one image unit of 15 layers costs ~5 ms (most of it the transaction's commit
 * writing the B-tree pages its random digests touch to the WAL), so the smallest batch is one.
 */
const BATCH = 32;
const MIN_BATCH = 1;
const BATCH_BUDGET_MS = 8;

/** The next batch size after one that cost `ms` of event loop. */
export function nextBatch(current: number, ms: number, max: number): number {
  if (ms > BATCH_BUDGET_MS) return Math.max(MIN_BATCH, Math.floor(current / 2));
  if (ms < BATCH_BUDGET_MS / 4) return Math.min(max, current * 2);
  return current;
}
const MIN_PACE = 0.05;
/** The longest pause between two batches of a paced sweep. */
const MAX_REST_MS = 100;
/** How long a sweep running at `pace` rests after a batch that took `spentMs` of event loop. */
export function restAfter(spentMs: number, pace: number): number {
  if (pace >= 1) return 0;
  return Math.min(MAX_REST_MS, (spentMs * (1 - pace)) / pace);
}

/** Blob files deleted at once. */
const DELETE_CONCURRENCY = 16;

function used(meta: MetadataStore): number {
  const t = meta.totals();
  return t.blobBytes + t.manifestBytes;
}

export async function sweep(d: EvictionDeps, policy: RetentionPolicy, now: number, opts: SweepOptions = {}): Promise<SweepPlan> {
  const bytesBefore = used(d.meta);
  const units: EvictedUnit[] = [];
  const counts: SweepCounts = { units: 0, images: 0, age: 0, size: 0 };
  let planned = bytesBefore;
  const maxBatch = opts.batch ?? BATCH;
  const pace = Math.min(1, Math.max(MIN_PACE, opts.pace ?? 1));
  let batch = Math.min(MIN_BATCH, maxBatch);
  // A dry run removes nothing, so the size phase sees again what the age phase planned.
  const plannedDigests = new Set<string>();

  /** Whether a unit has an unwritten pull at or after `since` (any, without `since`). */
  const pulledSince = (u: EvictionUnit, since: number | undefined): boolean =>
    [u.digest, ...u.manifests].some((m) => {
      const at = d.meta.unflushedPull(m);
      return at !== undefined && (since === undefined || at >= since);
    });

  const run = async (reason: 'age' | 'size', before: number, enough: () => boolean): Promise<void> => {
    let after: { recency: number; digest: string } | undefined;
    while (!enough() && !opts.signal?.aborted) {
      let t0 = performance.now();
      const found = await d.meta.evictionCandidates(after ? { before, limit: batch, after } : { before, limit: batch });
      let cost = performance.now() - t0;
      let spent = cost;
      if (found.length === 0) return;
      const last = found[found.length - 1]!;
      after = { recency: last.recency, digest: last.digest };
      const take: EvictionUnit[] = [];
      for (const u of found) {
        if (enough()) break;
        if (u.kind === 'blob' && d.isPinned(u.digest)) continue;
        if (u.kind === 'image' && d.isHeld?.(u.digest)) continue;
        // Pulled since the metadata store last wrote pull times: judged by that pull, not by
        // the row (a flush per batch, as before, was most of a sweep's event-loop time in bench
        // scenario 8: the hot images' pull times, written again before every batch). By age it
        // stays when that pull is recent enough; by size it goes last: skipped by this sweep.
        if (pulledSince(u, reason === 'age' ? before : undefined)) continue;
        if (opts.dryRun) {
          if (plannedDigests.has(u.digest)) continue;
          plannedDigests.add(u.digest);
        }
        take.push(u);
        planned -= u.bytes;
      }
      if (take.length === 0) continue;
      const evicted = take.map((u): EvictedUnit => ({
        kind: u.kind, digest: u.digest, reason, lastPulledAt: u.recency, manifests: u.manifests, blobs: u.blobs, bytes: u.bytes,
      }));
      if (opts.withNames) {
        const names = await d.meta.namesOf(evicted.map((u) => u.digest));
        evicted.forEach((u, i) => { u.names = names[i]!.names; });
      }
      // What went: a unit the store kept (pulled since it was planned, pinned meanwhile) is not reported.
      let went = evicted;
      if (!opts.dryRun) {
        t0 = performance.now();
        const stayed = new Set<string>();
        const removed = await d.meta.removeUnits(take, (b) => d.isPinned(b), (u) => stayed.add(u), d.watchPins && (() => d.watchPins!()));
        if (stayed.size) went = evicted.filter((u) => !stayed.has(u.digest));
        cost = Math.max(cost, performance.now() - t0);
        spent += performance.now() - t0;
        d.onRemoved?.(take.flatMap((u) => u.manifests));
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < removed.length) {
            const b = removed[next++]!;
            // Marked before the last check: a commit of the same digest from here on waits for the delete.
            const unmark = d.markDeleting?.(b);
            try {
              // Deleted unless served or fetched again meanwhile (a new fill may have re-committed it).
              if (d.isPinned(b) || (await d.meta.blobSize(b)) !== undefined) continue;
              await d.blobs.delete(b);
            } finally {
              unmark?.();
            }
          }
        };
        await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, removed.length) }, worker));
        planned = used(d.meta);
      }
      if (!opts.summaryOnly) units.push(...went);
      for (const u of went) {
        counts.units++;
        if (u.kind === 'image') counts.images++;
        counts[u.reason]++;
      }
      opts.onUnits?.(went);
      batch = nextBatch(batch, cost, maxBatch);
      const rest = restAfter(spent, pace);
      if (rest >= 1) await sleep(rest);
      else await turn();
    }
  };

  if (policy.maxAge !== undefined) await run('age', now - policy.maxAge, () => false);
  const limit = opts.targetSize ?? policy.maxSize;
  if (limit !== undefined) await run('size', Number.MAX_SAFE_INTEGER, () => planned <= limit);
  const bytesFreed = opts.dryRun ? bytesBefore - planned : Math.max(0, bytesBefore - used(d.meta));
  return { units, counts, bytesBefore, bytesFreed };
}
