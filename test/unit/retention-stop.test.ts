/** A server's stop does not wait for a long sweep: the sweep ends after its current batch (src/store/retention-service.ts). */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import type { EvictionUnit, MetadataStore } from '../../src/store/metadata-store.js';
import { RetentionService, SERVER_PACE } from '../../src/store/retention-service.js';

/** A store far above maxSize whose every batch frees 1 byte of 1,000,000: a sweep of a million batches. */
function endlessStore(): { meta: MetadataStore; batches: () => number } {
  let used = 1_000_000;
  let n = 0;
  let batches = 0;
  const meta = {
    totals: () => ({ blobBytes: used, manifestBytes: 0, blobs: 0, manifests: 0 }),
    evictionCandidates: async ({ limit }: { limit: number }): Promise<EvictionUnit[]> =>
      Array.from({ length: limit }, () => ({ kind: 'blob' as const, digest: `sha256:${String(n++).padStart(64, '0')}`, recency: n, manifests: [], blobs: [], bytes: 1 })),
    removeUnits: async (units: EvictionUnit[]) => {
      batches++;
      used -= units.length;
      // A batch that costs a few ms of event loop, as at 300k blobs.
      const until = performance.now() + 3;
      while (performance.now() < until) { /* busy */ }
      return [];
    },
    blobSize: async () => undefined,
    unflushedPull: () => undefined,
  } as unknown as MetadataStore;
  return { meta, batches: () => batches };
}

describe('RetentionService.stop', () => {
  it('ends a long paced sweep after its current batch, and a later start sweeps again', async () => {
    const store = endlessStore();
    const config = { retention: { maxSize: 1, interval: 0 } } as unknown as Config;
    const svc = new RetentionService(config, { blobs: { delete: async () => undefined }, meta: store.meta, isPinned: () => false }, pino({ level: 'silent' }), { removed: () => undefined, evicted: () => undefined }, () => Date.now());
    await svc.start();
    const sweeping = svc.sweep({ summaryOnly: true, pace: SERVER_PACE });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    await svc.stop();
    const plan = await sweeping;
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(plan.counts.units).toBeGreaterThan(0);
    expect(plan.counts.units).toBeLessThan(1_000_000);
    const before = store.batches();
    // Started again (an App restarted in-process), it sweeps again until told to stop.
    await svc.start();
    const again = svc.sweep({ summaryOnly: true, pace: SERVER_PACE });
    await new Promise((r) => setTimeout(r, 50));
    await svc.stop();
    await again;
    expect(store.batches()).toBeGreaterThan(before);
  });
});
