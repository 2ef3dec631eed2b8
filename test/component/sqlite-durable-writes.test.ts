/**
 * Durable index writes (sqlite-metadata-store.ts, submit()): what a client is answered 201
 * or 202 for (hosted manifests, tags, blobs, links; upload-session and job state) is in
 * index.db, as a restart after a SIGKILL would read it, when the store's promise resolves,
 * even while the index worker holds the write gate or another process holds the lock.
 * Cache writes still go on at once and wait in memory. Found by a review: a hosted push
 * acknowledged during an eviction (513 of 565) or during another process's lock was lost
 * to a kill right after its 201.
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { OciError } from '../../src/protocol/errors.js';
import { fakeDigest } from '../contract/metadata-store.contract.js';
import { sqliteStores } from './sqlite-store-fixture.js';

const cached = { upstream: 'docker.io', repo: 'library/app' };
const hosted = { upstream: 'hosted', repo: 'team/app' };
const open = sqliteStores('regcache-durable-');
/** Second connections (readers, another process's lock): closed before the stores. */
const others: Database.Database[] = [];
afterEach(() => {
  for (const db of others.splice(0)) {
    if (!db.open) continue;
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
  }
});

const manifest = (name: string) => ({ digest: fakeDigest(`m:${name}`), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, body: Buffer.alloc(10, name) });

/** A second connection: what a restart would read. */
function reader(file: string): { tag(t: string): boolean; blob(d: string): boolean; manifest(d: string): boolean; state(k: string): boolean } {
  const db = new Database(file, { readonly: true });
  others.push(db);
  const tag = db.prepare('SELECT 1 FROM tags WHERE upstream = ? AND repo = ? AND tag = ?');
  const blob = db.prepare('SELECT 1 FROM blobs WHERE digest = ?');
  const man = db.prepare('SELECT 1 FROM manifests WHERE digest = ?');
  const link = db.prepare('SELECT 1 FROM repo_links WHERE upstream = ? AND repo = ? AND digest = ?');
  const state = db.prepare('SELECT 1 FROM state WHERE ns = ? AND key = ?');
  return {
    tag: (t) => tag.get(hosted.upstream, hosted.repo, t) !== undefined,
    blob: (d) => blob.get(d) !== undefined && link.get(hosted.upstream, hosted.repo, d) !== undefined,
    manifest: (d) => man.get(d) !== undefined && link.get(hosted.upstream, hosted.repo, d) !== undefined,
    state: (k) => state.get('uploads', k) !== undefined,
  };
}

/** Another process's write lock on the index (a backup, the sqlite3 shell). */
function lockElsewhere(file: string): Database.Database {
  const db = new Database(file);
  others.push(db);
  db.exec('BEGIN EXCLUSIVE');
  return db;
}

describe('durable index writes', () => {
  it('a hosted push acknowledged while the worker evicts is in index.db when acknowledged', async () => {
    const { s, file } = await open();
    expect(s.offloaded).toBe(true);
    for (let i = 0; i < 80; i++) {
      const blobs = Array.from({ length: 8 }, (_, j) => fakeDigest(`c-${i}-${j}`));
      for (const b of blobs) await s.putBlob(b, 100, cached, 1);
      await s.putManifest(manifest(`c-${i}`), { blobs, manifests: [] }, cached, 1);
    }
    const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 80 });
    const r = reader(file);
    let pushes = 0;
    const missing: string[] = [];
    let evicting = true;
    const pusher = (async () => {
      for (let i = 0; evicting; i++) {
        const layer = fakeDigest(`h-layer-${i}`);
        const m = manifest(`h-${i}`);
        await s.putBlob(layer, 5, hosted, 2);
        await s.putManifest(m, { blobs: [layer], manifests: [] }, hosted, 2);
        await s.putTag(hosted, `v${i}`, m.digest, 2);
        await s.putState('uploads', `u${i}`, { size: i });
        // Here the client would be answered 201: a kill now must lose nothing.
        pushes++;
        if (!r.blob(layer)) missing.push(`blob ${i}`);
        if (!r.manifest(m.digest)) missing.push(`manifest ${i}`);
        if (!r.tag(`v${i}`)) missing.push(`tag ${i}`);
        if (!r.state(`u${i}`)) missing.push(`state ${i}`);
        await new Promise((res) => setImmediate(res));
      }
    })();
    await s.removeUnits(units, () => false);
    evicting = false;
    await pusher;
    expect(pushes).toBeGreaterThan(0);
    expect(missing).toEqual([]);
  });

  it('another process holds the lock: cache writes go on at once; a hosted write waits for it and lands when it is released', async () => {
    const { s, file } = await open();
    const other = lockElsewhere(file);
    const layer = fakeDigest('cached-layer');
    // A cache write does not wait (the pull goes on; the row waits in memory).
    await s.putBlob(layer, 10, cached, 1);
    expect(await s.blobSize(layer)).toBe(10);
    let acked = false;
    const m = manifest('held');
    const push = s.putManifest(m, { blobs: [], manifests: [] }, hosted, 1).then(() => { acked = true; });
    await new Promise((res) => setTimeout(res, 300));
    expect(acked).toBe(false);
    other.exec('COMMIT');
    await push;
    expect(reader(file).manifest(m.digest)).toBe(true);
  });

  it('a lock held past durableWaitMs: 503 UNAVAILABLE with Retry-After, nothing acknowledged; the write still lands later', async () => {
    const { s, file } = await open({ durableWaitMs: 200 });
    const other = lockElsewhere(file);
    const m = manifest('late');
    const err = await s.putTag(hosted, 'v1', m.digest, 1).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OciError);
    expect((err as OciError).status).toBe(503);
    expect((err as OciError).code).toBe('UNAVAILABLE');
    expect((err as OciError).headers['retry-after']).toBe('5');
    const state = await s.putState('uploads', 'u1', { size: 1 }).then(() => undefined, (e: unknown) => e);
    expect((state as OciError).status).toBe(503);
    // Deletes of hosted content under the same lock: 503 too, not an internal error.
    const del = await s.deleteTag(hosted, 'v0').then(() => undefined, (e: unknown) => e);
    expect((del as OciError).status).toBe(503);
    const unlink = await s.unlink(hosted, m.digest).then(() => undefined, (e: unknown) => e);
    expect((unlink as OciError).status).toBe(503);
    other.exec('COMMIT');
    const r = reader(file);
    const until = Date.now() + 5000;
    while ((!r.tag('v1') || !r.state('u1')) && Date.now() < until) await new Promise((res) => setTimeout(res, 50));
    expect(r.tag('v1')).toBe(true);
    expect(r.state('u1')).toBe(true);
  });
});
