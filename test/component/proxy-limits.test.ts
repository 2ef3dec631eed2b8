/**
 * Limits on what a hostile upstream can make regcache store or hold (issue 10): references
 * per manifest (item 14), tag-list size with one shared fetch (item 15), a chunked blob
 * larger than retention.maxSize (item 17), and a blob whose index row cannot be written
 * (item 7): each asserted as what is served, what is stored and upstream hit counts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bodyBytes } from '../contract/repository.contract.js';
import { startProxy, type ProxyHarness } from './proxy-harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const get = { method: 'GET' as const, accepted: [], acceptHeader: undefined };

/** A manifest naming `layers` layers (that need not exist: only the manifest is fetched). */
function manifestWith(layers: number): Buffer {
  const d = (i: number): string => sha(Buffer.from(`layer-${i}`));
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d(-1), size: 2 },
    layers: Array.from({ length: layers }, (_, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d(i), size: 1 })),
  }));
}

/** Every file in the blob area (not temp files). */
function storedFiles(h: ProxyHarness): string[] {
  const root = join(h.app.currentConfig.dataDir, 'blobs', 'sha256');
  let dirs: string[] = [];
  try {
    dirs = readdirSync(root);
  } catch {
    return [];
  }
  return dirs.flatMap((p) => readdirSync(join(root, p)));
}

describe('upstream answers regcache refuses to keep', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());

  it('a manifest naming more than cache.maxManifestReferences descriptors is refused (502) and not stored', async () => {
    h = await startProxy({ cache: { tagTTL: '5m', maxManifestReferences: 100 } });
    const ok = manifestWith(99); // config + 99 layers = 100
    const tooMany = manifestWith(100);
    h.up.putManifest('lib/ok', ok, OCI_MANIFEST, 'v1');
    const bad = h.up.putManifest('lib/big', tooMany, OCI_MANIFEST, 'v1');
    expect((await h.repo('lib/ok').getManifest('v1', false, get)).source).toBe('miss');
    await expect(h.repo('lib/big').getManifest('v1', false, get)).rejects.toMatchObject({
      status: 502, code: 'UPSTREAM_MANIFEST_INVALID', message: expect.stringContaining('cache.maxManifestReferences'),
    });
    await expect(h.repo('lib/big').getManifest(bad, true, get)).rejects.toMatchObject({ status: 502 });
    expect(await h.app.meta.getManifest(bad)).toBeUndefined();
    expect(await h.app.meta.getTag({ upstream: 'fake.test', repo: 'lib/big' }, 'v1')).toBeUndefined();
  });

  it('20 concurrent clients of a big tag list share one upstream fetch; over cache.maxTagListSize all get 502 from one fetch', async () => {
    h = await startProxy({ cache: { tagTTL: '5m', maxTagListSize: '1MiB' } });
    const tags = Array.from({ length: 40_000 }, (_, i) => `v${String(i).padStart(6, '0')}`); // ~400 KiB
    const huge = Array.from({ length: 120_000 }, (_, i) => `v${String(i).padStart(6, '0')}`); // ~1.2 MiB
    h.up.script = async (r, res) => {
      if (r.kind !== 'tags') return false;
      const list = r.path.includes('/huge/') ? huge : tags;
      await new Promise((ok) => setTimeout(ok, 50)); // every client asks while the fetch is in flight
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'x', tags: list }));
      return true;
    };
    const all = await Promise.all(Array.from({ length: 20 }, () => h.repo('lib/big').listTags(undefined, undefined)));
    for (const a of all) expect(a.tags).toHaveLength(tags.length);
    expect(h.up.count('GET', 'tags')).toBe(1);
    const refused = await Promise.allSettled(Array.from({ length: 20 }, () => h.repo('lib/huge').listTags(undefined, undefined)));
    for (const r of refused) expect(r).toMatchObject({ status: 'rejected', reason: { status: 502, code: 'UPSTREAM_ERROR' } });
    expect(h.up.count('GET', 'tags')).toBe(2);
  });

  it('a chunked blob larger than retention.maxSize is served whole but not kept', async () => {
    h = await startProxy({ retention: { interval: 0, maxSize: '1MiB' } });
    const bytes = randomBytes(3 * 1024 * 1024);
    const digest = sha(bytes);
    h.up.script = async (r, res) => {
      if (r.kind !== 'blob' || r.method !== 'GET') return false;
      // No Content-Length: the size is known only at the end.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let o = 0; o < bytes.length; o += 256 * 1024) res.write(bytes.subarray(o, o + 256 * 1024));
      res.end();
      return true;
    };
    const a = await h.repo('lib/app').getBlob(digest, { method: 'GET', range: undefined });
    expect((await bodyBytes(a)).equals(bytes)).toBe(true);
    await h.app.proxy.blobs.idle();
    expect(await h.app.meta.blobSize(digest)).toBeUndefined();
    expect(storedFiles(h)).toEqual([]);
    expect(readdirSync(join(h.app.currentConfig.dataDir, 'tmp'))).toEqual([]);
    // A chunked blob under the limit is kept.
    const small = randomBytes(300 * 1024);
    h.up.script = undefined;
    const sd = h.up.putBlob('lib/app', small);
    await bodyBytes(await h.repo('lib/app').getBlob(sd, { method: 'GET', range: undefined }));
    await h.app.proxy.blobs.idle();
    expect(await h.app.meta.blobSize(sd)).toBe(small.length);
  });

  it('a blob whose index row cannot be written is served, and its file removed (no unindexed bytes)', async () => {
    h = await startProxy();
    const bytes = randomBytes(200 * 1024);
    const digest = h.up.putBlob('lib/app', bytes);
    h.app.meta.putBlob = async () => {
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    };
    const a = await h.repo('lib/app').getBlob(digest, { method: 'GET', range: undefined });
    expect((await bodyBytes(a)).equals(bytes)).toBe(true);
    await h.app.proxy.blobs.idle();
    expect(storedFiles(h)).toEqual([]);
    expect(readdirSync(join(h.app.currentConfig.dataDir, 'tmp'))).toEqual([]);
  });
});
