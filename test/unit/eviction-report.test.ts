/** A sweep reports only the units that went: one the store kept (removeUnits' `kept`) is not counted (src/store/eviction.ts). */
import { describe, expect, it } from 'vitest';
import { sweep, type EvictedUnit } from '../../src/store/eviction.js';
import type { EvictionUnit, MetadataStore } from '../../src/store/metadata-store.js';
import { Pins } from '../../src/registry/proxy/pins.js';

const digest = (n: number): string => `sha256:${String(n).padStart(64, '0')}`;

/** Three loose-blob units of 10 bytes; removeUnits keeps the second (as if pulled since it was planned). */
function store(): MetadataStore {
  let units: EvictionUnit[] = [1, 2, 3].map((n) => ({ kind: 'blob', digest: digest(n), recency: n, manifests: [], blobs: [digest(n)], bytes: 10 }));
  return {
    totals: () => ({ blobBytes: units.length * 10, manifestBytes: 0, blobs: units.length, manifests: 0 }),
    evictionCandidates: async ({ limit, after }: { limit: number; after?: { recency: number } }) => units.filter((u) => u.recency > (after?.recency ?? -1)).slice(0, limit),
    removeUnits: async (take: EvictionUnit[], _keep: unknown, kept?: (u: string) => void) => {
      const removed: string[] = [];
      for (const u of take) {
        if (u.digest === digest(2)) kept?.(u.digest);
        else removed.push(u.digest);
      }
      units = units.filter((u) => !removed.includes(u.digest));
      return removed;
    },
    blobSize: async () => undefined,
    unflushedPull: () => undefined,
  } as unknown as MetadataStore;
}

describe('sweep report', () => {
  it('a unit the store kept is neither in the units, nor counted, nor passed to onUnits', async () => {
    const told: EvictedUnit[] = [];
    const deleted: string[] = [];
    const plan = await sweep({ blobs: { delete: async (d: string) => { deleted.push(d); } }, meta: store(), isPinned: () => false }, { maxSize: 0 }, 100, { onUnits: (u) => told.push(...u) });
    expect(plan.units.map((u) => u.digest)).toEqual([digest(1), digest(3)]);
    expect(plan.counts).toEqual({ units: 2, images: 0, age: 0, size: 2 });
    expect(told.map((u) => u.digest)).toEqual([digest(1), digest(3)]);
    expect(deleted.sort()).toEqual([digest(1), digest(3)]);
    expect(plan.bytesFreed).toBe(20);
  });

  it('a dry run reports every planned unit (nothing is removed, nothing kept)', async () => {
    const plan = await sweep({ blobs: { delete: async () => undefined }, meta: store(), isPinned: () => false }, { maxSize: 0 }, 100, { dryRun: true });
    expect(plan.units.map((u) => u.digest)).toEqual([digest(1), digest(2), digest(3)]);
  });

  it('a blob file is deleted under a deletion mark taken before the last check: a commit of the digest waits for it (Pins)', async () => {
    const pins = new Pins();
    const events: string[] = [];
    let finishDelete!: () => void;
    const deleting = new Promise<void>((r) => { finishDelete = r; });
    const plan = sweep({
      blobs: {
        delete: async (d: string) => {
          if (d !== digest(1)) return;
          events.push('delete started');
          await deleting;
          events.push('file gone');
        },
      },
      meta: store(),
      isPinned: (d) => pins.has(d),
      markDeleting: (d) => {
        pins.markDeleting(d);
        return () => pins.unmarkDeleting(d);
      },
    }, { maxSize: 0 }, 100);
    while (!events.includes('delete started')) await new Promise((r) => setImmediate(r));
    // A push of the same digest now: it pins, waits for deletions in flight, then renames its file into place.
    const release = pins.pin(digest(1));
    const commit = pins.settled(digest(1)).then(() => events.push('commit renames'));
    await new Promise((r) => setTimeout(r, 20));
    expect(events).toEqual(['delete started']);
    finishDelete();
    await commit;
    release();
    await plan;
    expect(events).toEqual(['delete started', 'file gone', 'commit renames']);
  });
});
