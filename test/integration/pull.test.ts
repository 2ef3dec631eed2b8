/**
 * The core pull path against a real upstream (Debian's docker-registry) and a real client
 * (skopeo): every manifest format, by tag and digest, multi-arch with --all, the second pull
 * served from cache with the upstream gone, coalescing, ranges, HEAD, grammar errors, ns.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, httpProbe, makeImage, makeIndex, makeLayer, pushImage, pushIndex, sha256, skopeoPullDigests,
  startConnectionCounter, startForwarder, startRegcache, startRegistry, stopAllChildren,
  type ConnectionCounter, type Forwarder, type Image, type Index, type Regcache, type Registry,
} from '../helpers/index.js';

let upstream: Registry;
let fwd: Forwarder;
let counter: ConnectionCounter;
let rc: Regcache;
let ociImage: Image;
let dockerImage: Image;
let ociIndex: Index;
let dockerList: Index;
let big: Image;

beforeAll(async () => {
  upstream = await startRegistry();
  fwd = await startForwarder(upstream);
  counter = await startConnectionCounter();
  const shared = makeLayer({ 'etc/shared.txt': 'shared layer' });
  ociImage = makeImage({ format: 'oci', layers: [shared, makeLayer({ 'app/oci.txt': 'oci image' })] });
  dockerImage = makeImage({ format: 'docker', layers: [shared, makeLayer({ 'app/docker.txt': 'docker image' })] });
  const amd = makeImage({ format: 'oci', arch: 'amd64', layers: [makeLayer({ 'arch.txt': 'amd64' })] });
  const arm = makeImage({ format: 'oci', arch: 'arm64', layers: [makeLayer({ 'arch.txt': 'arm64' })] });
  ociIndex = makeIndex('oci', [amd, arm]);
  const damd = makeImage({ format: 'docker', arch: 'amd64', layers: [makeLayer({ 'd.txt': 'damd64' })] });
  const darm = makeImage({ format: 'docker', arch: 'arm64', variant: 'v8', layers: [makeLayer({ 'd.txt': 'darm64' })] });
  dockerList = makeIndex('docker', [damd, darm]);
  big = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 20 * 1024 * 1024, seed: 'big' })] });
  await pushImage(upstream.url, 'library/alpine', '3.20', ociImage);
  await pushImage(upstream.url, 'team/docker-app', 'v1', dockerImage);
  await pushIndex(upstream.url, 'team/multi', 'latest', ociIndex);
  await pushIndex(upstream.url, 'team/dlist', 'latest', dockerList);
  await pushImage(upstream.url, 'team/big', 'v1', big);
  rc = await startRegcache({
    config: {
      cache: { tagTTL: '1s' },
      defaultUpstream: 'docker.io',
      upstreams: {
        'docker.io': { url: fwd.url },
        'ghcr.io': { url: upstream.url },
        'counted.example': { url: counter.url },
      },
    },
  });
});

afterAll(async () => {
  await rc?.stop();
  await fwd?.close();
  await counter?.close();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

const pull = (ref: string, all = false): ReturnType<typeof skopeoPullDigests> => skopeoPullDigests(`docker://${rc.host}/${ref}`, { all });

describe('pull through regcache with skopeo', () => {
  it('OCI image by tag (docker.io official image shorthand) and by digest', async () => {
    const byTag = await pull('alpine:3.20');
    expect(byTag.code, byTag.stderr).toBe(0);
    expect(byTag.manifestDigest).toBe(ociImage.digest);
    expect(byTag.blobs).toEqual([ociImage.config.digest, ...ociImage.layers.map((l) => l.digest)].sort());
    const byDigest = await pull(`library/alpine@${ociImage.digest}`);
    expect(byDigest.code, byDigest.stderr).toBe(0);
    expect(byDigest.manifestDigest).toBe(ociImage.digest);
  });

  it('Docker schema2 image through the ghcr.io path prefix', async () => {
    const r = await pull('ghcr.io/team/docker-app:v1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifestDigest).toBe(dockerImage.digest);
  });

  it('OCI index and Docker manifest list with --all', async () => {
    const oci = await pull('team/multi:latest', true);
    expect(oci.code, oci.stderr).toBe(0);
    expect(oci.manifestDigest).toBe(ociIndex.digest);
    expect(oci.instanceDigests).toEqual(ociIndex.images.map((i) => i.digest).sort());
    const d = await pull('team/dlist:latest', true);
    expect(d.code, d.stderr).toBe(0);
    expect(d.manifestDigest).toBe(dockerList.digest);
    expect(d.instanceDigests).toEqual(dockerList.images.map((i) => i.digest).sort());
  });

  it('serves manifest headers containerd relies on, and HEAD equals GET', async () => {
    const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*';
    const get = await httpProbe(`${rc.url}/v2/library/alpine/manifests/3.20?ns=docker.io`, { headers: { accept } });
    expect(get.status).toBe(200);
    expect(get.headers['content-type']).toBe(ociImage.mediaType);
    expect(get.headers['docker-content-digest']).toBe(ociImage.digest);
    expect(get.headers['oci-namespace']).toBe('docker.io');
    expect(Number(get.headers['content-length'])).toBe(ociImage.size);
    expect(sha256(get.body)).toBe(ociImage.digest);
    const head = await httpProbe(`${rc.url}/v2/library/alpine/manifests/3.20?ns=docker.io`, { method: 'HEAD', headers: { accept } });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(get.headers['content-length']);
    expect(head.headers['docker-content-digest']).toBe(ociImage.digest);
    expect(head.body.length).toBe(0);
  });

  it('respects Accept: a cached OCI index is not served to a client that accepts only schema2', async () => {
    const r = await httpProbe(`${rc.url}/v2/team/multi/manifests/latest`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    // distribution answers from upstream with its own Accept handling: never the cached index type.
    expect(r.headers['content-type']).not.toBe('application/vnd.oci.image.index.v1+json');
  });
});

describe('blobs', () => {
  const layer = (): { digest: string; size: number; bytes: Buffer } => big.layers[0]!;

  it('20 concurrent GETs of one uncached 20 MB blob cause exactly one upstream GET, and all bodies verify', async () => {
    fwd.reset();
    const { digest, size } = layer();
    const results = await Promise.all(Array.from({ length: 20 }, () => httpProbe(`${rc.url}/v2/team/big/blobs/${digest}`, { timeoutMs: 60_000 })));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.body.length).toBe(size);
      expect(sha256(r.body)).toBe(digest);
    }
    expect(fwd.count('GET', `/v2/team/big/blobs/${digest}`)).toBe(1);
  });

  it('range on a hit returns 206 with Content-Range', async () => {
    const { digest, size, bytes } = layer();
    const r = await httpProbe(`${rc.url}/v2/team/big/blobs/${digest}`, { headers: { range: 'bytes=100-199' } });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 100-199/${size}`);
    expect(r.body.equals(bytes.subarray(100, 200))).toBe(true);
    const bad = await httpProbe(`${rc.url}/v2/team/big/blobs/${digest}`, { headers: { range: `bytes=${size}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers['content-range']).toBe(`bytes */${size}`);
    expect(JSON.parse(bad.body.toString()).errors[0].code).toBe('RANGE_INVALID');
  });

  it('range on a miss is answered from the growing file, with one upstream GET', async () => {
    const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 8 * 1024 * 1024, seed: 'range-miss' })] });
    await pushImage(upstream.url, 'team/rangemiss', 'v1', img);
    fwd.reset();
    const l = img.layers[0]!;
    const url = `${rc.url}/v2/team/rangemiss/blobs/${l.digest}`;
    const [tail, whole] = await Promise.all([
      httpProbe(url, { headers: { range: `bytes=${l.size - 1000}-` }, timeoutMs: 30_000 }),
      httpProbe(url, { timeoutMs: 30_000 }),
    ]);
    expect(tail.status).toBe(206);
    expect(tail.body.equals(l.bytes.subarray(l.size - 1000))).toBe(true);
    expect(sha256(whole.body)).toBe(l.digest);
    expect(fwd.count('GET', `/v2/team/rangemiss/blobs/${l.digest}`)).toBe(1);
  });

  it('HEAD of an uncached blob is an upstream HEAD, never a download', async () => {
    const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 1024 * 1024, seed: 'head-only' })] });
    await pushImage(upstream.url, 'team/headonly', 'v1', img);
    fwd.reset();
    const l = img.layers[0]!;
    const r = await httpProbe(`${rc.url}/v2/team/headonly/blobs/${l.digest}`, { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(Number(r.headers['content-length'])).toBe(l.size);
    expect(r.headers['docker-content-digest']).toBe(l.digest);
    expect(fwd.count('GET', /\/blobs\//)).toBe(0);
    expect(fwd.count('HEAD', `/v2/team/headonly/blobs/${l.digest}`)).toBe(1);
    const h2 = await httpProbe(`${rc.url}/v2/team/headonly/manifests/v1`, { method: 'HEAD' });
    expect(h2.status).toBe(200);
    expect(fwd.count('GET', /\/manifests\//)).toBe(0);
  });

  it('does not serve a cached blob through a repository that does not have it', async () => {
    const { digest } = layer();
    const r = await httpProbe(`${rc.url}/v2/team/other-repo/blobs/${digest}`);
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body.toString()).errors[0].code).toBe('BLOB_UNKNOWN');
  });
});

describe('bad requests', () => {
  const cases: Array<[string, number, string, string?]> = [
    ['/v2/Upper/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/a/manifests/-x', 400, 'TAG_INVALID'],
    ['/v2/a/blobs/sha256:1234', 400, 'DIGEST_INVALID'],
    ['/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e', 400, 'DIGEST_INVALID'],
    ['/v2/a%2fb/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/a%00b/manifests/latest', 400, 'NAME_INVALID'],
    [`/v2/${'a'.repeat(300)}/manifests/latest`, 400, 'NAME_INVALID'],
    ['/v2/library/alpine/manifests/3.20?ns=counted.example&ns=docker.io', 400, 'REQUEST_INVALID'],
    ['/v2/a/manifests/latest?ns=evil.example.com', 404, 'NAME_UNKNOWN'],
    ['/v2/a/manifests/latest?ns=localhost', 404, 'NAME_UNKNOWN'],
    ['/v2/a/manifests/latest?ns=127.0.0.1', 404, 'NAME_UNKNOWN'],
    ['/v2/library/alpine/blobs/uploads/', 405, 'UNSUPPORTED', 'POST'],
    ['/v2/library/alpine/manifests/3.20', 405, 'UNSUPPORTED', 'PUT'],
    ['/v2/library/alpine/manifests/3.20', 405, 'UNSUPPORTED', 'DELETE'],
  ];
  it.each(cases)('%s -> %i %s', async (path, status, code, method) => {
    const before = fwd.connections;
    const r = await httpProbe(`${rc.url}${path}`, { method: method ?? 'GET' });
    expect(r.status).toBe(status);
    expect(JSON.parse(r.body.toString()).errors[0].code).toBe(code);
    expect(fwd.connections).toBe(before);
    expect(counter.connections).toBe(0);
  });
});

describe('bad requests on a raw socket (no client-side URL normalisation)', () => {
  const raw = (text: string): Promise<string> => new Promise((resolve, reject) => {
    const sock = connect(rc.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.on('error', reject);
    sock.write(text);
  });
  it.each([
    ['GET /v2/%2e%2e/%2e%2e/manifests/latest HTTP/1.1', '400', 'NAME_INVALID'],
    ['GET /v2/../../etc/manifests/latest HTTP/1.1', '400', 'NAME_INVALID'],
    ['GET /v2/library/alpine/blobs/sha256:%2e%2e HTTP/1.1', '400', 'NAME_INVALID'],
  ])('%s -> %s %s', async (line, status, code) => {
    const before = fwd.connections;
    const res = await raw(`${line}\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(res.split('\r\n')[0]).toContain(` ${status} `);
    expect(res).toContain(`"code":"${code}"`);
    expect(fwd.connections).toBe(before);
  });
  it('huge headers get 431 with an OCI body', async () => {
    const res = await raw(`GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\nConnection: close\r\n\r\n`);
    expect(res.split('\r\n')[0]).toContain(' 431 ');
    expect(res).toContain('"code":"REQUEST_INVALID"');
  });
});

describe('upstream gone', () => {
  it('after a pull, the same image pulls from cache with the upstream stopped and tagTTL expired', async () => {
    const first = await pull('team/docker-app:v1');
    expect(first.code, first.stderr).toBe(0);
    await upstream.stop();
    await new Promise((r) => setTimeout(r, 1500));
    const again = await pull('team/docker-app:v1');
    expect(again.code, again.stderr).toBe(0);
    expect(again.manifestDigest).toBe(dockerImage.digest);
    expect(rc.logs().some((l) => l.msg === 'request' && l.cache === 'stale')).toBe(true);
    await upstream.restart();
  });
});
