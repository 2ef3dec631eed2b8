/**
 * Proves the integration-test helpers against the real docker-registry, skopeo and openssl.
 * Run: npx vitest run test/helpers-selftest
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { liveChildren, runCommand, stopAllChildren } from '../helpers/children.js';
import { REAPER_MARK } from '../helpers/reaper.js';
import { startConnectionCounter, startForwarder, type Forwarder } from '../helpers/forwarder.js';
import { HttpStreamParser, type Segment } from '../helpers/http-stream.js';
import { httpProbe } from '../helpers/http-probe.js';
import {
  deleteManifest,
  fetchManifest,
  makeImage,
  makeIndex,
  makeLayer,
  MediaType,
  pushImage,
  pushIndex,
  sha256,
  type Image,
} from '../helpers/images.js';
import { freePort, listensOn } from '../helpers/ports.js';
import { startRegcache } from '../helpers/regcache.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { requireTools } from '../helpers/require-tools.js';
import { ociLayoutBlobs, skopeoCopy, skopeoInspectRaw, skopeoPullDigests } from '../helpers/skopeo.js';
import { tarFiles } from '../helpers/tar.js';
import { cleanupAll, tmpDir } from '../helpers/tmp.js';
import { startTokenIssuer, type TokenIssuer } from '../helpers/token-issuer.js';

const T = 60_000;

beforeAll(() => {
  requireTools(['docker-registry', 'skopeo', 'openssl', 'perl', 'tar']);
});

afterAll(async () => {
  await stopAllChildren();
  await cleanupAll();
});

function smallImage(format: 'oci' | 'docker', tag: string, arch = 'amd64'): Image {
  return makeImage({
    format,
    arch,
    labels: { tag },
    layers: [makeLayer({ 'etc/hello.txt': `hello ${tag} ${arch}\n` }), makeLayer({ randomBytes: 100_000, seed: `${tag}-${arch}` })],
  });
}

describe('ports, tools, tmp', () => {
  it('freePort gives distinct bindable ports', async () => {
    const a = await freePort();
    const b = await freePort();
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
  });

  it('listensOn tells which process holds a listening port', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    try {
      expect(listensOn(process.pid, port)).toBe(true);
      expect(listensOn(process.pid, await freePort())).toBe(false);
      expect(listensOn(1, port)).toBe(false);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  it('requireTools names the missing tools and the packages', () => {
    expect(() => requireTools(['skopeo'])).not.toThrow();
    expect(() => requireTools(['skopeo', 'no-such-tool-xyz', 'nginx-nope'])).toThrow(
      'missing tools: no-such-tool-xyz, nginx-nope. Install them with: apt-get install -y no-such-tool-xyz nginx-nope',
    );
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect(() => requireTools(['docker-registry', 'skopeo', 'ctr', 'containerd', 'nginx'])).toThrow(
        'missing tools: docker-registry, skopeo, ctr, containerd, nginx. Install them with: apt-get install -y docker-registry skopeo containerd nginx-light',
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it('tmpDir creates and cleanupAll removes', async () => {
    const d = tmpDir('selftest-');
    expect(existsSync(d)).toBe(true);
    await cleanupAll();
    expect(existsSync(d)).toBe(false);
  });
});

describe('tar, layers, images (offline)', () => {
  it('tar layers unpack with GNU tar to the same files', async () => {
    const long = `${'d'.repeat(80)}/${'e'.repeat(60)}/file.txt`;
    const files = { 'a.txt': 'alpha\n', 'dir/sub/b.bin': Buffer.from([0, 1, 2, 255]), [long]: 'long path\n' };
    const layer = makeLayer(files);
    const dir = tmpDir('selftest-tar-');
    writeFileSync(join(dir, 'layer.tgz'), layer.bytes);
    mkdirSync(join(dir, 'out'));
    const r = await runCommand('tar', ['-xzf', join(dir, 'layer.tgz'), '-C', join(dir, 'out')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const [p, v] of Object.entries(files)) expect(readFileSync(join(dir, 'out', p))).toEqual(Buffer.isBuffer(v) ? v : Buffer.from(v));
    // diff_id is the sha256 of the uncompressed tar; digest the sha256 of the gzip.
    expect(layer.diffId).toBe(sha256(tarFiles(files)));
    expect(layer.digest).toBe(sha256(layer.bytes));
    expect(layer.size).toBe(layer.bytes.length);
  });

  it('a 20 MB seeded random layer takes < 2 s, is reproducible and incompressible', () => {
    const t0 = Date.now();
    const a = makeLayer({ randomBytes: 20 * 1024 * 1024, seed: 'big' });
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(2_000);
    expect(a.size).toBeGreaterThan(20 * 1024 * 1024);
    const b = makeLayer({ randomBytes: 20 * 1024 * 1024, seed: 'big' });
    expect(b.digest).toBe(a.digest);
    expect(makeLayer({ randomBytes: 1024, seed: 'x' }).digest).not.toBe(makeLayer({ randomBytes: 1024, seed: 'y' }).digest);
    expect(makeLayer({ randomBytes: 1024 }).digest).not.toBe(makeLayer({ randomBytes: 1024 }).digest);
  });

  it('image configs list the diff_ids; manifests and indexes reference by digest', () => {
    const l1 = makeLayer({ 'x': '1' });
    const l2 = makeLayer({ 'y': '2' });
    const oci = makeImage({ format: 'oci', layers: [l1, l2], arch: 'arm64', variant: 'v8' });
    const cfg = JSON.parse(oci.config.bytes.toString()) as { architecture: string; os: string; variant: string; rootfs: { diff_ids: string[] } };
    expect(cfg).toMatchObject({ architecture: 'arm64', os: 'linux', variant: 'v8' });
    expect(cfg.rootfs.diff_ids).toEqual([l1.diffId, l2.diffId]);
    expect(oci.mediaType).toBe(MediaType.ociManifest);
    expect(oci.digest).toBe(sha256(oci.bytes));
    const m = JSON.parse(oci.bytes.toString()) as { config: { digest: string; mediaType: string }; layers: { mediaType: string; digest: string }[] };
    expect(m.config).toMatchObject({ digest: oci.config.digest, mediaType: MediaType.ociConfig });
    expect(m.layers.map((l) => l.mediaType)).toEqual([MediaType.ociLayer, MediaType.ociLayer]);
    const docker = makeImage({ format: 'docker', layers: [l1] });
    const dm = JSON.parse(docker.bytes.toString()) as { config: { mediaType: string }; layers: { mediaType: string }[] };
    expect(dm.config.mediaType).toBe(MediaType.dockerConfig);
    expect(dm.layers[0]!.mediaType).toBe(MediaType.dockerLayer);
    const list = makeIndex('docker', [docker]);
    expect(list.mediaType).toBe(MediaType.dockerList);
    expect(JSON.parse(list.bytes.toString())).toMatchObject({
      manifests: [{ digest: docker.digest, size: docker.size, mediaType: MediaType.dockerManifest, platform: { architecture: 'amd64', os: 'linux' } }],
    });
  });
});

describe('http-stream framing', () => {
  const feedAll = (p: HttpStreamParser, data: Buffer, step: number): Segment[] => {
    const segs: Segment[] = [];
    for (let i = 0; i < data.length; i += step) segs.push(...p.feed(data.subarray(i, i + step)));
    return segs;
  };
  for (const step of [1, 3, 7, 1000]) {
    it(`frames keep-alive responses (HEAD, chunked, length) fed ${step} bytes at a time`, () => {
      const stream = Buffer.from(
        'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n' + // HEAD: no body despite Content-Length
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n' +
          'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwxyz' +
          'HTTP/1.1 204 No Content\r\n\r\n',
      );
      const methods = ['HEAD', 'GET', 'GET', 'DELETE'];
      const p = new HttpStreamParser('response', () => methods.shift());
      const segs = feedAll(p, stream, step);
      expect(Buffer.concat(segs.flatMap((s) => (s.kind === 'end' ? [] : [s.bytes])))).toEqual(stream);
      const bodies: string[] = [];
      let cur = '';
      for (const s of segs) {
        if (s.kind === 'body') {
          expect(s.offset).toBe(cur.length);
          cur += s.bytes.toString();
        }
        if (s.kind === 'end') {
          bodies.push(cur);
          cur = '';
        }
      }
      expect(bodies).toEqual(['', 'abcde', 'wxyz', '']);
      expect(segs.filter((s) => s.kind === 'raw')).toEqual([]);
    });
  }
  it('frames requests with bodies so body bytes are never taken for request lines', () => {
    const body = 'GET /fake HTTP/1.1\r\n\r\n';
    const stream = Buffer.from(`PUT /v2/a/blobs/uploads/x HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n${body}GET /v2/ HTTP/1.1\r\nHost: h\r\n\r\n`);
    const heads = feedAll(new HttpStreamParser('request'), stream, 5).flatMap((s) => (s.kind === 'head' ? [`${s.head.method} ${s.head.path}`] : []));
    expect(heads).toEqual(['PUT /v2/a/blobs/uploads/x', 'GET /v2/']);
  });
});

describe('plain registry: push with the helpers, pull with skopeo', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry();
  }, T);
  afterAll(async () => {
    await reg?.stop();
  });

  it('answers /v2/ with 200 and logs', async () => {
    expect(reg.url).toBe(`http://127.0.0.1:${reg.port}`);
    expect(reg.host).toBe(`127.0.0.1:${reg.port}`);
    expect((await httpProbe(`${reg.url}/v2/`)).status).toBe(200);
    expect(reg.logs()).toMatch(/listening on 127\.0\.0\.1/);
  });

  it('OCI image round-trips with the same digests (oci: layout)', async () => {
    const img = smallImage('oci', 'oci1');
    expect(await pushImage(reg.url, 'selftest/oci', 'v1', img)).toBe(img.digest);
    const dir = join(tmpDir('selftest-oci-'), 'layout');
    const r = await skopeoCopy(`docker://${reg.host}/selftest/oci:v1`, `oci:${dir}:v1`);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const layout = ociLayoutBlobs(dir);
    expect(layout.manifests.map((m) => m.digest)).toEqual([img.digest]);
    expect(layout.blobs).toEqual([img.digest, img.config.digest, ...img.layers.map((l) => l.digest)].sort());
    expect(layout.readBlob(img.digest)).toEqual(img.bytes);
    expect(await skopeoInspectRaw(`docker://${reg.host}/selftest/oci:v1`)).toEqual(img.bytes);
  }, T);

  it('Docker schema2 image round-trips byte for byte (dir: layout)', async () => {
    const img = smallImage('docker', 'docker1');
    await pushImage(reg.url, 'selftest/docker', 'v1', img);
    const got = await skopeoPullDigests(`docker://${reg.host}/selftest/docker:v1`);
    expect(got.stderr).toBe('');
    expect(got.code).toBe(0);
    expect(got.manifestDigest).toBe(img.digest);
    expect(got.blobs).toEqual([img.config.digest, ...img.layers.map((l) => l.digest)].sort());
    const m = await fetchManifest(reg.url, 'selftest/docker', 'v1');
    expect(m).toMatchObject({ status: 200, mediaType: MediaType.dockerManifest, digest: img.digest });
  }, T);

  it('OCI index round-trips with --all (oci: and dir: layouts)', async () => {
    const imgs = [smallImage('oci', 'idx', 'amd64'), smallImage('oci', 'idx', 'arm64')];
    const index = makeIndex('oci', imgs);
    expect(await pushIndex(reg.url, 'selftest/ociindex', 'multi', index)).toBe(index.digest);
    const dir = join(tmpDir('selftest-ociidx-'), 'layout');
    const r = await skopeoCopy(`docker://${reg.host}/selftest/ociindex:multi`, `oci:${dir}:multi`, { all: true });
    expect(r.code).toBe(0);
    const layout = ociLayoutBlobs(dir);
    expect(layout.manifests.map((m) => m.digest)).toEqual([index.digest]);
    expect(layout.blobs).toEqual(expect.arrayContaining([index.digest, ...imgs.map((i) => i.digest), ...imgs.flatMap((i) => i.layers.map((l) => l.digest))]));
    const got = await skopeoPullDigests(`docker://${reg.host}/selftest/ociindex:multi`, { all: true });
    expect(got.manifestDigest).toBe(index.digest);
    expect(got.instanceDigests).toEqual(imgs.map((i) => i.digest).sort());
  }, T);

  it('Docker manifest list round-trips with --all; without --all skopeo picks the platform', async () => {
    const imgs = [smallImage('docker', 'list', 'amd64'), smallImage('docker', 'list', 'arm64')];
    const list = makeIndex('docker', imgs);
    await pushIndex(reg.url, 'selftest/dockerlist', 'multi', list);
    const all = await skopeoPullDigests(`docker://${reg.host}/selftest/dockerlist:multi`, { all: true });
    expect(all.code).toBe(0);
    expect(all.manifestDigest).toBe(list.digest);
    expect(all.instanceDigests).toEqual(imgs.map((i) => i.digest).sort());
    const arm = await skopeoPullDigests(`docker://${reg.host}/selftest/dockerlist:multi`, { arch: 'arm64', os: 'linux' });
    expect(arm.code).toBe(0);
    expect(arm.manifestDigest).toBe(imgs[1]!.digest);
    expect(await skopeoInspectRaw(`docker://${reg.host}/selftest/dockerlist:multi`)).toEqual(list.bytes);
  }, T);

  it('delete works and restart keeps content on the same port', async () => {
    const img = smallImage('oci', 'del');
    await pushImage(reg.url, 'selftest/del', 'v1', img);
    expect(await deleteManifest(reg.url, 'selftest/del', img.digest)).toBe(202);
    expect((await fetchManifest(reg.url, 'selftest/del', 'v1')).status).toBe(404);
    const keep = smallImage('oci', 'keep');
    await pushImage(reg.url, 'selftest/keep', 'v1', keep);
    await reg.stop();
    expect(reg.running).toBe(false);
    await expect(httpProbe(`${reg.url}/v2/`)).rejects.toThrow();
    await reg.restart();
    expect(reg.running).toBe(true);
    expect((await fetchManifest(reg.url, 'selftest/keep', 'v1')).digest).toBe(keep.digest);
  }, T);
});

describe('htpasswd registry', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'htpasswd', htpasswd: { user: 'bob', password: 's3cret:with-colon' } });
  }, T);
  afterAll(async () => {
    await reg?.stop();
  });

  it('requires Basic, accepts the right credentials for push and skopeo pull', async () => {
    const v2 = await httpProbe(`${reg.url}/v2/`);
    expect(v2.status).toBe(401);
    expect(v2.headers['www-authenticate']).toMatch(/^Basic /);
    const img = smallImage('oci', 'basic');
    await expect(pushImage(reg.url, 'sec/img', 'v1', img)).rejects.toThrow(/401/);
    await expect(pushImage(reg.url, 'sec/img', 'v1', img, { user: 'bob', password: 'wrong' })).rejects.toThrow(/401/);
    await pushImage(reg.url, 'sec/img', 'v1', img, { user: 'bob', password: 's3cret:with-colon' });
    const ok = await skopeoPullDigests(`docker://${reg.host}/sec/img:v1`, { srcCreds: 'bob:s3cret:with-colon' });
    expect(ok.code).toBe(0);
    expect(ok.manifestDigest).toBe(img.digest);
    const anon = await skopeoPullDigests(`docker://${reg.host}/sec/img:v1`);
    expect(anon.code).not.toBe(0);
    const bad = await skopeoPullDigests(`docker://${reg.host}/sec/img:v1`, { srcCreds: 'bob:nope' });
    expect(bad.code).not.toBe(0);
  }, T);
});

describe('token-auth registry with the token issuer', () => {
  let issuer: TokenIssuer;
  let reg: Registry;
  beforeAll(async () => {
    issuer = await startTokenIssuer({ service: 'selftest-registry', users: { alice: 'wonderland' } });
    reg = await startRegistry({ auth: 'token', tokenIssuer: issuer });
  }, T);
  afterAll(async () => {
    await reg?.stop();
    await issuer?.close();
  });

  it('challenges with the issuer realm', async () => {
    const v2 = await httpProbe(`${reg.url}/v2/`);
    expect(v2.status).toBe(401);
    expect(v2.headers['www-authenticate']).toBe(`Bearer realm="${issuer.realm}",service="selftest-registry"`);
  });

  it('push through the Bearer flow, pull with skopeo --src-creds and anonymously', async () => {
    const img = smallImage('docker', 'token');
    await pushImage(reg.url, 'tok/img', 'v1', img, { user: 'alice', password: 'wonderland' });
    expect(issuer.lastAuthorization).toBe(`Basic ${Buffer.from('alice:wonderland').toString('base64')}`);
    // distribution names the actions of its challenge in map order (either pull,push or push,pull).
    expect(issuer.log.at(-1)).toMatchObject({ user: 'alice', access: [{ type: 'repository', name: 'tok/img', actions: expect.arrayContaining(['pull', 'push']) }] });
    expect(issuer.log.at(-1)!.access[0]!.actions).toHaveLength(2);

    issuer.reset();
    const withCreds = await skopeoPullDigests(`docker://${reg.host}/tok/img:v1`, { srcCreds: 'alice:wonderland' });
    expect(withCreds.stderr).toBe('');
    expect(withCreds.code).toBe(0);
    expect(withCreds.manifestDigest).toBe(img.digest);
    expect(issuer.requests).toBeGreaterThan(0);
    expect(issuer.lastAuthorization).toMatch(/^Basic /);

    const anon = await skopeoPullDigests(`docker://${reg.host}/tok/img:v1`);
    expect(anon.code).toBe(0);
    expect(issuer.log.at(-1)).toMatchObject({ user: undefined, access: [{ name: 'tok/img', actions: ['pull'] }] });

    const bad = await skopeoPullDigests(`docker://${reg.host}/tok/img:v1`, { srcCreds: 'alice:wrong' });
    expect(bad.code).not.toBe(0);
    expect(issuer.log.at(-1)?.status).toBe(401);
  }, T);

  it('anonymous tokens cannot push; minted tokens work as { bearer }', async () => {
    const img = smallImage('oci', 'anon');
    // alice pushed tok/img before: her cached token must not be reused for an anonymous push.
    await expect(pushImage(reg.url, 'tok/img', 'anon', img)).rejects.toThrow(/401/);
    expect((await fetchManifest(reg.url, 'tok/img', 'v1')).status).toBe(200);
    const bearer = issuer.mint([{ type: 'repository', name: 'tok/minted', actions: ['pull', 'push'] }], 'alice');
    await pushImage(reg.url, 'tok/minted', 'v1', img, { bearer });
    expect((await fetchManifest(reg.url, 'tok/minted', 'v1', { bearer })).digest).toBe(img.digest);
    // A token for another repository is refused.
    expect((await fetchManifest(reg.url, 'tok/img', 'v1', { bearer })).status).toBe(401);
  }, T);

  it('POST password grant and injected failures', async () => {
    const form = new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'wonderland', service: 'selftest-registry', scope: 'repository:tok/img:pull' });
    const ok = await httpProbe(issuer.realm, { method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body.toString())).toMatchObject({ expires_in: 300, token: expect.any(String), access_token: expect.any(String) });
    issuer.setFailure(503);
    expect((await httpProbe(`${issuer.realm}?service=selftest-registry`)).status).toBe(503);
    issuer.setFailure(undefined);
    expect((await httpProbe(`${issuer.realm}?service=selftest-registry`)).status).toBe(200);
  });
});

describe('forwarder', () => {
  let reg: Registry;
  let fw: Forwarder;
  let img: Image;
  const bigRepo = 'fw/big';
  beforeAll(async () => {
    reg = await startRegistry();
    img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 300_000, seed: 'fw' })] });
    await pushImage(reg.url, bigRepo, 'v1', img);
    fw = await startForwarder(reg);
  }, T);
  afterAll(async () => {
    await fw?.close();
    await reg?.stop();
  });

  const layer = (): { digest: string; size: number } => img.layers[0]!;

  it('counts connections, requests and bytes (one connection per probe)', async () => {
    fw.reset();
    let bodyBytes = 0;
    for (let i = 0; i < 3; i++) {
      const r = await httpProbe(`${fw.url}/v2/${bigRepo}/manifests/v1`, { headers: { accept: MediaType.ociManifest } });
      expect(r.status).toBe(200);
      bodyBytes += r.body.length;
    }
    expect(fw.connections).toBe(3);
    expect(fw.count('GET', /\/manifests\//)).toBe(3);
    expect(fw.count('GET', `/v2/${bigRepo}/manifests/v1`)).toBe(3);
    expect(fw.count('HEAD')).toBe(0);
    expect(fw.bytesFromTarget).toBeGreaterThan(bodyBytes);
    expect(fw.bytesToClient).toBe(fw.bytesFromTarget);
  });

  it('keeps counting correctly on one keep-alive connection (HEAD, GET blob, GET manifest)', async () => {
    fw.reset();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const req = (method: string, path: string): Promise<{ status: number; body: Buffer }> =>
      new Promise((resolve, reject) => {
        httpRequest(`${fw.url}${path}`, { method, agent, headers: { accept: MediaType.ociManifest } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        })
          .on('error', reject)
          .end();
      });
    try {
      expect((await req('HEAD', `/v2/${bigRepo}/manifests/v1`)).status).toBe(200);
      const blob = await req('GET', `/v2/${bigRepo}/blobs/${layer().digest}`);
      expect(sha256(blob.body)).toBe(layer().digest);
      expect((await req('GET', `/v2/${bigRepo}/manifests/v1`)).body).toEqual(img.bytes);
      expect(fw.connections).toBe(1);
      expect(fw.requests).toEqual([
        { method: 'HEAD', path: `/v2/${bigRepo}/manifests/v1` },
        { method: 'GET', path: `/v2/${bigRepo}/blobs/${layer().digest}` },
        { method: 'GET', path: `/v2/${bigRepo}/manifests/v1` },
      ]);
      expect(fw.bytesFromTarget).toBeGreaterThan(layer().size);
    } finally {
      agent.destroy();
    }
  });

  it('flipByteAfter corrupts exactly one body byte per response; skopeo then fails the digest check', async () => {
    fw.reset();
    fw.setFault({ flipByteAfter: 1000 });
    const r = await httpProbe(`${fw.url}/v2/${bigRepo}/blobs/${layer().digest}`);
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(layer().size);
    const good = img.layers[0]!.bytes;
    const diff = [...r.body.keys()].filter((i) => r.body[i] !== good[i]);
    expect(diff).toEqual([1000]);
    expect(fw.flips).toBe(1);
    const pulled = await skopeoPullDigests(`docker://${fw.host}/${bigRepo}:v1`);
    expect(pulled.code).not.toBe(0);
    expect(pulled.stderr).toMatch(/digest/i);
    fw.setFault({});
    const clean = await skopeoPullDigests(`docker://${fw.host}/${bigRepo}:v1`);
    expect(clean.code).toBe(0);
    expect(clean.manifestDigest).toBe(img.digest);
  }, T);

  it('dieAfterBytes cuts a body after N bytes; small responses pass', async () => {
    fw.reset();
    fw.setFault({ dieAfterBytes: 50_000 });
    const m = await httpProbe(`${fw.url}/v2/${bigRepo}/manifests/v1`, { headers: { accept: MediaType.ociManifest } });
    expect(m.body).toEqual(img.bytes);
    const got = await new Promise<{ received: number; error?: string }>((resolve) => {
      let received = 0;
      httpRequest(`${fw.url}/v2/${bigRepo}/blobs/${layer().digest}`, { agent: false }, (res) => {
        res.on('data', (c: Buffer) => (received += c.length));
        res.on('end', () => resolve({ received }));
        res.on('error', (e) => resolve({ received, error: e.message }));
      })
        .on('error', (e) => resolve({ received, error: e.message }))
        .end();
    });
    expect(got.received).toBe(50_000);
    expect(got.error).toBeDefined();
    expect(fw.kills).toBe(1);
    fw.setFault({});
  });

  it('stallAfterHeaders delivers headers and then nothing', async () => {
    fw.setFault({ stallAfterHeaders: true });
    const got = await new Promise<{ status: number; received: number; timedOut: boolean }>((resolve) => {
      let received = 0;
      const req = httpRequest(`${fw.url}/v2/${bigRepo}/blobs/${layer().digest}`, { agent: false }, (res) => {
        res.on('data', (c: Buffer) => (received += c.length));
        setTimeout(() => {
          resolve({ status: res.statusCode ?? 0, received, timedOut: true });
          req.destroy();
        }, 700);
      });
      req.on('error', () => undefined).end();
    });
    expect(got).toEqual({ status: 200, received: 0, timedOut: true });
    expect(fw.stalls).toBeGreaterThan(0);
    fw.setFault({});
  });

  it('trickleBytesPerSec throttles, and faults can change at runtime', async () => {
    fw.setFault({ trickleBytesPerSec: 200_000 });
    const t0 = Date.now();
    const r = await httpProbe(`${fw.url}/v2/${bigRepo}/blobs/${layer().digest}`, { timeoutMs: 10_000 });
    const ms = Date.now() - t0;
    expect(sha256(r.body)).toBe(layer().digest);
    expect(ms).toBeGreaterThan(1_200); // 300 kB at 200 kB/s is 1.5 s
    expect(ms).toBeLessThan(4_000);
    fw.setFault({});
    const t1 = Date.now();
    await httpProbe(`${fw.url}/v2/${bigRepo}/blobs/${layer().digest}`);
    expect(Date.now() - t1).toBeLessThan(500);
  });

  it('a target that is down drops the client connection', async () => {
    const down = await startForwarder({ host: '127.0.0.1', port: await freePort() });
    try {
      await expect(httpProbe(`${down.url}/v2/`)).rejects.toThrow();
      expect(down.connections).toBe(1);
    } finally {
      await down.close();
    }
  });

  it('startConnectionCounter counts connections', async () => {
    const cc = await startConnectionCounter();
    try {
      expect(cc.connections).toBe(0);
      await expect(httpProbe(`${cc.url}/v2/`)).rejects.toThrow();
      await new Promise<void>((resolve) => connect(cc.port, '127.0.0.1').on('close', () => resolve()).on('error', () => undefined));
      expect(cc.connections).toBe(2);
    } finally {
      await cc.close();
    }
  });
});

describe('startRegcache process handling (stand-in CLI until dist/cli.js exists)', () => {
  const fakeCli = fileURLToPath(new URL('./fake-cli.mjs', import.meta.url));

  it('starts, captures JSON logs, stops, kill9s and restarts on the same port and dataDir', async () => {
    const rc = await startRegcache({ config: { cache: { tagTTL: '1m' } }, cliPath: fakeCli });
    try {
      expect(rc.url).toBe(`http://127.0.0.1:${rc.port}`);
      expect(readFileSync(rc.configPath, 'utf8')).toContain(`listen: 127.0.0.1:${rc.port}`);
      expect(rc.config).toMatchObject({ logFormat: 'json', dataDir: rc.dataDir, cache: { tagTTL: '1m' } });
      expect((await httpProbe(`${rc.url}/v2/`)).status).toBe(401);
      const line = await rc.waitForLog((l) => l.msg === 'request' && l.url === '/v2/');
      expect(line.method).toBe('GET');
      expect(rc.stdout()).toContain('not json');
      expect(rc.logs().every((l) => typeof l === 'object')).toBe(true);

      expect(await rc.stop()).toEqual({ code: 0, signal: null });
      expect(rc.logs().some((l) => l.msg === 'shutting down')).toBe(true);
      await rc.restart();
      expect(rc.logs({ currentRunOnly: true }).find((l) => l.msg === 'listening')).toMatchObject({ port: rc.port, starts: 2 });
      await rc.kill9();
      expect(rc.running).toBe(false);
      expect(rc.proc.signalCode).toBe('SIGKILL');
      await rc.restart();
      expect((await httpProbe(`${rc.url}/v2/`)).status).toBe(401);
      expect(rc.logs().filter((l) => l.msg === 'listening').length).toBe(3);
    } finally {
      await rc.stop();
    }
  }, T);

  it('fails with the captured stderr when the process exits early', async () => {
    await expect(startRegcache({ config: { failStart: true }, cliPath: fakeCli })).rejects.toThrow(/exited before it was ready[\s\S]*refusing to start/);
  }, T);

  it('another process answering on the port does not pass for regcache: the start fails (EADDRINUSE), it is not taken as ready', async () => {
    const port = await freePort();
    const foreign = createServer((_req, res) => {
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((r) => foreign.listen(port, '127.0.0.1', r));
    try {
      await expect(startRegcache({ config: { listen: `127.0.0.1:${port}` }, cliPath: fakeCli })).rejects.toThrow(/exited before it was ready[\s\S]*EADDRINUSE/);
    } finally {
      await new Promise((r) => foreign.close(r));
    }
  }, T);

  it('tells to build when dist/cli.js is missing', async () => {
    await expect(startRegcache({ config: {}, cliPath: '/nonexistent/cli.js' })).rejects.toThrow(/npm run build/);
  });
});

describe('startRegcache with the real dist/cli.js', () => {
  it('serves a pull, parses pino JSON logs, stops gracefully, survives kill9 + restart', async () => {
    const reg = await startRegistry();
    try {
      const img = smallImage('oci', 'real-cli');
      await pushImage(reg.url, 'library/selftest', 'v1', img);
      const rc = await startRegcache({ config: { upstreams: { 'docker.io': { url: reg.url } }, defaultUpstream: 'docker.io' } });
      try {
        const pulled = await skopeoPullDigests(`docker://${rc.host}/library/selftest:v1`);
        expect(pulled.code, pulled.stderr).toBe(0);
        expect(pulled.manifestDigest).toBe(img.digest);
        expect(rc.logs().length).toBeGreaterThan(0);
        expect(rc.logs().every((l) => typeof l.level === 'number' && typeof l.msg === 'string')).toBe(true);
        const exit = await rc.stop();
        expect(exit, rc.stderr()).toEqual({ code: 0, signal: null });
        await rc.restart();
        await rc.kill9();
        expect(rc.proc.signalCode).toBe('SIGKILL');
        await rc.restart();
        await reg.stop(); // served from the cache now
        const again = await skopeoPullDigests(`docker://${rc.host}/library/selftest@${img.digest}`);
        expect(again.code, again.stderr).toBe(0);
      } finally {
        await rc.stop();
      }
    } finally {
      await reg.stop();
    }
  }, T);
});

describe('no leftovers', () => {
  it('a test file that never stops its registry leaves no process or temp dir once vitest ends', async () => {
    const dir = tmpDir('selftest-leak-');
    const helper = fileURLToPath(new URL('../helpers/registry.ts', import.meta.url));
    writeFileSync(
      join(dir, 'leak.test.ts'),
      `import { it } from 'vitest';\nimport { startRegistry } from ${JSON.stringify(helper)};\n` +
        `it('leaks', async () => { const r = await startRegistry(); console.log('LEAK', r.port, r.storageDir); }, 30000);\n`,
    );
    const vitest = fileURLToPath(new URL('../../node_modules/vitest/vitest.mjs', import.meta.url));
    const r = await runCommand(process.execPath, [vitest, 'run', '--root', dir], { timeoutMs: 60_000, env: { ...process.env, CI: 'true', FORCE_COLOR: '0', NO_COLOR: '1' } });
    const m = /LEAK (\d+) (\S+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(r.code).toBe(0);
    const [, port, storage] = m!;
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      await new Promise((res) => setTimeout(res, 100));
      gone = !existsSync(dirname(storage!)) && (await httpProbe(`http://127.0.0.1:${port}/v2/`).then(() => false, () => true));
    }
    expect(gone).toBe(true);
  }, T);

  it('every helper-started process is gone after stop/close', async () => {
    await stopAllChildren();
    expect(liveChildren()).toEqual([]);
    // No child of this test process is left (pgrep exits 1 when nothing matches).
    const ps = await runCommand('pgrep', ['-a', '-P', String(process.pid)]);
    expect(ps.stdout.split('\n').filter((l) => l !== '' && !l.includes('pgrep') && !l.includes(REAPER_MARK))).toEqual([]);
  });
});
