/**
 * The Repository contract, read side: what every repository answers the same way, proxied
 * or hosted. A fixture seeds content (upstream for a proxy, a push for a hosted one) and
 * gives the Repository under test. Call runRepositoryReadContract(name, factory).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Writable, type Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { OciError } from '../../src/protocol/errors.js';
import type { BlobAnswer, Repository } from '../../src/registry/repository.js';
import type { BlobBody } from '../../src/store/blob-store.js';

export interface SeededImage {
  tag: string;
  digest: string;
  body: Buffer;
  mediaType: string;
  layer: { digest: string; bytes: Buffer };
}

export interface RepositoryFixture {
  repo: Repository;
  /** Puts an image (a config and one layer) under `tag`. */
  seedImage(tag: string): Promise<SeededImage>;
  /** Puts an artifact manifest whose subject is `subject`; returns its digest. */
  seedReferrer(subject: string, artifactType: string): Promise<string>;
  cleanup(): Promise<void>;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Builds the bytes of a one-layer OCI image (config + layer + manifest). */
export function imageParts(seed: string, extra: Record<string, unknown> = {}): { config: Buffer; layer: Buffer; manifest: Buffer } {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = randomBytes(300_000);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
    ...extra,
  }));
  return { config, layer, manifest };
}

export async function bodyBytes(a: BlobAnswer): Promise<Buffer> {
  const body = a.body!;
  const out: Buffer[] = [];
  if (typeof (body as BlobBody).writeTo === 'function') {
    await (body as BlobBody).writeTo(new Writable({ write(c: Buffer, _e, cb): void { out.push(Buffer.from(c)); cb(); } }));
  } else {
    for await (const c of body as Readable) out.push(c as Buffer);
  }
  return Buffer.concat(out);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return err instanceof OciError ? `${err.status} ${err.code}` : `thrown ${(err as Error).message}`;
  }
}

export function runRepositoryReadContract(name: string, make: () => Promise<RepositoryFixture>): void {
  describe(`Repository contract (read): ${name}`, () => {
    const fixtures: RepositoryFixture[] = [];
    const fresh = async (): Promise<RepositoryFixture> => {
      const f = await make();
      fixtures.push(f);
      return f;
    };
    afterEach(async () => {
      for (const f of fixtures.splice(0)) await f.cleanup();
    });
    const get = { method: 'GET' as const, accepted: [], acceptHeader: undefined };

    it('manifests by tag and by digest, GET and HEAD, with digest, type and size', async () => {
      const f = await fresh();
      const img = await f.seedImage('v1');
      const byTag = await f.repo.getManifest('v1', false, get);
      expect(byTag).toMatchObject({ digest: img.digest, mediaType: img.mediaType, size: img.body.length });
      expect(byTag.body!.equals(img.body)).toBe(true);
      const head = await f.repo.getManifest('v1', false, { ...get, method: 'HEAD' });
      expect(head).toMatchObject({ digest: img.digest, size: img.body.length });
      expect(head.body).toBeUndefined();
      const byDigest = await f.repo.getManifest(img.digest, true, get);
      expect(byDigest.body!.equals(img.body)).toBe(true);
    });

    it('unknown manifests and blobs: 404 with the spec codes', async () => {
      const f = await fresh();
      await f.seedImage('v1');
      expect(await codeOf(f.repo.getManifest('nope', false, get))).toBe('404 MANIFEST_UNKNOWN');
      expect(await codeOf(f.repo.getManifest(sha(Buffer.from('x')), true, get))).toBe('404 MANIFEST_UNKNOWN');
      expect(await codeOf(f.repo.getBlob(sha(Buffer.from('y')), { method: 'GET', range: undefined }))).toBe('404 BLOB_UNKNOWN');
    });

    it('blobs: whole, a range (206), HEAD', async () => {
      const f = await fresh();
      const img = await f.seedImage('v1');
      const whole = await f.repo.getBlob(img.layer.digest, { method: 'GET', range: undefined });
      expect(whole.size).toBe(img.layer.bytes.length);
      expect((await bodyBytes(whole)).equals(img.layer.bytes)).toBe(true);
      const part = await f.repo.getBlob(img.layer.digest, { method: 'GET', range: 'bytes=100-199' });
      expect(part.range).toEqual({ start: 100, end: 199 });
      expect((await bodyBytes(part)).equals(img.layer.bytes.subarray(100, 200))).toBe(true);
      const head = await f.repo.getBlob(img.layer.digest, { method: 'HEAD', range: undefined });
      expect(head.size).toBe(img.layer.bytes.length);
      expect(head.body).toBeUndefined();
    });

    it('tags list in order, paged with n and last', async () => {
      const f = await fresh();
      for (const t of ['b', 'a', 'c']) await f.seedImage(t);
      expect((await f.repo.listTags(undefined, undefined)).tags).toEqual(['a', 'b', 'c']);
      const first = await f.repo.listTags(1, undefined);
      expect(first.tags).toEqual(['a']);
      expect((await f.repo.listTags(2, 'a')).tags).toEqual(['b', 'c']);
    });

    it('referrers: an OCI index of the manifests with that subject; none is an empty index, never 404', async () => {
      const f = await fresh();
      const img = await f.seedImage('v1');
      const sig = await f.seedReferrer(img.digest, 'application/vnd.example.sig');
      const all = JSON.parse((await f.repo.referrers(img.digest, undefined)).body.toString()) as { manifests: Array<{ digest: string }> };
      expect(all.manifests.map((m) => m.digest)).toEqual([sig]);
      const none = await f.repo.referrers(sha(Buffer.from('no subject')), undefined);
      expect(JSON.parse(none.body.toString())).toMatchObject({ schemaVersion: 2, manifests: [] });
    });
  });
}
