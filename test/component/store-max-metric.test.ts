/**
 * regcache_store_max_bytes (issue 14): the alert "store near maxSize" and the dashboard's
 * store fill divide the store's bytes by it, so it carries retention.maxSize, and 0 when the
 * store has no limit (the alert ignores 0).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, type ProxyHarness } from './proxy-harness.js';

describe('regcache_store_max_bytes', () => {
  let h: ProxyHarness | undefined;
  afterEach(async () => h?.close());
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${h!.app.mainPort}/metrics`)).text();

  it('is retention.maxSize in bytes', async () => {
    h = await startProxy({ retention: { interval: 0, maxSize: '3MiB' } });
    expect(await metrics()).toMatch(/^regcache_store_max_bytes 3145728$/m);
  });

  it('is 0 when the store has no size limit', async () => {
    h = await startProxy({ retention: { interval: 0 } });
    expect(await metrics()).toMatch(/^regcache_store_max_bytes 0$/m);
  });
});
