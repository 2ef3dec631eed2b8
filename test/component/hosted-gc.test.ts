/**
 * Hosted retention and online GC, in-process with a settable clock: unreferenced pushed blobs
 * go after hosted.gcGrace, never what a manifest references or a PUT has pinned; per-pattern
 * retention (keepTags, untaggedGrace, maxAge); a manifest PUT racing GC never commits a
 * reference to a deleted blob; `regcache gc` shows the hosted part apart from the cached one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { gc } from '../../src/cli/gc.js';
import { OciError } from '../../src/protocol/errors.js';
import { bodyOf, imageParts, pushBlob, pushImage } from '../contract/repository.contract.js';
import { startProxy, type ProxyHarness } from './proxy-harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const H = 3_600_000;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const get = { method: 'GET' as const, accepted: [], acceptHeader: undefined };

describe('hosted GC and retention', () => {
  let h: ProxyHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });
  const blobFile = (d: string): string => h!.app.blobs.layout.blobPath(d);

  it('a pushed blob no manifest references goes after gcGrace (row and file); referenced and pinned ones stay', async () => {
    h = await startProxy({ hostedRepositories: { 'team/**': {} }, hosted: { gcGrace: '1h', gcInterval: 0 } });
    const repo = h.app.namespace.resolve({}, undefined, 'team/app');
    const img = await pushImage(repo, 'v1');
    const loose = await pushBlob(repo, randomBytes(1000));
    const pinned = await pushBlob(repo, randomBytes(1000));
    expect((await h.app.hosted.collect()).blobs).toEqual([]);
    h.clock.now += 2 * H;
    const release = h.app.pins.pin(pinned);
    const r = await h.app.hosted.collect();
    release();
    expect(r.blobs).toEqual([{ digest: loose, size: 1000, repos: ['team/app'] }]);
    expect(existsSync(blobFile(loose))).toBe(false);
    await expect(repo.getBlob(loose, { method: 'HEAD', range: undefined })).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    expect(existsSync(blobFile(pinned))).toBe(true);
    expect((await repo.getManifest('v1', false, get)).digest).toBe(img.digest);
    expect(existsSync(blobFile(sha(img.layer)))).toBe(true);
  });

  it('hosted retention: keepTags drops older tags, untaggedGrace unlinks, then GC frees what only they used', async () => {
    h = await startProxy({ hostedRepositories: { 'team/**': { keepTags: 1, untaggedGrace: '1h' } }, hosted: { gcGrace: '1h', gcInterval: 0 } });
    const repo = h.app.namespace.resolve({}, undefined, 'team/app');
    const old = await pushImage(repo, 'v1');
    h.clock.now += 10 * 60_000;
    const fresh = await pushImage(repo, 'v2');
    h.clock.now += 2 * H;
    const r = await h.app.hosted.collect();
    expect(r.tags).toEqual(['team/app:v1']);
    expect(r.unlinked).toEqual([`team/app@${old.digest}`]);
    expect(r.manifests.map((m) => m.digest)).toEqual([old.digest]);
    const oldConfig = (JSON.parse(old.manifest.toString()) as { config: { digest: string } }).config.digest;
    expect(r.blobs.map((b) => b.digest).sort()).toEqual([sha(old.layer), oldConfig].sort());
    expect(existsSync(blobFile(sha(old.layer)))).toBe(false);
    expect((await repo.getManifest('v2', false, get)).digest).toBe(fresh.digest);
    await expect(repo.getManifest(old.digest, true, get)).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
  });

  it('hosted retention maxAge: an image neither pulled nor pushed for that long goes; a pull keeps it', async () => {
    h = await startProxy({ hostedRepositories: { 'team/**': { maxAge: '24h' } }, hosted: { gcGrace: '1h', gcInterval: 0 } });
    const repo = h.app.namespace.resolve({}, undefined, 'team/app');
    const a = await pushImage(repo, 'a');
    const b = await pushImage(repo, 'b');
    h.clock.now += 20 * H;
    await repo.getManifest('b', false, get);
    h.clock.now += 10 * H;
    const r = await h.app.hosted.collect();
    expect(r.unlinked).toEqual([`team/app@${a.digest}`]);
    expect((await repo.getManifest('b', false, get)).digest).toBe(b.digest);
  });

  it('a manifest PUT racing GC never commits a reference to a deleted blob', async () => {
    h = await startProxy({ hostedRepositories: { 'team/**': {} }, hosted: { gcGrace: '1h', gcInterval: 0 } });
    const repo = h.app.namespace.resolve({}, undefined, 'team/app');
    let committed = 0;
    for (let i = 0; i < 15; i++) {
      const p = imageParts(`race-${i}`);
      await pushBlob(repo, p.config);
      await pushBlob(repo, p.layer);
      h.clock.now += 2 * H; // the blobs are past the grace: GC wants them
      // GC starts after 0..4 event-loop turns, so it lands before, during and after the PUT's check.
      const later = async (): Promise<unknown> => {
        for (let k = 0; k < i % 5; k++) await turn();
        return h!.app.hosted.collect();
      };
      const [put] = await Promise.allSettled([repo.putManifest(`t${i}`, bodyOf(p.manifest), OCI_MANIFEST), later()]);
      if (put.status === 'fulfilled') {
        committed++;
        for (const d of [sha(p.config), sha(p.layer)]) {
          expect((await repo.getBlob(d, { method: 'HEAD', range: undefined })).size).toBeGreaterThan(0);
          expect(existsSync(blobFile(d))).toBe(true);
        }
      } else {
        expect(put.reason).toBeInstanceOf(OciError);
        expect((put.reason as OciError).code).toBe('MANIFEST_BLOB_UNKNOWN');
      }
    }
    // Both outcomes happened: the race was real.
    expect(committed).toBeGreaterThan(0);
    expect(committed).toBeLessThan(15);
  });

  it('regcache gc prints the cached and the hosted part apart, naming repositories and tags', async () => {
    h = await startProxy({ hostedRepositories: { 'team/**': { keepTags: 1 } }, hosted: { gcGrace: '1h', gcInterval: 0 } });
    const repo = h.app.namespace.resolve({}, undefined, 'team/app');
    await pushImage(repo, 'v1');
    h.clock.now += 60_000;
    await pushImage(repo, 'v2');
    const loose = await pushBlob(repo, randomBytes(100));
    const dataDir = h.app.currentConfig.dataDir;
    await h.app.stop(1000);
    const config = join(dataDir, 'gc.yaml');
    writeFileSync(config, `dataDir: ${dataDir}\nhostedRepositories:\n  "team/**": {keepTags: 1}\nhosted: {gcGrace: "0"}\n`);
    let out = '';
    const code = await gc(['--config', config, '--dry-run'], { stdout: (s) => { out += s; }, stderr: () => undefined, env: {} });
    expect(code).toBe(0);
    const [cached, hosted] = out.split('hosted:\n');
    expect(cached).toMatch(/^cached:\n/);
    expect(hosted).toContain('would remove tag team/app:v1 (hosted retention)');
    expect(hosted).toContain(`would remove blob ${loose} [team/app]`);
  });
});
