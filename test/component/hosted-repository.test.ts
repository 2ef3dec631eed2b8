/**
 * The hosted Repository, in-process: it runs the Repository read contract (content seeded by
 * pushes) and the write contract; upload sessions survive a restart; abandoned ones expire.
 */
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OciError } from '../../src/protocol/errors.js';
import {
  bodyOf, pushBlob, pushImage, runRepositoryReadContract, runRepositoryWriteContract,
} from '../contract/repository.contract.js';
import { startProxy, type ProxyHarness } from './proxy-harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const HOSTED_CONFIG = { hostedRepositories: { 'team/**': {} } };

runRepositoryReadContract('hosted', async () => {
  const h = await startProxy(HOSTED_CONFIG);
  const repo = h.app.namespace.resolve({}, undefined, 'team/app');
  return {
    repo,
    seedImage: async (tag) => {
      const img = await pushImage(repo, tag);
      const layer = (JSON.parse(img.manifest.toString()) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
      return { tag, digest: img.digest, body: img.manifest, mediaType: OCI_MANIFEST, layer: { digest: layer, bytes: img.layer } };
    },
    seedReferrer: async (subject, artifactType) => {
      const empty = Buffer.from('{}');
      await pushBlob(repo, empty);
      const body = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(empty), size: 2 },
        layers: [], subject: { mediaType: OCI_MANIFEST, digest: subject, size: 1 },
      }));
      return (await repo.putManifest(sha(body), bodyOf(body), OCI_MANIFEST)).digest;
    },
    cleanup: () => h.close(),
  };
});

runRepositoryWriteContract('hosted', async () => {
  const h = await startProxy(HOSTED_CONFIG);
  return {
    repo: h.app.namespace.resolve({}, undefined, 'team/app'),
    other: h.app.namespace.resolve({}, undefined, 'team/other'),
    cleanup: () => h.close(),
  };
});

describe('hosted upload sessions', () => {
  let h: ProxyHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('a chunked upload resumes after a restart (the session and its spool survive recovery; unacknowledged bytes are cut)', async () => {
    h = await startProxy(HOSTED_CONFIG);
    const bytes = randomBytes(50_000);
    const repo = h.app.namespace.resolve({}, undefined, 'team/app');
    const session = ((await repo.upload({ op: 'start' })).location as { session: string }).session;
    await repo.upload({ op: 'append', session, body: bodyOf(bytes.subarray(0, 20_000)), contentRange: '0-19999' });
    // A crash in the middle of the next chunk leaves unacknowledged bytes in the spool.
    const tmp = join(h.app.currentConfig.dataDir, 'tmp');
    appendFileSync(join(tmp, readdirSync(tmp)[0]!), randomBytes(40_000));
    const h2 = await h.restart();
    h = h2;
    const again = h2.app.namespace.resolve({}, undefined, 'team/app');
    expect(await again.upload({ op: 'status', session })).toMatchObject({ status: 204, headers: { range: '0-19999' } });
    await again.upload({ op: 'append', session, body: bodyOf(bytes.subarray(20_000)), contentRange: '20000-49999' });
    expect((await again.upload({ op: 'finish', session, digest: sha(bytes) })).status).toBe(201);
    expect((await again.getBlob(sha(bytes), { method: 'HEAD', range: undefined })).size).toBe(50_000);
    // The stored file is exactly the blob: the 40,000 bytes past the acknowledged 20,000 were cut.
    expect(statSync(h2.app.blobs.layout.blobPath(sha(bytes))).size).toBe(50_000);
  });

  it('abandoned sessions expire after hosted.uploadExpiry with their files; active ones stay', async () => {
    h = await startProxy({ ...HOSTED_CONFIG, hosted: { uploadExpiry: '1h' } });
    const repo = h.app.namespace.resolve({}, undefined, 'team/app');
    const old = ((await repo.upload({ op: 'start' })).location as { session: string }).session;
    await repo.upload({ op: 'append', session: old, body: bodyOf(randomBytes(1000)) });
    h.clock.now += 50 * 60_000;
    const recent = ((await repo.upload({ op: 'start' })).location as { session: string }).session;
    h.clock.now += 20 * 60_000;
    const tmp = join(h.app.currentConfig.dataDir, 'tmp');
    expect(readdirSync(tmp)).toHaveLength(2);
    expect(await h.app.hosted.expireUploads()).toBe(1);
    expect(readdirSync(tmp)).toHaveLength(1);
    await expect(repo.upload({ op: 'status', session: old })).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    expect((await repo.upload({ op: 'status', session: recent })).status).toBe(204);
  });

  it('concurrent uploads of the same blob store it once and both succeed', async () => {
    h = await startProxy(HOSTED_CONFIG);
    const bytes = randomBytes(200_000);
    const repos = ['team/a', 'team/b', 'team/c'].map((n) => h!.app.namespace.resolve({}, undefined, n));
    await Promise.all(repos.map((r) => pushBlob(r, bytes)));
    for (const r of repos) expect((await r.getBlob(sha(bytes), { method: 'HEAD', range: undefined })).size).toBe(200_000);
    expect(h.app.meta.totals().blobs).toBe(1);
  });

  it('retention never evicts what was pushed', async () => {
    h = await startProxy({ ...HOSTED_CONFIG, retention: { maxAge: '1h', interval: 0 } });
    const repo = h.app.namespace.resolve({}, undefined, 'team/app');
    const img = await pushImage(repo, 'v1');
    h.clock.now += 48 * 3_600_000;
    const plan = await h.app.sweep();
    expect(plan.units).toEqual([]);
    expect((await repo.getManifest('v1', false, { method: 'GET', accepted: [], acceptHeader: undefined })).digest).toBe(img.digest);
  });

  it('DELETE follows the pattern\'s config: 405 UNSUPPORTED when refused, 202 semantics when allowed', async () => {
    h = await startProxy({ hostedRepositories: { 'team/locked': {}, 'team/**': { deleteManifests: true, deleteTags: true, deleteBlobs: true } } });
    const locked = h.app.namespace.resolve({}, undefined, 'team/locked');
    const img = await pushImage(locked, 'v1');
    for (const p of [locked.deleteManifest('v1'), locked.deleteManifest(img.digest), locked.deleteBlob(sha(img.layer))]) {
      await expect(p).rejects.toMatchObject({ code: 'UNSUPPORTED', status: 405 });
    }
    const open = h.app.namespace.resolve({}, undefined, 'team/open');
    const o = await pushImage(open, 'v1');
    await open.deleteManifest('v1');
    await expect(open.getManifest('v1', false, { method: 'GET', accepted: [], acceptHeader: undefined })).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    await open.deleteManifest(o.digest);
    await expect(open.getManifest(o.digest, true, { method: 'GET', accepted: [], acceptHeader: undefined })).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    await expect(open.deleteManifest(o.digest)).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    await open.deleteBlob(sha(o.layer));
    await expect(open.getBlob(sha(o.layer), { method: 'HEAD', range: undefined })).rejects.toBeInstanceOf(OciError);
  });

  it('a sparse index is accepted where the pattern allows it', async () => {
    h = await startProxy({ hostedRepositories: { 'sync/**': { sparseIndex: true } } });
    const repo = h.app.namespace.resolve({}, undefined, 'sync/app');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: OCI_MANIFEST, digest: sha(Buffer.from('absent')), size: 10 }] }));
    expect((await repo.putManifest('v1', bodyOf(index), 'application/vnd.oci.image.index.v1+json')).digest).toBe(sha(index));
  });
});
