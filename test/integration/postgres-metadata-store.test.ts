/**
 * The PostgreSQL MetadataStore runs the MetadataStore contract against a real PostgreSQL
 * (Debian's, started by this file on loopback), plus what only a shared database has:
 * replicas migrating at once, and totals written by one replica seen by another.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PostgresMetadataStore } from '../../src/store/postgres/postgres-metadata-store.js';
import { fakeDigest, runMetadataStoreContract } from '../contract/metadata-store.contract.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

let pg: Postgres;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.stop();
});

runMetadataStoreContract('postgres', async () => {
  const url = await pg.createDatabase('contract');
  return { store: new PostgresMetadataStore({ url, touchFlushMs: 60_000 }), cleanup: async () => undefined };
});

it('postgres: replicas starting at once migrate once, and see each other\'s writes and totals', async () => {
  const url = await pg.createDatabase('replicas');
  const stores = [0, 1, 2].map(() => new PostgresMetadataStore({ url, touchFlushMs: 50 }));
  try {
    await Promise.all(stores.map((s) => s.init()));
    expect(await pg.sql('SELECT count(*) FROM regcache_migrations', url.split('/').pop())).toBe('2\n');
    const [a, b, c] = stores as [PostgresMetadataStore, PostgresMetadataStore, PostgresMetadataStore];
    const repo = { upstream: 'docker.io', repo: 'library/app' };
    await a.putBlob(fakeDigest('x'), 1234, repo, 1);
    await b.putTag(repo, 'v1', fakeDigest('m'), 5);
    expect(await c.blobSize(fakeDigest('x'))).toBe(1234);
    expect(await c.getTag(repo, 'v1')).toEqual({ digest: fakeDigest('m'), validatedAt: 5 });
    // Another replica's totals arrive with its next interval.
    const deadline = Date.now() + 10_000;
    while (c.totals().blobBytes !== 1234 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(c.totals()).toEqual({ blobs: 1, blobBytes: 1234, manifests: 0, manifestBytes: 0 });
  } finally {
    for (const s of stores) await s.close();
  }
});

it('postgres: a blob a manifest on another replica references is never removed as loose', async () => {
  const url = await pg.createDatabase('race');
  const a = new PostgresMetadataStore({ url, touchFlushMs: 60_000 });
  const b = new PostgresMetadataStore({ url, touchFlushMs: 60_000 });
  try {
    await a.init();
    await b.init();
    const repo = { upstream: 'docker.io', repo: 'library/app' };
    const layer = fakeDigest('layer');
    await a.putBlob(layer, 100, repo, 1);
    const units = await a.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
    expect(units.map((u) => u.digest)).toEqual([layer]);
    // Simulate the race the reference count can lose: the manifest's reference exists, the count says 0.
    await b.putManifest({ digest: fakeDigest('m'), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, body: Buffer.alloc(10) },
      { blobs: [layer], manifests: [] }, repo, 2);
    await pg.sql(`UPDATE blobs SET refs = 0 WHERE digest = '${layer}'`, url.split('/').pop());
    expect(await a.removeUnits(units, () => false)).toEqual([]);
    expect(await b.blobSize(layer)).toBe(100);
  } finally {
    await a.close();
    await b.close();
  }
});
