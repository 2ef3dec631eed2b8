/**
 * The MetadataStore contract: one suite that every implementation runs (SQLite today,
 * PostgreSQL next). Call runMetadataStoreContract(name, factory) from a test file of the
 * implementation. Digests here are made up (only their shape matters).
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/store/blob-store.js';
import { sweep } from '../../src/store/eviction.js';
import { HOSTED, type EvictionUnit, type ManifestRecord, type MetadataStore, type RepoRef } from '../../src/store/metadata-store.js';

export interface MetadataStoreFixture {
  store: MetadataStore;
  cleanup(): Promise<void>;
  /**
   * Implementations that intern the digests references name (digest_ids): how many they
   * hold, and how many of those no reference names any more (must stay 0: none accumulate).
   */
  internedDigests?(): Promise<{ total: number; unreferenced: number }>;
}

export const fakeDigest = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const repo: RepoRef = { upstream: 'docker.io', repo: 'library/app' };
const other: RepoRef = { upstream: 'ghcr.io', repo: 'org/tool' };

function manifest(name: string, size = 100): ManifestRecord {
  return { digest: fakeDigest(`m:${name}`), mediaType: 'application/vnd.oci.image.manifest.v1+json', size, body: Buffer.alloc(size, name) };
}

export function runMetadataStoreContract(name: string, make: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore contract: ${name}`, () => {
    const fixtures: MetadataStoreFixture[] = [];
    const fresh = async (): Promise<MetadataStore> => {
      const f = await make();
      fixtures.push(f);
      await f.store.init();
      return f.store;
    };
    /** Interned digests of the store's fixture; { total: 0, unreferenced: 0 } where nothing is interned. */
    const interned = async (s: MetadataStore): Promise<{ total: number; unreferenced: number }> =>
      (await fixtures.find((f) => f.store === s)?.internedDigests?.()) ?? { total: 0, unreferenced: 0 };
    const everything = { before: Number.MAX_SAFE_INTEGER, limit: 100 };
    const sorted = (u: EvictionUnit): EvictionUnit => ({ ...u, manifests: [...u.manifests].sort(), blobs: [...u.blobs].sort() });
    afterEach(async () => {
      for (const f of fixtures.splice(0)) {
        await f.store.close();
        await f.cleanup();
      }
    });

    it('manifests with their references, subject and artifactType; referrers by subject', async () => {
      const s = await fresh();
      const m = manifest('a');
      const subject = fakeDigest('subject');
      expect(await s.getManifest(m.digest)).toBeUndefined();
      await s.putManifest(m, { blobs: [fakeDigest('l1')], manifests: [], subject, artifactType: 'application/vnd.example.sig' }, repo, 1000);
      const got = await s.getManifest(m.digest);
      expect(got).toMatchObject({ digest: m.digest, mediaType: m.mediaType, size: 100 });
      expect(Buffer.from(got!.body).equals(m.body)).toBe(true);
      expect(await s.referrers(subject)).toEqual([{ digest: m.digest, mediaType: m.mediaType, size: 100, artifactType: 'application/vnd.example.sig' }]);
      expect(await s.referrers(fakeDigest('nothing'))).toEqual([]);
      // A manifest links itself to the repository, never the blobs it names (scope).
      expect(await s.isLinked(repo, m.digest)).toBe(true);
      expect(await s.isLinked(repo, fakeDigest('l1'))).toBe(false);
      expect(await s.isLinked(other, m.digest)).toBe(false);
    });

    it('blobs, links and the catalog (paged, per upstream)', async () => {
      const s = await fresh();
      const b = fakeDigest('blob');
      await s.putBlob(b, 4096, repo, 1000);
      expect(await s.blobSize(b)).toBe(4096);
      expect(await s.isLinked(repo, b)).toBe(true);
      await s.putBlob(b, 4096, other, 2000); // again, from another repository
      expect(await s.isLinked(other, b)).toBe(true);
      const all = [];
      for await (const r of s.listBlobs()) all.push(r);
      expect(all).toEqual([{ digest: b, size: 4096 }]);
      await s.putManifest(manifest('x'), { blobs: [], manifests: [] }, repo, 1000);
      await s.putManifest(manifest('y'), { blobs: [], manifests: [] }, other, 1000);
      await s.putManifest(manifest('z'), { blobs: [], manifests: [] }, { upstream: 'docker.io', repo: 'library/zed' }, 1000);
      expect(await s.catalog('', 10)).toEqual(['docker.io/library/app', 'docker.io/library/zed', 'ghcr.io/org/tool']);
      expect(await s.catalog('', 1)).toEqual(['docker.io/library/app']);
      expect(await s.catalog('docker.io/library/app', 10)).toEqual(['docker.io/library/zed', 'ghcr.io/org/tool']);
      expect(await s.catalog('', 10, 'ghcr.io')).toEqual(['ghcr.io/org/tool']);
      await s.dropBlobs([b]);
      expect(await s.blobSize(b)).toBeUndefined();
    });

    it('tags: put, get, move, list in order with paging', async () => {
      const s = await fresh();
      const d1 = fakeDigest('1');
      const d2 = fakeDigest('2');
      for (const t of ['v2', 'v1', 'latest']) await s.putTag(repo, t, d1, 500);
      expect(await s.getTag(repo, 'v1')).toEqual({ digest: d1, validatedAt: 500 });
      await s.putTag(repo, 'v1', d2, 900);
      expect(await s.getTag(repo, 'v1')).toEqual({ digest: d2, validatedAt: 900 });
      expect(await s.getTag(other, 'v1')).toBeUndefined();
      expect(await s.listTags(repo, '', 10)).toEqual(['latest', 'v1', 'v2']);
      expect(await s.listTags(repo, 'latest', 1)).toEqual(['v1']);
    });

    it('repositories for the admin browser: searched case-insensitively, paged, with tag counts, bytes and last pull', async () => {
      const s = await fresh();
      const zed: RepoRef = { upstream: 'docker.io', repo: 'library/zed' };
      await s.putBlob(fakeDigest('layer'), 4000, repo, 1000);
      await s.putManifest(manifest('a', 100), { blobs: [fakeDigest('layer')], manifests: [] }, repo, 1000);
      await s.putTag(repo, 'v1', manifest('a').digest, 1000);
      await s.putTag(repo, 'v2', manifest('a').digest, 1000);
      await s.putManifest(manifest('y', 200), { blobs: [], manifests: [] }, other, 3000);
      await s.putManifest(manifest('z', 50), { blobs: [], manifests: [] }, zed, 2000);
      // A repository with only a blob link (no manifest) is not listed, as in the catalog.
      await s.putBlob(fakeDigest('lonely'), 10, { upstream: 'docker.io', repo: 'library/blobonly' }, 1000);
      const all = await s.listRepositories({ limit: 10 });
      expect(all).toEqual([
        { upstream: 'docker.io', repo: 'library/app', tags: 2, bytes: 4100, lastPull: 1000 },
        { upstream: 'docker.io', repo: 'library/zed', tags: 0, bytes: 50, lastPull: 2000 },
        { upstream: 'ghcr.io', repo: 'org/tool', tags: 0, bytes: 200, lastPull: 3000 },
      ]);
      expect((await s.listRepositories({ limit: 1 })).map((r) => r.repo)).toEqual(['library/app']);
      expect((await s.listRepositories({ limit: 10, after: 'docker.io/library/app' })).map((r) => r.repo)).toEqual(['library/zed', 'org/tool']);
      expect((await s.listRepositories({ limit: 10, query: 'ZED' })).map((r) => r.repo)).toEqual(['library/zed']);
      expect((await s.listRepositories({ limit: 10, query: 'ghcr.io/' })).map((r) => r.repo)).toEqual(['org/tool']);
      // LIKE wildcards are plain characters in a search.
      expect(await s.listRepositories({ limit: 10, query: '%' })).toEqual([]);
    });

    it('repository tags with their manifests and image bytes; deleteTag drops one tag and keeps its content', async () => {
      const s = await fresh();
      const child = manifest('child', 300);
      const index = { ...manifest('index', 100), mediaType: 'application/vnd.oci.image.index.v1+json' };
      await s.putBlob(fakeDigest('l1'), 5000, repo, 1000);
      await s.putManifest(child, { blobs: [fakeDigest('l1')], manifests: [] }, repo, 1000);
      await s.putManifest(index, { blobs: [], manifests: [child.digest] }, repo, 4000);
      await s.putTag(repo, 'multi', index.digest, 700);
      await s.putTag(repo, 'single', child.digest, 800);
      await s.putTag(repo, 'uncached', fakeDigest('nothing'), 900);
      expect(await s.repositoryTags(repo, '', 10)).toEqual([
        { tag: 'multi', digest: index.digest, validatedAt: 700, mediaType: index.mediaType, bytes: 5400, lastPull: 4000 },
        { tag: 'single', digest: child.digest, validatedAt: 800, mediaType: child.mediaType, bytes: 5300, lastPull: 1000 },
        { tag: 'uncached', digest: fakeDigest('nothing'), validatedAt: 900, mediaType: undefined, bytes: 0, lastPull: undefined },
      ]);
      expect((await s.repositoryTags(repo, 'multi', 1)).map((t) => t.tag)).toEqual(['single']);
      expect(await s.deleteTag(repo, 'single')).toBe(true);
      expect(await s.deleteTag(repo, 'single')).toBe(false);
      expect(await s.getTag(repo, 'single')).toBeUndefined();
      expect(await s.getTag(repo, 'multi')).toBeDefined();
      expect((await s.getManifest(child.digest))?.size).toBe(300);
      expect(await s.isLinked(repo, child.digest)).toBe(true);
    });

    it('totals are kept with every insert and removal', async () => {
      const s = await fresh();
      expect(s.totals()).toEqual({ blobs: 0, blobBytes: 0, manifests: 0, manifestBytes: 0 });
      await s.putBlob(fakeDigest('b1'), 1000, repo, 1);
      await s.putBlob(fakeDigest('b1'), 1000, repo, 2); // same blob again: counted once
      await s.putBlob(fakeDigest('b2'), 500, undefined, 1);
      await s.putManifest(manifest('m', 300), { blobs: [fakeDigest('b1')], manifests: [] }, repo, 1);
      expect(s.totals()).toEqual({ blobs: 2, blobBytes: 1500, manifests: 1, manifestBytes: 300 });
      await s.dropBlobs([fakeDigest('b2')]);
      expect(s.totals()).toEqual({ blobs: 1, blobBytes: 1000, manifests: 1, manifestBytes: 300 });
    });

    it('eviction candidates: oldest unit first, an index with its own children, shared blobs and children stay, loose blobs are units', async () => {
      const s = await fresh();
      const shared = fakeDigest('shared-layer');
      const own1 = fakeDigest('own1');
      const own2 = fakeDigest('own2');
      const loose = fakeDigest('loose');
      for (const [d, n] of [[shared, 1000], [own1, 100], [own2, 200], [loose, 50]] as const) await s.putBlob(d, n, repo, 10);
      const img1 = manifest('img1', 10);
      const img2 = manifest('img2', 20);
      const child = manifest('child', 30);
      const index1 = manifest('index1', 40);
      const index2 = manifest('index2', 50);
      await s.putManifest(img1, { blobs: [shared, own1], manifests: [] }, repo, 100);
      await s.putManifest(img2, { blobs: [shared, own2], manifests: [] }, repo, 300);
      await s.putManifest(child, { blobs: [], manifests: [] }, repo, 200);
      await s.putManifest(index1, { blobs: [], manifests: [child.digest, img2.digest] }, repo, 200);
      await s.putManifest(index2, { blobs: [], manifests: [child.digest] }, repo, 400);
      const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
      // loose (10), img1 (100), index1 (200; img2 goes with it, child is shared with index2), index2 (400).
      expect(units.map((u) => u.digest)).toEqual([loose, img1.digest, index1.digest, index2.digest]);
      const [u0, u1, u2, u3] = units;
      expect(u0).toMatchObject({ kind: 'blob', blobs: [loose], bytes: 50 });
      // img1 alone: its own layer goes, the layer shared with img2 stays.
      expect(u1).toMatchObject({ kind: 'image', manifests: [img1.digest], blobs: [own1], bytes: 10 + 100 });
      // index1 after img1 (planned in order): img2 goes with it, and now the shared layer too.
      expect(u2!.manifests.sort()).toEqual([index1.digest, img2.digest].sort());
      expect(u2!.blobs.sort()).toEqual([own2, shared].sort());
      expect(u3!.manifests.sort()).toEqual([index2.digest, child.digest].sort());
      // Age: only what is older than `before`; the cursor pages.
      expect((await s.evictionCandidates({ before: 150, limit: 10 })).map((u) => u.digest)).toEqual([loose, img1.digest]);
      expect((await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 2, after: { recency: 100, digest: img1.digest } })).map((u) => u.digest))
        .toEqual([index1.digest, index2.digest]);
    });

    it('a sweep keeps an image a sync job holds, and every blob it shares with evicted ones', async () => {
      const s = await fresh();
      const shared = fakeDigest('held-shared');
      const own = fakeDigest('held-own');
      const gone = fakeDigest('gone-own');
      for (const d of [shared, own, gone]) await s.putBlob(d, 100, repo, 1);
      const held = manifest('held', 10);
      const old = manifest('old-image', 10);
      // The held image is the oldest: without isHeld it would go first.
      await s.putManifest(held, { blobs: [shared, own], manifests: [] }, repo, 1);
      await s.putManifest(old, { blobs: [shared, gone], manifests: [] }, repo, 2);
      const deleted: string[] = [];
      const blobs = { delete: async (d: string) => { deleted.push(d); } } as unknown as BlobStore;
      const plan = await sweep({ blobs, meta: s, isPinned: () => false, isHeld: (d) => d === held.digest }, { maxAge: 10 }, 1000);
      expect(plan.units.map((u) => u.digest)).toEqual([old.digest]);
      expect(deleted).toEqual([gone]);
      expect(await s.getManifest(held.digest)).toBeDefined();
      expect(await s.blobSize(shared)).toBe(100);
      expect(await s.blobSize(own)).toBe(100);
      // Once no job holds it, the next sweep takes it.
      const later = await sweep({ blobs, meta: s, isPinned: () => false, isHeld: () => false }, { maxAge: 10 }, 1000);
      expect(later.units.map((u) => u.digest)).toEqual([held.digest]);
      expect(deleted.sort()).toEqual([gone, own, shared].sort());
    });

    it('a summary-only sweep (background) keeps counts, not units, and removes the same', async () => {
      const s = await fresh();
      const loose = fakeDigest('summary-loose');
      const layer = fakeDigest('summary-layer');
      await s.putBlob(loose, 10, repo, 1);
      await s.putBlob(layer, 100, repo, 2);
      const img = manifest('summary-image', 10);
      await s.putManifest(img, { blobs: [layer], manifests: [] }, repo, 3);
      const blobs = { delete: async () => undefined } as unknown as BlobStore;
      const seen: string[] = [];
      const plan = await sweep({ blobs, meta: s, isPinned: () => false }, { maxSize: 0 }, 1000, { summaryOnly: true, onUnits: (us) => seen.push(...us.map((u) => u.digest)) });
      expect(plan.units).toEqual([]);
      expect(plan.counts).toEqual({ units: 2, images: 1, age: 0, size: 2 });
      expect(seen).toEqual([loose, img.digest]);
      expect(s.totals().blobBytes + s.totals().manifestBytes).toBe(0);
      expect(plan.bytesFreed).toBe(120);
    });

    it('hosted content is never an eviction candidate, nor is anything a hosted manifest references or a blob pushed to a hosted repository', async () => {
      const s = await fresh();
      const hosted: RepoRef = { upstream: HOSTED, repo: 'team/app' };
      const sharedLayer = fakeDigest('hosted-and-cached-layer');
      const pushedLoose = fakeDigest('pushed-not-yet-referenced');
      const cachedLoose = fakeDigest('cached-loose');
      await s.putBlob(sharedLayer, 100, hosted, 1);
      await s.putBlob(pushedLoose, 100, hosted, 1);
      await s.putBlob(cachedLoose, 100, repo, 1);
      const pushed = manifest('pushed', 10);
      const pushedChild = manifest('pushed-child', 10);
      const cachedIndex = manifest('cached-index', 10);
      const cachedImage = manifest('cached-image', 10);
      await s.putManifest(pushed, { blobs: [sharedLayer], manifests: [] }, hosted, 1);
      await s.putManifest(pushedChild, { blobs: [], manifests: [] }, hosted, 1);
      // A cached index naming a child that was also pushed, and a cached image sharing the pushed layer.
      await s.putManifest(cachedIndex, { blobs: [], manifests: [pushedChild.digest] }, repo, 1);
      await s.putManifest(cachedImage, { blobs: [sharedLayer], manifests: [] }, repo, 1);
      const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
      expect(units.map((u) => u.digest).sort()).toEqual([cachedLoose, cachedIndex.digest, cachedImage.digest].sort());
      const all = units.flatMap((u) => [...u.manifests, ...u.blobs]);
      for (const d of [pushed.digest, pushedChild.digest, sharedLayer, pushedLoose]) expect(all).not.toContain(d);
      // Once unlinked from the hosted repository, it is ordinary content again.
      expect(await s.unlink(hosted, pushedLoose)).toBe(true);
      expect(await s.unlink(hosted, pushedLoose)).toBe(false);
      expect((await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 })).map((u) => u.digest)).toContain(pushedLoose);
    });

    it('deleteTag removes one tag; unlink drops the link and that repository\'s tags naming the digest', async () => {
      const s = await fresh();
      const m = manifest('t', 10);
      await s.putManifest(m, { blobs: [], manifests: [] }, repo, 1);
      await s.putManifest(m, { blobs: [], manifests: [] }, other, 1);
      for (const t of ['a', 'b']) await s.putTag(repo, t, m.digest, 1);
      await s.putTag(other, 'a', m.digest, 1);
      expect(await s.deleteTag(repo, 'a')).toBe(true);
      expect(await s.deleteTag(repo, 'a')).toBe(false);
      expect(await s.listTags(repo, '', 10)).toEqual(['b']);
      expect(await s.unlink(repo, m.digest)).toBe(true);
      expect(await s.listTags(repo, '', 10)).toEqual([]);
      expect(await s.isLinked(repo, m.digest)).toBe(false);
      expect(await s.isLinked(other, m.digest)).toBe(true);
      expect(await s.getTag(other, 'a')).toMatchObject({ digest: m.digest });
    });

    it('a pull of an index child keeps its index recent (batched, written by flush)', async () => {
      const s = await fresh();
      const child = manifest('c', 10);
      const idx = manifest('i', 10);
      const lone = manifest('lone', 10);
      await s.putManifest(child, { blobs: [], manifests: [] }, repo, 100);
      await s.putManifest(idx, { blobs: [], manifests: [child.digest] }, repo, 100);
      await s.putManifest(lone, { blobs: [], manifests: [] }, repo, 200);
      s.touch(child.digest, 1000);
      await s.flush();
      expect((await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 })).map((u) => u.digest)).toEqual([lone.digest, idx.digest]);
    });

    it('a sweep judges a unit pulled since the last flush by that pull, and writes no pull time itself', async () => {
      const s = await fresh();
      const old = manifest('pulled-old', 10);
      const child = manifest('pulled-child', 10);
      const idx = manifest('pulled-index', 10);
      const next = manifest('not-pulled', 10);
      const stale = manifest('pulled-long-ago', 10);
      await s.putManifest(old, { blobs: [], manifests: [] }, repo, 100);
      await s.putManifest(child, { blobs: [], manifests: [] }, repo, 100);
      await s.putManifest(idx, { blobs: [], manifests: [child.digest] }, repo, 110);
      await s.putManifest(next, { blobs: [], manifests: [] }, repo, 200);
      await s.putManifest(stale, { blobs: [], manifests: [] }, repo, 10);
      s.touch(old.digest, 1000);
      s.touch(child.digest, 1000);
      s.touch(stale.digest, 20);
      expect(s.unflushedPull(old.digest)).toBe(1000);
      expect(s.unflushedPull(next.digest)).toBeUndefined();
      const blobs = { delete: async () => undefined } as unknown as BlobStore;
      // By age (older than 500): the unwritten pull at 1000 keeps `old` and the index (through
      // its child); the one at 20 does not keep `stale`; `next` (200, no pull since) goes.
      const aged = await sweep({ blobs, meta: s, isPinned: () => false }, { maxAge: 1500 }, 2000);
      expect(aged.units.map((u) => u.digest)).toEqual([stale.digest, next.digest]);
      // By size (nothing may stay): the units pulled since the last write go last, so not in this sweep.
      const sized = await sweep({ blobs, meta: s, isPinned: () => false }, { maxSize: 0 }, 2000);
      expect(sized.units).toEqual([]);
      expect(s.unflushedPull(old.digest)).toBe(1000);
      await s.flush();
      expect(s.unflushedPull(old.digest)).toBeUndefined();
      // Written now: the next sweep orders them by those times.
      const later = await sweep({ blobs, meta: s, isPinned: () => false }, { maxSize: 0 }, 2000);
      expect(later.units.map((u) => u.digest).sort()).toEqual([old.digest, idx.digest].sort());
      expect(await s.getManifest(old.digest)).toBeUndefined();
    });

    it('pull times a flush is still writing count as unwritten: a sweep by age meanwhile removes none of them', async () => {
      const s = await fresh();
      const images = Array.from({ length: 250 }, (_, i) => manifest(`flushing-${i}`, 10));
      for (const m of images) await s.putManifest(m, { blobs: [], manifests: [] }, repo, 100);
      for (const m of images) s.touch(m.digest, 1000);
      const flushed = s.flush();
      expect(s.unflushedPull(images[249]!.digest)).toBe(1000);
      const blobs = { delete: async () => undefined } as unknown as BlobStore;
      // By age (older than 500): their rows say 100 until the flush has written them, their pulls say 1000.
      await sweep({ blobs, meta: s, isPinned: () => false }, { maxAge: 1500 }, 2000);
      await flushed;
      for (const m of images) expect(await s.getManifest(m.digest)).toBeDefined();
      expect(s.unflushedPull(images[249]!.digest)).toBeUndefined();
      expect((await s.evictionCandidates({ before: 1000, limit: 10 })).length).toBe(0);
    });

    it('removeUnits keeps a unit whose pull was written after it was planned (image with its blobs, loose blob)', async () => {
      const s = await fresh();
      const layer = fakeDigest('replanned-layer');
      const loose = fakeDigest('replanned-loose');
      await s.putBlob(layer, 100, repo, 10);
      await s.putBlob(loose, 50, repo, 10);
      const img = manifest('replanned-image', 10);
      await s.putManifest(img, { blobs: [layer], manifests: [] }, repo, 20);
      const planned = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
      expect(planned.map((u) => u.digest)).toEqual([loose, img.digest]);
      // Pulled after the plan, written before the removal (a flush, or another replica's).
      s.touch(img.digest, 500);
      s.touch(loose, 500);
      await s.flush();
      const kept: string[] = [];
      expect(await s.removeUnits(planned, () => false, (u) => kept.push(u))).toEqual([]);
      expect(kept.sort()).toEqual([img.digest, loose].sort());
      expect(await s.getManifest(img.digest)).toBeDefined();
      expect(await s.blobSize(layer)).toBe(100);
      expect(await s.blobSize(loose)).toBe(50);
      // Planned again, with those pulls: removed.
      const again = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
      const keptAgain: string[] = [];
      expect((await s.removeUnits(again, () => false, (u) => keptAgain.push(u))).sort()).toEqual([layer, loose].sort());
      expect(keptAgain).toEqual([]);
      expect(await s.getManifest(img.digest)).toBeUndefined();
    });

    it('removeUnits puts back, with its links, a blob pinned at any moment while its rows were removed (pins watched); it is not reported', async () => {
      const s = await fresh();
      const served = fakeDigest('watched-served');
      const plain = fakeDigest('watched-plain');
      const loose = fakeDigest('watched-loose');
      await s.putBlob(served, 100, repo, 1);
      await s.putBlob(served, 100, other, 1);
      await s.putBlob(plain, 70, repo, 1);
      await s.putBlob(loose, 30, other, 1);
      const img = manifest('watched-image', 10);
      await s.putManifest(img, { blobs: [served, plain], manifests: [] }, repo, 2);
      const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
      expect(units.map((u) => u.digest).sort()).toEqual([img.digest, loose].sort());
      // keep() says no whenever asked; the watch saw `served` and `loose` pinned (and released) meanwhile.
      let ended = 0;
      const watchPins = () => ({ pinned: (d: string) => d === served || d === loose, end: () => { ended++; } });
      const kept: string[] = [];
      const removed = await s.removeUnits(units, () => false, (u) => kept.push(u), watchPins);
      expect(removed).toEqual([plain]);
      expect(kept).toEqual([loose]);
      expect(ended).toBeGreaterThan(0);
      expect(await s.blobSize(served)).toBe(100);
      expect(await s.isLinked(repo, served)).toBe(true);
      expect(await s.isLinked(other, served)).toBe(true);
      expect(await s.isLinked(other, loose)).toBe(true);
      expect(await s.blobSize(plain)).toBeUndefined();
      expect(await s.getManifest(img.digest)).toBeUndefined();
      expect(s.totals()).toMatchObject({ blobs: 2, blobBytes: 130, manifests: 0 });
      // Back as loose rows: a later sweep may take them.
      const again = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
      expect(again.map((u) => [u.kind, u.digest]).sort()).toEqual([['blob', loose], ['blob', served]].sort());
    });

    it('removeUnits never removes what a hosted repository linked after the unit was planned (a pushed child manifest, a mounted layer)', async () => {
      const s = await fresh();
      const layer = fakeDigest('later-hosted-layer');
      const mounted = fakeDigest('later-hosted-mounted');
      await s.putBlob(layer, 100, repo, 1);
      await s.putBlob(mounted, 40, repo, 1);
      const child = manifest('later-hosted-child', 10);
      await s.putManifest(child, { blobs: [layer], manifests: [] }, repo, 1);
      const index = manifest('later-hosted-index', 10);
      await s.putManifest(index, { blobs: [], manifests: [child.digest] }, repo, 1);
      const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
      const unit = units.find((u) => u.digest === index.digest)!;
      expect(unit.manifests.sort()).toEqual([index.digest, child.digest].sort());
      // Planned; then a push links the child (with its layer) and a mount links a loose blob to a hosted repository.
      const hosted = { upstream: 'hosted', repo: 'team/app' };
      await s.putManifest(child, { blobs: [layer], manifests: [] }, hosted, 3);
      await s.link(hosted, mounted);
      const removed = await s.removeUnits(units, () => false);
      expect(removed).toEqual([]);
      expect(await s.getManifest(index.digest)).toBeUndefined();
      expect(await s.getManifest(child.digest)).toBeDefined();
      expect(await s.isLinked(hosted, child.digest)).toBe(true);
      expect(await s.blobSize(layer)).toBe(100);
      expect(await s.blobSize(mounted)).toBe(40);
      expect(await s.isLinked(hosted, mounted)).toBe(true);
    });

    it('removeUnits deletes rows, keeps what keep() says, and keeps a blob a new manifest references', async () => {
      const s = await fresh();
      const layer = fakeDigest('layer');
      const pinned = fakeDigest('pinned');
      await s.putBlob(layer, 100, repo, 1);
      await s.putBlob(pinned, 100, repo, 1);
      const m = manifest('old', 10);
      await s.putManifest(m, { blobs: [layer, pinned], manifests: [] }, repo, 1);
      await s.putTag(repo, 'v1', m.digest, 1);
      const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 10 });
      // Meanwhile a new manifest references the layer again: it must stay.
      await s.putManifest(manifest('new', 10), { blobs: [layer], manifests: [] }, repo, 5);
      const removed = await s.removeUnits(units.filter((u) => u.digest === m.digest), (d) => d === pinned);
      expect(removed).toEqual([]);
      expect(await s.getManifest(m.digest)).toBeUndefined();
      expect(await s.getTag(repo, 'v1')).toBeUndefined();
      expect(await s.blobSize(layer)).toBe(100);
      expect(await s.blobSize(pinned)).toBe(100);
      expect(s.totals()).toEqual({ blobs: 2, blobBytes: 200, manifests: 1, manifestBytes: 10 });
    });

    it('a digest two manifests reference stays while one of them goes; a blob that arrives after the manifests naming it is not loose', async () => {
      const s = await fresh();
      const shared = fakeDigest('two-users');
      const a = manifest('user-a', 10);
      const b = manifest('user-b', 10);
      await s.putManifest(a, { blobs: [shared], manifests: [] }, repo, 1);
      await s.putManifest(b, { blobs: [shared], manifests: [] }, repo, 2);
      await s.putBlob(shared, 100, repo, 3);
      const units = await s.evictionCandidates(everything);
      expect(units).toEqual([
        { kind: 'image', digest: a.digest, recency: 1, manifests: [a.digest], blobs: [], bytes: 10 },
        // Planned as if a went first: then b takes the layer with it.
        { kind: 'image', digest: b.digest, recency: 2, manifests: [b.digest], blobs: [shared], bytes: 110 },
      ]);
      expect(await s.removeUnits([units[0]!], () => false)).toEqual([]);
      expect(await s.blobSize(shared)).toBe(100);
      expect(await interned(s)).toMatchObject({ unreferenced: 0 });
      // b still names the layer: it is no loose unit of its own.
      expect(await s.evictionCandidates(everything)).toEqual([
        { kind: 'image', digest: b.digest, recency: 2, manifests: [b.digest], blobs: [shared], bytes: 110 },
      ]);
      expect(await s.removeUnits(await s.evictionCandidates(everything), () => false)).toEqual([shared]);
      expect(s.totals()).toEqual({ blobs: 0, blobBytes: 0, manifests: 0, manifestBytes: 0 });
      expect(await interned(s)).toEqual({ total: 0, unreferenced: 0 });
      // The same digests again, from scratch: counted anew.
      await s.putBlob(shared, 100, repo, 5);
      expect((await s.evictionCandidates(everything)).map((u) => u.kind)).toEqual(['blob']);
      await s.putManifest(a, { blobs: [shared], manifests: [] }, repo, 6);
      expect(await s.evictionCandidates(everything)).toEqual([
        { kind: 'image', digest: a.digest, recency: 6, manifests: [a.digest], blobs: [shared], bytes: 110 },
      ]);
    });

    it('a sparse index: a child not cached is no part of its unit until it arrives, then it is a child, not top-level', async () => {
      const s = await fresh();
      const present = manifest('present', 10);
      const absent = manifest('absent', 20);
      const index = { ...manifest('sparse', 30), mediaType: 'application/vnd.oci.image.index.v1+json' };
      const layer = fakeDigest('absent-layer');
      await s.putManifest(present, { blobs: [], manifests: [] }, repo, 1);
      await s.putManifest(index, { blobs: [], manifests: [present.digest, absent.digest] }, repo, 2);
      await s.putTag(repo, 'multi', index.digest, 2);
      expect((await s.evictionCandidates(everything)).map(sorted)).toEqual([
        sorted({ kind: 'image', digest: index.digest, recency: 2, manifests: [index.digest, present.digest], blobs: [], bytes: 40 }),
      ]);
      expect((await s.repositoryTags(repo, '', 10))[0]).toMatchObject({ tag: 'multi', bytes: 40 });
      await s.putBlob(layer, 500, repo, 3);
      await s.putManifest(absent, { blobs: [layer], manifests: [] }, repo, 3);
      expect((await s.evictionCandidates(everything)).map(sorted)).toEqual([
        sorted({ kind: 'image', digest: index.digest, recency: 2, manifests: [index.digest, present.digest, absent.digest], blobs: [layer], bytes: 560 }),
      ]);
      expect((await s.repositoryTags(repo, '', 10))[0]).toMatchObject({ tag: 'multi', bytes: 560 });
      expect(await s.removeUnits(await s.evictionCandidates(everything), () => false)).toEqual([layer]);
      expect(s.totals()).toEqual({ blobs: 0, blobBytes: 0, manifests: 0, manifestBytes: 0 });
      expect(await interned(s)).toEqual({ total: 0, unreferenced: 0 });
    });

    it('references name digests exactly as written: sha512, another algorithm, upper-case hex and non-digests are distinct and counted', async () => {
      const s = await fresh();
      const lower = `sha256:${'ab'.repeat(32)}`;
      const named = [`sha256:${'AB'.repeat(32)}`, `sha384:${'ab'.repeat(48)}`, `sha512:${'cd'.repeat(64)}`, 'not a digest', `sha256:${'ab'.repeat(31)}`];
      for (const d of [...named, lower]) await s.putBlob(d, 7, repo, 1);
      const m = manifest('odd-references', 10);
      await s.putManifest(m, { blobs: named, manifests: [] }, repo, 2);
      // Only the lower-case digest, which no reference names, is loose.
      expect((await s.evictionCandidates(everything)).map(sorted)).toEqual([
        { kind: 'blob', digest: lower, recency: 1, manifests: [], blobs: [lower], bytes: 7 },
        sorted({ kind: 'image', digest: m.digest, recency: 2, manifests: [m.digest], blobs: named, bytes: 10 + 7 * named.length }),
      ]);
      await s.putTag(repo, 'odd', m.digest, 2);
      expect((await s.repositoryTags(repo, '', 10))[0]).toMatchObject({ tag: 'odd', bytes: 10 + 7 * named.length });
      expect((await s.removeUnits(await s.evictionCandidates(everything), () => false)).sort()).toEqual([...named, lower].sort());
      expect(await interned(s)).toEqual({ total: 0, unreferenced: 0 });
    });

    it('hosted manifests with their tags and in-repository parents; garbage, re-checked and removed with its references', async () => {
      const s = await fresh();
      const hosted: RepoRef = { upstream: HOSTED, repo: 'team/app' };
      const layer = fakeDigest('hosted-layer');
      const stale = fakeDigest('hosted-unreferenced');
      await s.putBlob(layer, 100, hosted, 1);
      await s.putBlob(stale, 50, hosted, 1);
      const img = manifest('hosted-image', 10);
      const index = manifest('hosted-index', 20);
      await s.putManifest(img, { blobs: [layer], manifests: [] }, hosted, 5);
      await s.putManifest(index, { blobs: [], manifests: [img.digest] }, hosted, 6);
      await s.putTag(hosted, 'v1', index.digest, 6);
      const byDigest = (xs: Array<{ digest: string }>): unknown[] => [...xs].sort((x, y) => (x.digest < y.digest ? -1 : 1));
      expect(byDigest(await s.hostedManifests('team/app'))).toEqual(byDigest([
        { digest: img.digest, size: 10, pushedAt: 5, pulledAt: 5, tags: [], parents: [index.digest] },
        { digest: index.digest, size: 20, pushedAt: 6, pulledAt: 6, tags: [{ tag: 'v1', at: 6 }], parents: [] },
      ]));
      expect(await s.garbage(10, 10)).toEqual({ blobs: [{ digest: stale, size: 50, repos: ['team/app'] }], manifests: [] });
      // Unlinked, the index is garbage; removing it drops its references: the image is top-level again.
      expect(await s.unlink(hosted, index.digest)).toBe(true);
      expect(await s.garbage(10, 10)).toEqual({ blobs: [{ digest: stale, size: 50, repos: ['team/app'] }], manifests: [{ digest: index.digest, size: 20 }] });
      // The image is still listed by the index: not garbage yet, and not removed when asked.
      expect(await s.removeGarbage([stale, layer], [index.digest, img.digest], 10, () => false)).toEqual({ blobs: [stale], manifests: [index.digest] });
      expect(await s.hostedManifests('team/app')).toEqual([{ digest: img.digest, size: 10, pushedAt: 5, pulledAt: 5, tags: [], parents: [] }]);
      expect(await interned(s)).toMatchObject({ unreferenced: 0 });
      expect(await s.unlink(hosted, img.digest)).toBe(true);
      expect(await s.garbage(10, 10)).toEqual({ blobs: [], manifests: [{ digest: img.digest, size: 10 }] });
      expect(await s.removeGarbage([], [img.digest], 10, () => false)).toEqual({ blobs: [], manifests: [img.digest] });
      expect(await s.garbage(10, 10)).toEqual({ blobs: [{ digest: layer, size: 100, repos: ['team/app'] }], manifests: [] });
      expect(await s.removeGarbage([layer], [], 10, () => false)).toEqual({ blobs: [layer], manifests: [] });
      expect(s.totals()).toEqual({ blobs: 0, blobBytes: 0, manifests: 0, manifestBytes: 0 });
      expect(await interned(s)).toEqual({ total: 0, unreferenced: 0 });
    });

    it('names of digests: tags first, else repositories', async () => {
      const s = await fresh();
      const m = manifest('named', 10);
      await s.putManifest(m, { blobs: [], manifests: [] }, repo, 1);
      const b = fakeDigest('b');
      await s.putBlob(b, 1, other, 1);
      await s.putTag(repo, 'v1', m.digest, 1);
      expect(await s.namesOf([m.digest, b])).toEqual([
        { digest: m.digest, names: ['docker.io/library/app:v1'] },
        { digest: b, names: ['ghcr.io/org/tool'] },
      ]);
    });

    it('state: JSON documents by namespace and key', async () => {
      const s = await fresh();
      expect(await s.getState('uploads', 'a')).toBeUndefined();
      await s.putState('uploads', 'b', { offset: 2 });
      await s.putState('uploads', 'a', { offset: 1, parts: ['x'] });
      await s.putState('jobs', 'a', 'other namespace');
      expect(await s.getState('uploads', 'a')).toEqual({ offset: 1, parts: ['x'] });
      expect(await s.listState('uploads')).toEqual([{ key: 'a', value: { offset: 1, parts: ['x'] } }, { key: 'b', value: { offset: 2 } }]);
      await s.deleteState('uploads', 'a');
      expect(await s.listState('uploads')).toEqual([{ key: 'b', value: { offset: 2 } }]);
      expect(s.healthy()).toBe(true);
    });
  });
}
