/**
 * The SQLite MetadataStore runs the MetadataStore contract twice: with its index worker
 * (eviction and pull times on a thread, index-worker.ts) and without (`checkpointMs: 0`, the
 * same operations on the main thread); plus its migration from the v1 schema.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { SqliteMetadataStore } from '../../src/store/sqlite/sqlite-metadata-store.js';
import { fakeDigest, runMetadataStoreContract } from '../contract/metadata-store.contract.js';

/** Interned digests in an index file, and those no reference names (read on a second connection). */
function internedDigests(file: string): { total: number; unreferenced: number } {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT count(*) AS total, coalesce(sum(id NOT IN (SELECT manifest_id FROM manifest_refs UNION SELECT child_id FROM manifest_refs)), 0) AS unreferenced
                       FROM digest_ids`).get() as { total: number; unreferenced: number };
  } finally {
    db.close();
  }
}

for (const [name, checkpointMs] of [['sqlite', undefined], ['sqlite without its worker', 0]] as const) {
  runMetadataStoreContract(name, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regcache-meta-'));
    const file = join(dir, 'index.db');
    return {
      store: new SqliteMetadataStore(file, { touchFlushMs: 60_000, ...(checkpointMs === undefined ? {} : { checkpointMs }) }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
      internedDigests: async () => internedDigests(file),
    };
  });
}

it('sqlite: an index written by the first release migrates with its totals and reference counts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'regcache-meta-'));
  try {
    const file = join(dir, 'index.db');
    const db = new Database(file);
    db.exec(MIGRATIONS[0]!);
    db.pragma('user_version = 1');
    const layer = fakeDigest('layer');
    const m = fakeDigest('manifest');
    db.prepare('INSERT INTO blobs VALUES (?, 700, 1, 1)').run(layer);
    db.prepare('INSERT INTO manifests VALUES (?, ?, 30, ?, 1, 1)').run(m, 'application/vnd.oci.image.manifest.v1+json', Buffer.alloc(30));
    db.prepare("INSERT INTO manifest_refs VALUES (?, ?, 'blob')").run(m, layer);
    db.close();
    const s = new SqliteMetadataStore(file);
    await s.init();
    expect(s.totals()).toEqual({ blobs: 1, blobBytes: 700, manifests: 1, manifestBytes: 30 });
    const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
    expect(units).toEqual([{ kind: 'image', digest: m, recency: 1, manifests: [m], blobs: [layer], bytes: 730 }]);
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("sqlite without its worker: an evicted image's layers go a few per transaction: a manifest committed between them keeps its layer", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'regcache-meta-'));
  // On the main thread (no worker), where the removal's turns of the event loop are what lets the pull in.
  const s = new SqliteMetadataStore(join(dir, 'index.db'), { touchFlushMs: 60_000, checkpointMs: 0 });
  try {
    await s.init();
    const repo = { upstream: 'docker.io', repo: 'library/app' };
    const body = (name: string) => ({ digest: fakeDigest(`m:${name}`), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, body: Buffer.alloc(10, name) });
    const layers = Array.from({ length: 12 }, (_, i) => fakeDigest(`layer-${i}`));
    for (const l of layers) await s.putBlob(l, 100, repo, 1);
    const old = body('old');
    await s.putManifest(old, { blobs: layers, manifests: [] }, repo, 1);
    const [unit] = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 1 });
    expect(unit!.blobs).toHaveLength(12);
    // A pull commits an image naming the last layer while the removal runs: it gets in
    // between two of the removal's transactions (one long transaction would have shut it out).
    let scheduled = false;
    const keep = (): boolean => {
      if (!scheduled) {
        scheduled = true;
        setImmediate(() => void s.putManifest(body('new'), { blobs: [layers[11]!], manifests: [] }, repo, 5));
      }
      return false;
    };
    const removed = await s.removeUnits([unit!], keep);
    expect(removed.sort()).toEqual(layers.slice(0, 11).sort());
    expect(await s.blobSize(layers[11]!)).toBe(100);
    expect(await s.blobSize(layers[0]!)).toBeUndefined();
    expect(await s.getManifest(old.digest)).toBeUndefined();
    expect(s.totals()).toEqual({ blobs: 1, blobBytes: 100, manifests: 1, manifestBytes: 10 });
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const [mode, checkpointMs] of [['with its worker', undefined], ['without its worker', 0]] as const) {
  it(`sqlite ${mode}: another process locking the index in the middle of a removal stops it there, and the rows that went are reported`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regcache-meta-'));
    const file = join(dir, 'index.db');
    const s = new SqliteMetadataStore(file, { touchFlushMs: 60_000, ...(checkpointMs === undefined ? {} : { checkpointMs }) });
    const other = new Database(file);
    try {
      await s.init();
      const repo = { upstream: 'docker.io', repo: 'library/app' };
      const layers = Array.from({ length: 40 }, (_, i) => fakeDigest(`locked-layer-${i}`));
      for (const l of layers) await s.putBlob(l, 10, repo, 1);
      const m = { digest: fakeDigest('m:locked'), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, body: Buffer.alloc(10) };
      await s.putManifest(m, { blobs: layers, manifests: [] }, repo, 1);
      const [unit] = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 1 });
      // keep() is asked per batch of rows as it is sent: when the second batch is asked for, another process takes the write lock.
      let asked = 0;
      let locked = false;
      const keep = (): boolean => {
        if (++asked > 16 && !locked) {
          other.exec('BEGIN IMMEDIATE');
          locked = true;
        }
        return false;
      };
      const removed = await s.removeUnits([unit!], keep);
      expect(locked).toBe(true);
      other.exec('ROLLBACK');
      expect(removed.length).toBeGreaterThan(0);
      expect(removed.length).toBeLessThan(40);
      // Exactly the reported rows are gone; the others stay loose rows for the next sweep.
      for (const l of layers) expect(await s.blobSize(l)).toBe(removed.includes(l) ? undefined : 10);
      expect(s.totals()).toMatchObject({ blobs: 40 - removed.length, manifests: 0 });
      const next = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 100 });
      expect(next.map((u) => u.digest).sort()).toEqual(layers.filter((l) => !removed.includes(l)).sort());
    } finally {
      other.close();
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
