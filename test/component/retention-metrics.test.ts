/**
 * Eviction metrics count each batch as a sweep removes it, so a long background sweep (the
 * admission's, src/registry/proxy/admission.ts) is visible while it runs, not only at its end.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { OCI_MANIFEST } from '../../src/protocol/media-types.js';
import { imageParts } from '../contract/repository.contract.js';
import { startProxy, type ProxyHarness } from './proxy-harness.js';

const get = { method: 'GET' as const, accepted: [], acceptHeader: undefined };

describe('retention metrics', () => {
  let h: ProxyHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('regcache_evictions_total grows batch by batch during a sweep', async () => {
    h = await startProxy({ retention: { interval: 0, maxAge: '1h' } });
    for (let i = 0; i < 6; i++) {
      const p = imageParts(`lib/app:t${i}`);
      h.up.putBlob('lib/app', p.config);
      h.up.putBlob('lib/app', p.layer);
      h.up.putManifest('lib/app', p.manifest, OCI_MANIFEST, `t${i}`);
      await h.repo('lib/app').getManifest(`t${i}`, false, get);
    }
    h.clock.now += 2 * 3_600_000;
    await h.app.meta.flush();
    const evictions = async (): Promise<number> => {
      const m = await h!.app.metrics.registry.getSingleMetric('regcache_evictions_total')!.get();
      return m.values.reduce((a, v) => a + v.value, 0);
    };
    // After each batch: the units removed so far, and the counter read then (prom-client reads its values synchronously).
    const during: Array<Promise<[number, number]>> = [];
    let units = 0;
    const plan = await h.app.retention.sweep({
      batch: 2,
      onUnits: (batch) => {
        units += batch.length;
        const sofar = units;
        during.push(evictions().then((n) => [sofar, n]));
      },
    });
    expect(plan.units.length).toBe(6);
    const snapshots = await Promise.all(during);
    expect(snapshots.length).toBeGreaterThanOrEqual(3);
    for (const [sofar, counted] of snapshots) expect(counted).toBe(sofar);
    expect(await evictions()).toBe(6);
  });
});
