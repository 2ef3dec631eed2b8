/**
 * The S3 BlobStore runs the BlobStore contract against a real S3 endpoint (Ceph's RADOS
 * Gateway, started by this file on loopback; each fixture a fresh key prefix), plus what only
 * an object store has: multipart commits, stray keys, and presigned URLs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { S3BlobStore, type S3Options } from '../../src/store/s3/s3-blob-store.js';
import { runBlobStoreContract } from '../contract/blob-store.contract.js';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { removeTmpDir, tmpDir } from '../helpers/tmp.js';

let rgw: CephRgw;
beforeAll(async () => {
  rgw = await startCephRgw();
}, 120_000);
afterAll(async () => {
  await rgw?.stop();
});

let n = 0;
function make(extra: Partial<S3Options> = {}): { store: S3BlobStore; cleanup(): Promise<void> } {
  const spoolDir = tmpDir('regcache-s3spool-');
  const store = new S3BlobStore({
    bucket: 'regcache-test', prefix: `t${process.pid}-${++n}/`, endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true,
    credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey }, spoolDir, ...extra,
  });
  return {
    store,
    async cleanup() {
      for await (const b of store.list()) await store.delete(b.digest);
      await store.close();
      await removeTmpDir(spoolDir);
    },
  };
}

runBlobStoreContract('s3 (Ceph RGW)', async () => make());

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

it('s3: a blob larger than a part is committed by a multipart upload that leaves no parts behind, and reads back by range', async () => {
  const f = make({ partSize: 5 * 1024 * 1024 });
  try {
    await f.store.init();
    const bytes = randomBytes(12 * 1024 * 1024 + 5);
    const d = digestOf(bytes);
    await f.store.put(d, (async function* () { yield bytes; })());
    expect(await f.store.stat(d)).toBe(bytes.length);
    expect(await f.store.hash(d)).toBe(d);
    const body = await f.store.open(d, bytes.length, 5 * 1024 * 1024 - 3, 10 * 1024 * 1024 + 2);
    const got: Buffer[] = [];
    for await (const c of body!.stream()) got.push(c as Buffer);
    expect(Buffer.concat(got).equals(bytes.subarray(5 * 1024 * 1024 - 3, 10 * 1024 * 1024 + 3))).toBe(true);
    const uploads = await f.store.s3.send(new ListMultipartUploadsCommand({ Bucket: 'regcache-test' }));
    expect(uploads.Uploads ?? []).toEqual([]);
  } finally {
    await f.cleanup();
  }
});

it('s3: keys under the blob prefix that are not digests are stray and removable; list skips them', async () => {
  const f = make();
  try {
    await f.store.init();
    const prefix = `t${process.pid}-${n}/blobs/`;
    await rgw.client().send(new PutObjectCommand({ Bucket: 'regcache-test', Key: `${prefix}sha256/zz/not-a-digest`, Body: 'x' }));
    expect(await f.store.listStray()).toEqual(['sha256/zz/not-a-digest']);
    const listed = [];
    for await (const b of f.store.list()) listed.push(b);
    expect(listed).toEqual([]);
    await f.store.removeStray('sha256/zz/not-a-digest');
    expect(await f.store.listStray()).toEqual([]);
  } finally {
    await f.cleanup();
  }
});

it('s3: a presigned URL serves the blob to a plain HTTP client, and expires', async () => {
  const f = make();
  try {
    await f.store.init();
    const bytes = randomBytes(100_000);
    const d = digestOf(bytes);
    await f.store.put(d, (async function* () { yield bytes; })());
    const url = await f.store.redirectUrl(d, 60);
    const r = await fetch(url);
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.arrayBuffer()).equals(bytes)).toBe(true);
    const tampered = url.replace(/X-Amz-Expires=\d+/, 'X-Amz-Expires=3600');
    expect((await fetch(tampered)).status).toBe(403);
  } finally {
    await f.cleanup();
  }
});
