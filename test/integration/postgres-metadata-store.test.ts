/**
 * The PostgreSQL MetadataStore runs the MetadataStore contract against a real PostgreSQL
 * (Debian's, started by this file on loopback), plus what only a shared database has:
 * replicas migrating at once, totals written by one replica seen by another, references
 * added on one replica while another removes them; and the migration of a v2 database to
 * interned references (v3).
 */
import type pgTypes from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { digestKey } from '../../src/store/postgres/digest-key.js';
import { createPool } from '../../src/store/postgres/pool.js';
import { PostgresMetadataStore } from '../../src/store/postgres/postgres-metadata-store.js';
import { MIGRATIONS } from '../../src/store/postgres/schema.js';
import { fakeDigest, runMetadataStoreContract } from '../contract/metadata-store.contract.js';
import { expectMigratedAsWritten, writeScene, writeV2Rows, type SceneRows, type V2Rows } from '../contract/references-scene.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

let pg: Postgres;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.stop();
});

/** Interned digests, those no reference names, and references naming an id that is gone (must never be). */
const INTERNED = `SELECT count(*) AS total,
  count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.manifest_id = d.id) AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child_id = d.id)) AS unreferenced,
  (SELECT count(*) FROM manifest_refs r WHERE NOT EXISTS (SELECT 1 FROM digest_ids x WHERE x.id = r.manifest_id)
                                           OR NOT EXISTS (SELECT 1 FROM digest_ids x WHERE x.id = r.child_id)) AS dangling
  FROM digest_ids d`;

async function interned(q: pgTypes.Pool): Promise<{ total: number; unreferenced: number }> {
  const { rows } = await q.query<{ total: number; unreferenced: number; dangling: number }>(INTERNED);
  expect(rows[0]!.dangling).toBe(0);
  return { total: rows[0]!.total, unreferenced: rows[0]!.unreferenced };
}

runMetadataStoreContract('postgres', async () => {
  const url = await pg.createDatabase('contract');
  const store = new PostgresMetadataStore({ url, touchFlushMs: 60_000 });
  return { store, cleanup: async () => undefined, internedDigests: () => interned(store.pool) };
});

it('postgres: replicas starting at once migrate once, and see each other\'s writes and totals', async () => {
  const url = await pg.createDatabase('replicas');
  const stores = [0, 1, 2].map(() => new PostgresMetadataStore({ url, touchFlushMs: 50 }));
  try {
    await Promise.all(stores.map((s) => s.init()));
    expect(await pg.sql('SELECT count(*) FROM regcache_migrations', url.split('/').pop())).toBe(`${MIGRATIONS.length}\n`);
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

it('postgres: a reference count left short by two replicas racing (the blob inserted while a manifest naming it commits) never goes below zero: the blob goes with its last image', async () => {
  const url = await pg.createDatabase('clamp');
  const s = new PostgresMetadataStore({ url, touchFlushMs: 60_000 });
  try {
    await s.init();
    const repo = { upstream: 'docker.io', repo: 'library/app' };
    const layer = fakeDigest('clamped-layer');
    const man = (name: string) => ({ digest: fakeDigest(`m:${name}`), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, body: Buffer.alloc(10, name) });
    const first = man('clamped-first');
    const second = man('clamped-second');
    await s.putBlob(layer, 100, repo, 1);
    await s.putManifest(first, { blobs: [layer], manifests: [] }, repo, 1);
    await s.putManifest(second, { blobs: [layer], manifests: [] }, repo, 2);
    // What the race leaves: two references, one counted.
    await s.pool.query('UPDATE blobs SET refs = 1 WHERE digest = $1', [layer]);
    const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
    expect(units.map((u) => u.digest)).toEqual([first.digest, second.digest]);
    // The first image goes; the layer, still referenced by the second, stays (count 0 now, one short).
    expect(await s.removeUnits(units.slice(0, 1), () => false)).toEqual([]);
    expect(await s.blobSize(layer)).toBe(100);
    // The second image goes with the layer: the count stays 0 (before v4 it went to -1, and the
    // layer stayed, never a candidate again).
    const again = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
    const last = again.find((u) => u.digest === second.digest)!;
    expect(last.blobs).toEqual([layer]);
    expect(await s.removeUnits([last], () => false)).toEqual([layer]);
    expect(await s.blobSize(layer)).toBeUndefined();
    expect(s.totals()).toMatchObject({ blobs: 0, manifests: 0 });
  } finally {
    await s.close();
  }
});

it('postgres: a blob put back after eviction (pinned meanwhile) while a manifest naming it commits keeps an exact reference count', async () => {
  const url = await pg.createDatabase('restore');
  const s = new PostgresMetadataStore({ url, touchFlushMs: 60_000 });
  const repo = { upstream: 'docker.io', repo: 'library/app' };
  const man = (name: string) => ({ digest: fakeDigest(`m:${name}`), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, body: Buffer.alloc(10, name) });
  try {
    await s.init();
    // Without the restore taking the removal's lock, 6-12 of 20 tries left refs 0 (then -1: never evictable again).
    for (let i = 0; i < 20; i++) {
      const layer = fakeDigest(`restored-layer-${i}`);
      const first = man(`restored-first-${i}`);
      const second = man(`restored-second-${i}`);
      await s.putBlob(layer, 100, repo, 1);
      await s.putManifest(first, { blobs: [layer], manifests: [] }, repo, 1);
      const units = (await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 100 })).filter((u) => u.digest === first.digest);
      // The layer was served during the removal (a watched pin), and a pull of another image sharing it commits its manifest right then.
      let put: Promise<void> | undefined;
      const watchPins = () => ({
        pinned: (d: string) => {
          if (d === layer && !put) put = s.putManifest(second, { blobs: [layer], manifests: [] }, repo, 5);
          return d === layer;
        },
        end: () => undefined,
      });
      expect(await s.removeUnits(units, () => false, undefined, watchPins)).toEqual([]);
      await put;
      expect((await s.pool.query('SELECT refs FROM blobs WHERE digest = $1', [layer])).rows[0]?.refs).toBe(1);
    }
  } finally {
    await s.close();
  }
});

it('postgres: a digest another replica\'s uncommitted manifest names is not forgotten when its last committed reference goes', async () => {
  const url = await pg.createDatabase('intern');
  const a = new PostgresMetadataStore({ url, touchFlushMs: 60_000 });
  const b = new PostgresMetadataStore({ url, touchFlushMs: 60_000 });
  const blocker = createPool({ url, max: 1 });
  const hold = await blocker.connect();
  try {
    await a.init();
    await b.init();
    const repo = { upstream: 'docker.io', repo: 'library/app' };
    const layer = fakeDigest('layer both name');
    const manifest = (name: string): { digest: string; mediaType: string; size: number; body: Buffer } =>
      ({ digest: fakeDigest(name), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: name.length, body: Buffer.from(name) });
    const old = manifest('old');
    const fresh = manifest('new');
    await a.putManifest(old, { blobs: [layer], manifests: [] }, repo, 1);
    // Today the totals row serializes these writers too (a manifest insert and a manifest delete
    // both update it): without its triggers, the digest lock alone must keep this safe.
    await hold.query('DROP TRIGGER totals_manifests ON manifests; DROP TRIGGER totals_blobs ON blobs');
    // Replica a's next manifest stops before its commit, its references written: its repository
    // link waits for a row this transaction holds.
    await hold.query('BEGIN');
    await hold.query('INSERT INTO repo_links (upstream, repo, digest) VALUES ($1, $2, $3)', [repo.upstream, repo.repo, fresh.digest]);
    const put = a.putManifest(fresh, { blobs: [layer], manifests: [] }, repo, 2);
    await new Promise((r) => setTimeout(r, 500));
    // Meanwhile replica b evicts the old manifest, the last committed reference to the layer.
    const units = await b.evictionCandidates({ before: 2, limit: 10 });
    expect(units.map((u) => u.digest)).toEqual([old.digest]);
    const removal = b.removeUnits(units, () => false);
    await Promise.race([removal, new Promise((r) => setTimeout(r, 1000))]);
    await hold.query('ROLLBACK');
    await put;
    await removal;
    expect(await interned(a.pool)).toEqual({ total: 2, unreferenced: 0 });
    const { rows } = await a.pool.query<{ naming: number }>(
      `SELECT count(*) AS naming FROM manifest_refs r JOIN digest_ids d ON d.id = r.child_id WHERE d.digest = regcache_digest_key($1)`, [layer],
    );
    expect(rows[0]!.naming).toBe(1);
  } finally {
    hold.release();
    await blocker.end();
    await a.close();
    await b.close();
  }
});

it('postgres: a manifest\'s references are keyed in the store as regcache_digest_key keys them, and keys read back as the digest', async () => {
  const url = await pg.createDatabase('keys');
  const s = new PostgresMetadataStore({ url });
  try {
    await s.init();
    const digests = [fakeDigest('a'), `sha512:${'cd'.repeat(64)}`, `sha256:${'AB'.repeat(32)}`, `sha384:${'ab'.repeat(48)}`, 'sha256:short',
      `sha256:${'ab'.repeat(31)}zz`, 'not a digest', 'ünïcödé', '\\x00', ''];
    const { rows } = await s.pool.query<{ d: string; key: Buffer; back: string }>(
      'SELECT d, regcache_digest_key(d) AS key, regcache_digest_text(regcache_digest_key(d)) AS back FROM unnest($1::text[]) WITH ORDINALITY AS t(d, n) ORDER BY n', [digests],
    );
    expect(rows.map((r) => r.back)).toEqual(digests);
    expect(rows.map((r) => r.key.toString('hex'))).toEqual(digests.map((d) => digestKey(d).toString('hex')));
    expect(new Set(rows.map((r) => r.key.toString('hex'))).size).toBe(digests.length);
    expect(digestKey(fakeDigest('a'))).toHaveLength(33);
  } finally {
    await s.close();
  }
});

/** A database at schema v2 with its regcache_migrations rows, as the v2 store left it. */
async function v2Database(prefix: string): Promise<{ url: string; pool: pgTypes.Pool }> {
  const url = await pg.createDatabase(prefix);
  const pool = createPool({ url, max: 1 });
  await pool.query('CREATE TABLE regcache_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
  for (const [v, sql] of MIGRATIONS.slice(0, 2).entries()) {
    await pool.query(sql);
    await pool.query('INSERT INTO regcache_migrations (version, applied_at) VALUES ($1, 0)', [v + 1]);
  }
  let n = 0;
  await writeV2Rows(async (sql, params) => void await pool.query(sql.replace(/\?/g, () => `$${++n}`), params).finally(() => { n = 0; }));
  return { url, pool };
}

async function rows(q: pgTypes.Pool): Promise<SceneRows> {
  return {
    refs: (await q.query('SELECT digest, refs FROM blobs ORDER BY digest')).rows,
    parents: (await q.query('SELECT digest, parents FROM manifests ORDER BY digest')).rows,
    references: (await q.query(`SELECT regcache_digest_text(p.digest) COLLATE "C" AS manifest, regcache_digest_text(c.digest) COLLATE "C" AS child, r.kind
                                FROM manifest_refs r JOIN digest_ids p ON p.id = r.manifest_id JOIN digest_ids c ON c.id = r.child_id ORDER BY 1, 2`)).rows,
    interned: await interned(q),
  };
}

it('postgres: a v2 database migrates in place and answers every query as one written by v3 does, before and after evictions and GC', async () => {
  const v2 = await v2Database('v2');
  const v2Rows: V2Rows = {
    references: (await v2.pool.query('SELECT manifest, child, kind FROM manifest_refs ORDER BY 1, 2')).rows,
    refs: (await v2.pool.query('SELECT digest, refs FROM blobs ORDER BY digest')).rows,
    parents: (await v2.pool.query('SELECT digest, parents FROM manifests ORDER BY digest')).rows,
  };
  const migrated = new PostgresMetadataStore({ url: v2.url, touchFlushMs: 60_000 });
  const written = new PostgresMetadataStore({ url: await pg.createDatabase('v3'), touchFlushMs: 60_000 });
  try {
    await migrated.init();
    expect((await v2.pool.query('SELECT max(version) AS v FROM regcache_migrations')).rows[0].v).toBe(MIGRATIONS.length);
    await written.init();
    await writeScene(written);
    await expectMigratedAsWritten(v2Rows, { store: migrated, rows: () => rows(migrated.pool) }, { store: written, rows: () => rows(written.pool) });
  } finally {
    await migrated.close();
    await written.close();
    await v2.pool.end();
  }
});

it('postgres: a migration that fails leaves the v2 database as it was', async () => {
  const v2 = await v2Database('v2fail');
  try {
    await v2.pool.query('CREATE TABLE manifest_refs_v2 (x INTEGER)');
    const s = new PostgresMetadataStore({ url: v2.url });
    await expect(s.init()).rejects.toThrow(/manifest_refs_v2/);
    await s.close();
    expect((await v2.pool.query('SELECT max(version) AS v FROM regcache_migrations')).rows[0].v).toBe(2);
    expect((await v2.pool.query("SELECT count(*) AS n FROM manifest_refs WHERE kind = 'blob'")).rows[0].n).toBe(10);
    expect((await v2.pool.query("SELECT to_regclass('digest_ids') AS t")).rows[0].t).toBeNull();
  } finally {
    await v2.pool.end();
  }
});
