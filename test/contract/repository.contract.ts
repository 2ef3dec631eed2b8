/**
 * The Repository contract, read side: what every repository answers the same way, proxied
 * or hosted. A fixture seeds content (upstream for a proxy, a push for a hosted one) and
 * gives the Repository under test. Call runRepositoryReadContract(name, factory).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
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

/** Fixtures made in a suite, cleaned up after each test. */
function fixtureScope<F extends { cleanup(): Promise<void> }>(make: () => Promise<F>): () => Promise<F> {
  const fixtures: F[] = [];
  afterEach(async () => {
    for (const f of fixtures.splice(0)) await f.cleanup();
  });
  return async () => {
    const f = await make();
    fixtures.push(f);
    return f;
  };
}

export function runRepositoryReadContract(name: string, make: () => Promise<RepositoryFixture>): void {
  describe(`Repository contract (read): ${name}`, () => {
    const fresh = fixtureScope(make);
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

/** A readable of `b` (a request body). */
export function bodyOf(b: Buffer): Readable {
  return Readable.from(b.length ? [b] : []);
}

const sha512 = (b: Buffer): string => `sha512:${createHash('sha512').update(b).digest('hex')}`;

export interface WritableFixture {
  repo: Repository;
  /** Another writable repository of the same kind (mount sources). */
  other: Repository;
  /** A fresh Repository object for the same name (e.g. after a restart); defaults to `repo`. */
  reopen?(): Promise<Repository>;
  cleanup(): Promise<void>;
}

/** Pushes a blob monolithically; returns its digest. */
export async function pushBlob(repo: Repository, bytes: Buffer, digest = sha(bytes)): Promise<string> {
  const a = await repo.upload({ op: 'start', digest, body: bodyOf(bytes) });
  expect(a.status).toBe(201);
  return digest;
}

/** Pushes a one-layer image (config, layer, manifest) under `tag`. */
export async function pushImage(repo: Repository, tag: string, extra: Record<string, unknown> = {}): Promise<{ digest: string; manifest: Buffer; layer: Buffer }> {
  const p = imageParts(`${tag}-${Math.random()}`, extra);
  await pushBlob(repo, p.config);
  await pushBlob(repo, p.layer);
  const r = await repo.putManifest(tag, bodyOf(p.manifest), OCI_MANIFEST);
  return { digest: r.digest, manifest: p.manifest, layer: p.layer };
}

/**
 * The Repository contract, write side (OCI distribution spec: push, discovery, management),
 * for repositories that take pushes.
 */
export function runRepositoryWriteContract(name: string, make: () => Promise<WritableFixture>): void {
  describe(`Repository contract (write): ${name}`, () => {
    const fresh = fixtureScope(make);
    const get = { method: 'GET' as const, accepted: [], acceptHeader: undefined };

    it('monolithic POST with sha256 and sha512: 201, Docker-Content-Digest in the client\'s algorithm, readable back', async () => {
      const f = await fresh();
      const bytes = randomBytes(70_000);
      for (const digest of [sha(bytes), sha512(bytes)]) {
        const a = await f.repo.upload({ op: 'start', digest, body: bodyOf(bytes) });
        expect(a).toMatchObject({ status: 201, headers: { 'docker-content-digest': digest }, location: { blob: digest } });
        expect((await bodyBytes(await f.repo.getBlob(digest, { method: 'GET', range: undefined }))).equals(bytes)).toBe(true);
      }
    });

    it('monolithic POST with the wrong digest: 400 DIGEST_INVALID and nothing stored', async () => {
      const f = await fresh();
      const bytes = randomBytes(1000);
      const wrong = sha(Buffer.from('other'));
      expect(await codeOf(f.repo.upload({ op: 'start', digest: wrong, body: bodyOf(bytes) }))).toBe('400 DIGEST_INVALID');
      expect(await codeOf(f.repo.getBlob(wrong, { method: 'HEAD', range: undefined }))).toBe('404 BLOB_UNKNOWN');
      expect(await codeOf(f.repo.getBlob(sha(bytes), { method: 'HEAD', range: undefined }))).toBe('404 BLOB_UNKNOWN');
      expect(await codeOf(f.repo.upload({ op: 'start', digest: 'sha256:nothex', body: bodyOf(bytes) }))).toBe('400 DIGEST_INVALID');
    });

    it('chunked: PATCH in order with Content-Range, status GET, out-of-order 416, PUT with the last chunk', async () => {
      const f = await fresh();
      const bytes = randomBytes(30_000);
      const start = await f.repo.upload({ op: 'start' });
      expect(start.status).toBe(202);
      const session = (start.location as { session: string }).session;
      const a1 = await f.repo.upload({ op: 'append', session, body: bodyOf(bytes.subarray(0, 10_000)), contentRange: '0-9999' });
      expect(a1).toMatchObject({ status: 202, headers: { range: '0-9999' } });
      // A chunk that does not start where the upload ends: 416, and the upload is unchanged.
      expect(await codeOf(f.repo.upload({ op: 'append', session, body: bodyOf(bytes.subarray(20_000)), contentRange: '20000-29999' }))).toBe('416 RANGE_INVALID');
      expect(await codeOf(f.repo.upload({ op: 'append', session, body: bodyOf(bytes.subarray(0, 100)), contentRange: '0-99' }))).toBe('416 RANGE_INVALID');
      expect(await f.repo.upload({ op: 'status', session })).toMatchObject({ status: 204, headers: { range: '0-9999' } });
      // A chunk whose length is not what its Content-Range says: 400 SIZE_INVALID, cut off again.
      expect(await codeOf(f.repo.upload({ op: 'append', session, body: bodyOf(bytes.subarray(10_000, 15_000)), contentRange: '10000-19999' }))).toBe('400 SIZE_INVALID');
      expect(await f.repo.upload({ op: 'status', session })).toMatchObject({ status: 204, headers: { range: '0-9999' } });
      await f.repo.upload({ op: 'append', session, body: bodyOf(bytes.subarray(10_000, 20_000)) });
      const done = await f.repo.upload({ op: 'finish', session, digest: sha(bytes), body: bodyOf(bytes.subarray(20_000)) });
      expect(done).toMatchObject({ status: 201, headers: { 'docker-content-digest': sha(bytes) } });
      expect((await bodyBytes(await f.repo.getBlob(sha(bytes), { method: 'GET', range: undefined }))).equals(bytes)).toBe(true);
      // The session is over.
      expect(await codeOf(f.repo.upload({ op: 'status', session }))).toBe('404 BLOB_UPLOAD_UNKNOWN');
    });

    it('chunked with a digest mismatch at PUT: 400 DIGEST_INVALID, the session ends, nothing stored', async () => {
      const f = await fresh();
      const bytes = randomBytes(5000);
      const session = ((await f.repo.upload({ op: 'start' })).location as { session: string }).session;
      await f.repo.upload({ op: 'append', session, body: bodyOf(bytes) });
      expect(await codeOf(f.repo.upload({ op: 'finish', session, digest: sha(Buffer.from('x')) }))).toBe('400 DIGEST_INVALID');
      expect(await codeOf(f.repo.upload({ op: 'status', session }))).toBe('404 BLOB_UPLOAD_UNKNOWN');
      expect(await codeOf(f.repo.getBlob(sha(bytes), { method: 'HEAD', range: undefined }))).toBe('404 BLOB_UNKNOWN');
      expect(await codeOf(f.repo.upload({ op: 'finish', session: 'nosuchsession', digest: sha(bytes) }))).toBe('404 BLOB_UPLOAD_UNKNOWN');
    });

    it('cancel DELETE ends a session; a session of another repository is unknown here', async () => {
      const f = await fresh();
      const session = ((await f.repo.upload({ op: 'start' })).location as { session: string }).session;
      expect(await codeOf(f.other.upload({ op: 'status', session }))).toBe('404 BLOB_UPLOAD_UNKNOWN');
      expect((await f.repo.upload({ op: 'cancel', session })).status).toBe(204);
      expect(await codeOf(f.repo.upload({ op: 'status', session }))).toBe('404 BLOB_UPLOAD_UNKNOWN');
    });

    it('mount: 201 from a repository that has the blob; 202 with a new session when it cannot', async () => {
      const f = await fresh();
      const bytes = randomBytes(2000);
      const digest = await pushBlob(f.other, bytes);
      const mounted = await f.repo.upload({ op: 'start', mount: { digest, from: f.other.name } });
      expect(mounted).toMatchObject({ status: 201, location: { blob: digest } });
      expect((await f.repo.getBlob(digest, { method: 'HEAD', range: undefined })).size).toBe(2000);
      const missing = sha(Buffer.from('not there'));
      const fallback = await f.repo.upload({ op: 'start', mount: { digest: missing, from: f.other.name } });
      expect(fallback.status).toBe(202);
      expect(fallback.location).toHaveProperty('session');
      const notAllowed = await f.repo.upload({ op: 'start', mount: { digest, from: undefined } });
      expect(notAllowed.status).toBe(202);
    });

    it('manifest PUT by tag and by digest; a wrong digest, a missing blob, a Content-Type that disagrees: 400 with the spec codes', async () => {
      const f = await fresh();
      const img = await pushImage(f.repo, 'v1');
      expect((await f.repo.getManifest('v1', false, get)).digest).toBe(img.digest);
      const p = imageParts('by-digest');
      await pushBlob(f.repo, p.config);
      await pushBlob(f.repo, p.layer);
      expect(await codeOf(f.repo.putManifest(sha(Buffer.from('wrong')), bodyOf(p.manifest), OCI_MANIFEST))).toBe('400 DIGEST_INVALID');
      expect((await f.repo.putManifest(sha(p.manifest), bodyOf(p.manifest), OCI_MANIFEST)).digest).toBe(sha(p.manifest));
      expect((await f.repo.putManifest(sha512(p.manifest), bodyOf(p.manifest), OCI_MANIFEST)).digest).toBe(sha512(p.manifest));
      const lacking = imageParts('missing-layer');
      await pushBlob(f.repo, lacking.config);
      expect(await codeOf(f.repo.putManifest('v2', bodyOf(lacking.manifest), OCI_MANIFEST))).toBe('400 MANIFEST_BLOB_UNKNOWN');
      expect(await codeOf(f.repo.getManifest('v2', false, get))).toBe('404 MANIFEST_UNKNOWN');
      expect(await codeOf(f.repo.putManifest('v3', bodyOf(p.manifest), 'application/vnd.oci.image.index.v1+json'))).toBe('400 MANIFEST_INVALID');
      expect(await codeOf(f.repo.putManifest('v3', bodyOf(Buffer.from('{not json')), OCI_MANIFEST))).toBe('400 MANIFEST_INVALID');
      // A blob pushed to another repository is not this one's.
      const elsewhere = imageParts('elsewhere');
      await pushBlob(f.other, elsewhere.config);
      await pushBlob(f.other, elsewhere.layer);
      expect(await codeOf(f.repo.putManifest('v4', bodyOf(elsewhere.manifest), OCI_MANIFEST))).toBe('400 MANIFEST_BLOB_UNKNOWN');
    });

    it('an index needs its children in the repository', async () => {
      const f = await fresh();
      const child = await pushImage(f.repo, 'amd64');
      const desc = (d: string): Record<string, unknown> => ({ mediaType: OCI_MANIFEST, digest: d, size: 100, platform: { os: 'linux', architecture: 'amd64' } });
      const index = (ds: string[]): Buffer => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: ds.map(desc) }));
      const ok = index([child.digest]);
      expect((await f.repo.putManifest('multi', bodyOf(ok), 'application/vnd.oci.image.index.v1+json')).digest).toBe(sha(ok));
      const sparse = index([child.digest, sha(Buffer.from('absent child'))]);
      expect(await codeOf(f.repo.putManifest('sparse', bodyOf(sparse), 'application/vnd.oci.image.index.v1+json'))).toBe('400 MANIFEST_BLOB_UNKNOWN');
    });

    it('a manifest with a subject answers OCI-Subject; referrers lists it, filtered by artifactType', async () => {
      const f = await fresh();
      const img = await pushImage(f.repo, 'v1');
      const empty = Buffer.from('{}');
      await pushBlob(f.repo, empty);
      const artifact = (type: string): Buffer => Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: type,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(empty), size: 2 },
        layers: [], subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length },
      }));
      const sig = await f.repo.putManifest(sha(artifact('application/vnd.example.sig')), bodyOf(artifact('application/vnd.example.sig')), OCI_MANIFEST);
      expect(sig.headers).toEqual({ 'oci-subject': img.digest });
      const sbom = await f.repo.putManifest(sha(artifact('application/vnd.example.sbom')), bodyOf(artifact('application/vnd.example.sbom')), OCI_MANIFEST);
      const all = JSON.parse((await f.repo.referrers(img.digest, undefined)).body.toString()) as { manifests: Array<{ digest: string }> };
      expect(all.manifests.map((m) => m.digest).sort()).toEqual([sig.digest, sbom.digest].sort());
      const filtered = await f.repo.referrers(img.digest, 'application/vnd.example.sbom');
      expect(filtered.headers).toEqual({ 'oci-filters-applied': 'artifactType' });
      expect((JSON.parse(filtered.body.toString()) as { manifests: Array<{ digest: string; artifactType: string }> }).manifests)
        .toEqual([expect.objectContaining({ digest: sbom.digest, artifactType: 'application/vnd.example.sbom' })]);
    });

    it('tag races: concurrent pushes of one tag leave it naming one complete manifest', async () => {
      const f = await fresh();
      const pushed = await Promise.all(Array.from({ length: 8 }, () => pushImage(f.repo, 'latest')));
      const now = await f.repo.getManifest('latest', false, get);
      expect(pushed.map((p) => p.digest)).toContain(now.digest);
      const body = JSON.parse(now.body!.toString()) as { layers: Array<{ digest: string }> };
      expect((await f.repo.getBlob(body.layers[0]!.digest, { method: 'HEAD', range: undefined })).size).toBe(300_000);
    });
  });
}
