/**
 * TLS: HTTPS with HTTP/2 (h2) and HTTP/1.1 fallback from one listener; skopeo pulls over
 * https; an h2 client streams a blob.
 */
import { connect } from 'node:http2';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, makeImage, makeLayer, pushImage, runChecked, sha256, skopeoPullDigests, startRegcache, startRegistry,
  stopAllChildren, tmpDir, type Image, type Regcache, type Registry,
} from '../helpers/index.js';

let upstream: Registry;
let rc: Regcache;
let img: Image;

beforeAll(async () => {
  upstream = await startRegistry();
  img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 3 * 1024 * 1024, seed: 'tls' })] });
  await pushImage(upstream.url, 'tls/app', 'v1', img);
  const dir = tmpDir('regcache-tls-');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await runChecked('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  rc = await startRegcache({
    config: { tls: { cert, key }, defaultUpstream: 'docker.io', upstreams: { 'docker.io': { url: upstream.url } } },
  });
});

afterAll(async () => {
  await rc?.stop();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

describe('tls', () => {
  it('skopeo pulls over HTTPS (HTTP/1.1)', async () => {
    const r = await skopeoPullDigests(`docker://${rc.host}/tls/app:v1`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifestDigest).toBe(img.digest);
  });

  it('an HTTP/2 client gets the blob over h2', async () => {
    const layer = img.layers[0]!;
    const session = connect(`https://${rc.host}`, { rejectUnauthorized: false });
    try {
      const body = await new Promise<{ status: number; bytes: Buffer; proto: string }>((resolve, reject) => {
        const req = session.request({ ':path': `/v2/tls/app/blobs/${layer.digest}` });
        let status = 0;
        const chunks: Buffer[] = [];
        req.on('response', (h) => { status = Number(h[':status']); });
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => resolve({ status, bytes: Buffer.concat(chunks), proto: session.alpnProtocol ?? '' }));
        req.on('error', reject);
        req.end();
      });
      expect(body.proto).toBe('h2');
      expect(body.status).toBe(200);
      expect(sha256(body.bytes)).toBe(layer.digest);
    } finally {
      session.close();
    }
  });
});
