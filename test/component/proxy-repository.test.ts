/**
 * The proxy Repository, in-process in front of a fake upstream: it runs the Repository read
 * contract, and the cache's decisions are asserted as upstream hit counts.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { OciError } from '../../src/protocol/errors.js';
import { bodyBytes, imageParts, runRepositoryReadContract } from '../contract/repository.contract.js';
import { startProxy, type ProxyHarness } from './proxy-harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function seed(h: ProxyHarness, repo: string, tag: string, extra: Record<string, unknown> = {}): { digest: string; body: Buffer; layer: string; layerBytes: Buffer } {
  const p = imageParts(`${repo}:${tag}`, extra);
  h.up.putBlob(repo, p.config);
  const layer = h.up.putBlob(repo, p.layer);
  const digest = h.up.putManifest(repo, p.manifest, OCI_MANIFEST, tag);
  return { digest, body: p.manifest, layer, layerBytes: p.layer };
}

runRepositoryReadContract('proxy', async () => {
  const h = await startProxy();
  return {
    repo: h.repo('lib/app'),
    seedImage: async (tag) => {
      const s = seed(h, 'lib/app', tag);
      return { tag, digest: s.digest, body: s.body, mediaType: OCI_MANIFEST, layer: { digest: s.layer, bytes: s.layerBytes } };
    },
    seedReferrer: async (subject, artifactType) => {
      const empty = Buffer.from('{}');
      h.up.putBlob('lib/app', empty);
      const body = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(empty), size: 2 },
        layers: [], subject: { mediaType: OCI_MANIFEST, digest: subject, size: 1 },
      }));
      return h.up.putManifest('lib/app', body, OCI_MANIFEST);
    },
    cleanup: () => h.close(),
  };
});

describe('proxy decisions, counted at the upstream', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());
  const get = { method: 'GET' as const, accepted: [], acceptHeader: undefined };

  it('a tag is fetched once, trusted for tagTTL, then revalidated with one HEAD and no GET', async () => {
    h = await startProxy();
    const s = seed(h, 'lib/app', 'v1');
    const repo = h.repo('lib/app');
    expect((await repo.getManifest('v1', false, get)).source).toBe('miss');
    expect(h.up.count('GET', 'manifest')).toBe(1);
    expect((await repo.getManifest('v1', false, get)).source).toBe('hit');
    expect(h.up.requests.filter((r) => r.kind === 'manifest')).toHaveLength(1);
    h.clock.now += 6 * 60_000;
    const again = await repo.getManifest('v1', false, get);
    expect(again).toMatchObject({ source: 'revalidated', digest: s.digest });
    expect(h.up.count('HEAD', 'manifest')).toBe(1);
    expect(h.up.count('GET', 'manifest')).toBe(1);
  });

  it('revalidation failing with 503 serves the cached manifest stale; a 404 is passed on', async () => {
    h = await startProxy();
    seed(h, 'lib/app', 'v1');
    const repo = h.repo('lib/app');
    await repo.getManifest('v1', false, get);
    h.clock.now += 6 * 60_000;
    h.up.script = (r, res) => {
      if (r.kind !== 'manifest') return false;
      res.writeHead(503, { 'content-length': '0' }).end();
      return true;
    };
    expect((await repo.getManifest('v1', false, get)).source).toBe('stale');
    h.up.script = (r, res) => {
      if (r.kind !== 'manifest') return false;
      res.writeHead(404, { 'content-length': '0' }).end();
      return true;
    };
    h.clock.now += 6 * 60_000;
    await expect(repo.getManifest('v1', false, get)).rejects.toMatchObject({ status: 404, code: 'MANIFEST_UNKNOWN' });
  });

  it('a client HEAD never causes an upstream GET', async () => {
    h = await startProxy();
    seed(h, 'lib/app', 'v1');
    const a = await h.repo('lib/app').getManifest('v1', false, { ...get, method: 'HEAD' });
    expect(a.source).toBe('miss');
    expect(h.up.count('GET', 'manifest')).toBe(0);
    expect(h.up.count('HEAD', 'manifest')).toBe(1);
  });

  it('concurrent GETs of one cold blob make one upstream GET, and a second repository must prove it has the blob (HEAD) before it is served there', async () => {
    h = await startProxy();
    const s = seed(h, 'lib/app', 'v1');
    const repo = h.repo('lib/app');
    const all = await Promise.all(Array.from({ length: 10 }, () => repo.getBlob(s.layer, { method: 'GET', range: undefined })));
    for (const a of all) expect((await bodyBytes(a)).equals(s.layerBytes)).toBe(true);
    expect(h.up.count('GET', 'blob')).toBe(1);
    await h.app.proxy.blobs.idle();
    // Repository B's manifest names the same layer: that alone never links the layer to B.
    const p = imageParts('other');
    h.up.putBlob('evil/app', p.config);
    const evil = JSON.parse(p.manifest.toString()) as { layers: Array<{ digest: string; size: number }> };
    evil.layers[0] = { ...evil.layers[0]!, digest: s.layer, size: s.layerBytes.length };
    h.up.putManifest('evil/app', Buffer.from(JSON.stringify(evil)), OCI_MANIFEST, 'v1');
    const evilRepo = h.repo('evil/app');
    await evilRepo.getManifest('v1', false, get);
    await expect(evilRepo.getBlob(s.layer, { method: 'GET', range: undefined })).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    expect(h.up.requests.filter((r) => r.method === 'HEAD' && r.path === `/v2/evil/app/blobs/${s.layer}`)).toHaveLength(1);
  });

  it('a manifest cached through one repository, asked by digest through another: the scope HEAD carries the full manifest Accept list', async () => {
    h = await startProxy();
    const s = seed(h, 'lib/app', 'v1');
    h.up.putManifest('lib/mirror', s.body, OCI_MANIFEST);
    await h.repo('lib/app').getManifest('v1', false, get);
    const a = await h.repo('lib/mirror').getManifest(s.digest, true, get);
    expect(a.source).toBe('hit');
    const head = h.up.requests.find((r) => r.method === 'HEAD' && r.path === `/v2/lib/mirror/manifests/${s.digest}`);
    expect(head?.accept).toContain(OCI_MANIFEST);
    expect(head?.accept).toContain(OCI_INDEX);
  });

  it('a client that accepts only Docker schema2, asking for an OCI tag: one upstream GET per tag TTL, not one per request', async () => {
    h = await startProxy();
    seed(h, 'lib/app', 'v1');
    h.up.script = (r, res) => {
      if (r.kind !== 'manifest' || r.accept?.includes(OCI_MANIFEST)) return false;
      const body = Buffer.from(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'OCI manifest found, but accept header does not support OCI manifests' }] }));
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': String(body.length) }).end(body);
      return true;
    };
    const repo = h.repo('lib/app');
    await repo.getManifest('v1', false, get); // cached for everyone
    const schema2 = { method: 'GET' as const, accepted: [DOCKER_MANIFEST], acceptHeader: DOCKER_MANIFEST };
    for (let i = 0; i < 20; i++) {
      const err = await repo.getManifest('v1', false, schema2).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(OciError);
      expect((err as OciError).status).toBe(404);
    }
    expect(h.up.requests.filter((r) => r.kind === 'manifest' && r.accept === DOCKER_MANIFEST)).toHaveLength(1);
    // The upstream's own words are passed on in the detail.
    const err = await repo.getManifest('v1', false, schema2).catch((e: unknown) => e as OciError);
    expect(JSON.stringify((err as OciError).detail ?? '') + (err as OciError).message).toContain('accept header does not support OCI manifests');
    h.clock.now += 6 * 60_000;
    await repo.getManifest('v1', false, schema2).catch(() => undefined);
    expect(h.up.requests.filter((r) => r.kind === 'manifest' && r.accept === DOCKER_MANIFEST)).toHaveLength(2);
  });

  it.each([
    ['text/html', 'text/html', undefined],
    ['a media type with CR LF in the body', 'application/json', 'application/vnd.oci.image.manifest.v1+json\r\nx-evil: 1'],
  ])('hostile content: %s is refused with 502 and not stored', async (_label, contentType, bodyType) => {
    h = await startProxy();
    const doc = { schemaVersion: 2, ...(bodyType ? { mediaType: bodyType } : {}), config: { digest: sha(Buffer.from('c')), size: 1 }, layers: [] };
    const body = Buffer.from(JSON.stringify(doc));
    h.up.script = (r, res) => {
      if (r.kind !== 'manifest') return false;
      res.writeHead(200, { 'content-type': contentType, 'content-length': String(body.length), 'docker-content-digest': sha(body) });
      res.end(r.method === 'HEAD' ? undefined : body);
      return true;
    };
    await expect(h.repo('lib/app').getManifest('v1', false, get)).rejects.toMatchObject({ status: 502 });
    expect(await h.app.meta.getManifest(sha(body))).toBeUndefined();
  });

  it('referrers: an upstream without the API (404) gets an index built from the manifests regcache holds', async () => {
    h = await startProxy();
    const s = seed(h, 'lib/app', 'v1');
    h.up.referrersApi = false;
    const empty = Buffer.from('{}');
    h.up.putBlob('lib/app', empty);
    const sig = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example.sig',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(empty), size: 2 }, layers: [],
      subject: { mediaType: OCI_MANIFEST, digest: s.digest, size: s.body.length },
    }));
    const sigDigest = h.up.putManifest('lib/app', sig, OCI_MANIFEST);
    const repo = h.repo('lib/app');
    expect(JSON.parse((await repo.referrers(s.digest, undefined)).body.toString()).manifests).toEqual([]);
    await repo.getManifest(sigDigest, true, get);
    const idx = await repo.referrers(s.digest, 'application/vnd.example.sig');
    expect(JSON.parse(idx.body.toString()).manifests).toEqual([{ mediaType: OCI_MANIFEST, digest: sigDigest, size: sig.length, artifactType: 'application/vnd.example.sig' }]);
    expect(idx.headers).toEqual({ 'oci-filters-applied': 'artifactType' });
    expect(JSON.parse((await repo.referrers(s.digest, 'application/other')).body.toString()).manifests).toEqual([]);
  });

  it('writes answer 405 UNSUPPORTED', async () => {
    h = await startProxy();
    const repo = h.repo('lib/app');
    await expect(repo.upload({ op: 'start' })).rejects.toMatchObject({ status: 405, code: 'UNSUPPORTED' });
    await expect(repo.deleteManifest('v1')).rejects.toMatchObject({ status: 405 });
  });
});

describe('a fill started through another repository', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());

  it('failing upstream (404 there) is not the answer for a repository that has the blob (the soak failure)', async () => {
    h = await startProxy();
    const s = seed(h, 'lib/app', 'v1');
    // The wrong repository's upstream answer comes late, so the valid request joins that fill.
    h.up.script = async (r, res) => {
      if (!r.path.startsWith('/v2/other/repo/blobs/')) return false;
      await new Promise((resolve) => setTimeout(resolve, 300));
      res.writeHead(404, { 'content-length': '0' }).end();
      return true;
    };
    const wrong = h.repo('other/repo').getBlob(s.layer, { method: 'GET', range: undefined });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const right = h.repo('lib/app').getBlob(s.layer, { method: 'GET', range: undefined });
    await expect(wrong).rejects.toMatchObject({ status: 404, code: 'BLOB_UNKNOWN' });
    const a = await right;
    expect((await bodyBytes(a)).equals(s.layerBytes)).toBe(true);
  });
});

describe('referrers from the upstream', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());

  it('an answer sent as text/html goes out as an OCI index of checked descriptors; junk is a 502', async () => {
    h = await startProxy();
    const good = { mediaType: OCI_MANIFEST, digest: sha(Buffer.from('sig')), size: 10, artifactType: 'application/vnd.example.sig' };
    const html = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [good, { mediaType: 'text/html', digest: sha(Buffer.from('x')), size: 1 }, { digest: '<script>' }] }));
    let body = html;
    h.up.script = (r, res) => {
      if (r.kind !== 'referrers') return false;
      res.writeHead(200, { 'content-type': 'text/html', 'content-length': String(body.length) }).end(body);
      return true;
    };
    const repo = h.repo('lib/app');
    const a = await repo.referrers(sha(Buffer.from('subject')), undefined);
    expect(a.contentType).toBe(OCI_INDEX);
    expect(JSON.parse(a.body.toString())).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [good] });
    expect(JSON.parse((await repo.referrers(sha(Buffer.from('subject')), 'application/other')).body.toString()).manifests).toEqual([]);
    body = Buffer.from('<html><script>alert(1)</script></html>');
    await expect(repo.referrers(sha(Buffer.from('subject')), undefined)).rejects.toMatchObject({ status: 502 });
  });
});
