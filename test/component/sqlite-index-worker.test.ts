/**
 * The SQLite index worker (src/store/sqlite/index-worker.ts): eviction and the batched pull
 * times run on a thread with its own connection, behind the write gate (write-gate.ts). The
 * main thread's writes meanwhile are neither lost nor taken for another process's lock; a
 * blob pinned while the worker removed its row gets the row back; a worker that dies leaves
 * the same work to the main thread.
 */
import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { SqliteMetadataStore } from '../../src/store/sqlite/sqlite-metadata-store.js';
import { fakeDigest } from '../contract/metadata-store.contract.js';
import { sqliteStores } from './sqlite-store-fixture.js';

const repo = { upstream: 'docker.io', repo: 'library/app' };
const open = sqliteStores('regcache-idxw-');

const manifest = (name: string) => ({ digest: fakeDigest(`m:${name}`), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, body: Buffer.alloc(10, name) });

/** `n` images of `layers` layers each, pulled at time 1. */
async function seed(s: SqliteMetadataStore, n: number, layers: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const blobs = Array.from({ length: layers }, (_, j) => fakeDigest(`img-${i}-layer-${j}`));
    for (const b of blobs) await s.putBlob(b, 100, repo, 1);
    await s.putManifest(manifest(`img-${i}`), { blobs, manifests: [] }, repo, 1);
  }
}

/** The totals counted anew from the rows, on a second connection. */
function counted(file: string): { blobs: number; manifests: number } {
  const db = new Database(file, { readonly: true });
  try {
    return {
      blobs: (db.prepare('SELECT count(*) AS n FROM blobs').get() as { n: number }).n,
      manifests: (db.prepare('SELECT count(*) AS n FROM manifests').get() as { n: number }).n,
    };
  } finally {
    db.close();
  }
}

describe('SQLite index worker', () => {
  it('an eviction on the worker while the main thread writes: every main-thread write lands, nothing reads as locked, totals stay exact', async () => {
    const { s, file } = await open();
    expect(s.offloaded).toBe(true);
    await seed(s, 60, 8);
    const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 60 });
    expect(units).toHaveLength(60);
    let unhealthy = 0;
    let writing = true;
    const newBlobs: string[] = [];
    // The main thread keeps writing (fills committing, tags) while the worker removes 60 images and 480 blobs.
    const writer = (async () => {
      for (let i = 0; writing || i < 50; i++) {
        const b = fakeDigest(`new-${i}`);
        newBlobs.push(b);
        await s.putBlob(b, 7, repo, 2);
        await s.putTag(repo, `t${i}`, b, 2);
        if (!s.healthy()) unhealthy++;
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const removed = await s.removeUnits(units, () => false);
    writing = false;
    await writer;
    expect(removed).toHaveLength(480);
    expect(unhealthy).toBe(0);
    await s.flush();
    // Whatever waited for the gate is written by now.
    await new Promise((r) => setTimeout(r, 100));
    expect(s.queuedWrites).toBe(0);
    for (const b of newBlobs) expect(await s.blobSize(b)).toBe(7);
    expect(await s.getTag(repo, 't0')).toMatchObject({ digest: newBlobs[0] });
    const rows = counted(file);
    expect(rows).toEqual({ blobs: newBlobs.length, manifests: 0 });
    expect(s.totals()).toMatchObject({ blobs: rows.blobs, blobBytes: 7 * rows.blobs, manifests: 0, manifestBytes: 0 });
  });

  it('a blob pinned after the worker was asked to remove it gets its row back, and is not reported removed', async () => {
    const { s } = await open();
    await seed(s, 1, 3);
    const [unit] = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 1 });
    const served = unit!.blobs[1]!;
    // Not pinned when the batch is sent; pinned when its result comes back (a pull read the row in between).
    const asked = new Map<string, number>();
    const keep = (b: string): boolean => {
      asked.set(b, (asked.get(b) ?? 0) + 1);
      return b === served && asked.get(b)! > 1;
    };
    const removed = await s.removeUnits([unit!], keep);
    expect(removed.sort()).toEqual(unit!.blobs.filter((b) => b !== served).sort());
    expect(await s.blobSize(served)).toBe(100);
    expect(s.totals()).toMatchObject({ blobs: 1, blobBytes: 100, manifests: 0 });
    // Back as a loose row: the next sweep may take it.
    const next = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
    expect(next.map((u) => [u.kind, u.digest])).toEqual([['blob', served]]);
  });

  it('pull times are written by the worker, an index child refreshing its parent', async () => {
    const { s, file } = await open();
    const child = manifest('child');
    const index = manifest('index');
    await s.putManifest(child, { blobs: [], manifests: [] }, repo, 1);
    await s.putManifest(index, { blobs: [], manifests: [child.digest] }, repo, 1);
    s.touch(child.digest, 500);
    expect(s.unflushedPull(child.digest)).toBe(500);
    await s.flush();
    expect(s.unflushedPull(child.digest)).toBeUndefined();
    const db = new Database(file, { readonly: true });
    try {
      const at = (d: string) => (db.prepare('SELECT last_pulled_at AS t FROM manifests WHERE digest = ?').get(d) as { t: number }).t;
      expect([at(child.digest), at(index.digest)]).toEqual([500, 500]);
    } finally {
      db.close();
    }
  });

  it('the worker gone, the same work runs on the main thread and the failure is reported', async () => {
    const errors: string[] = [];
    const { s } = await open({ onError: (e) => errors.push(e.message) });
    await seed(s, 3, 2);
    const thread = (s as unknown as { worker: { worker: Worker } }).worker.worker;
    await thread.terminate();
    for (let i = 0; i < 50 && s.offloaded; i++) await new Promise((r) => setTimeout(r, 10));
    expect(s.offloaded).toBe(false);
    expect(errors.join('\n')).toMatch(/index worker exited/);
    const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
    expect(await s.removeUnits(units, () => false)).toHaveLength(6);
    s.touch(fakeDigest('x'), 9);
    await s.flush();
    expect(s.healthy()).toBe(true);
    await s.putBlob(fakeDigest('after'), 1, repo, 3);
    expect(s.totals()).toMatchObject({ blobs: 1, manifests: 0 });
  });
});
