/**
 * regcache on the shared backends (`storage: {blobs: s3, metadata: postgres}`) against a real
 * Ceph RGW and PostgreSQL, pulled with skopeo from Debian's docker-registry: blobs land in the
 * bucket under their digests, rows in the database, and a second regcache process with its
 * own empty dataDir serves the same image from the shared stores without asking the upstream
 * for a single blob; /readyz answers 503 once PostgreSQL is gone. In redirect mode, stored
 * blobs are answered with a 307 to a presigned URL of the gateway, which skopeo and containerd
 * follow.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  cleanupAll, makeImage, makeLayer, pushImage, skopeoPullDigests, startForwarder, startRegcache, startRegistry, stopAllChildren, tmpDir,
  type Forwarder, type Image, type Registry,
} from '../helpers/index.js';
import { startContainerd } from '../helpers/containerd.js';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

let upstream: Registry;
let fwd: Forwarder;
let rgw: CephRgw;
let pg: Postgres;
let image: Image;

beforeAll(async () => {
  [upstream, rgw, pg] = await Promise.all([startRegistry(), startCephRgw(), startPostgres()]);
  fwd = await startForwarder(upstream);
  image = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 12 * 1024 * 1024, seed: 'shared-1' }), makeLayer({ 'etc/x': 'small' })] });
  await pushImage(upstream.url, 'team/app', 'v1', image);
}, 180_000);

afterAll(async () => {
  await fwd?.close();
  await upstream?.stop();
  await rgw?.stop();
  await pg?.stop();
  await stopAllChildren();
  await cleanupAll();
});

function sharedConfig(postgresUrl: string, storage: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    defaultUpstream: 'docker.io',
    upstreams: { 'docker.io': { url: fwd.url } },
    storage: { ...rgw.storageConfig('regcache'), s3Prefix: 'cluster-a/', metadata: 'postgres', postgresUrl, ...storage },
  };
}

it('redirect mode: stored blobs answer 307 to a presigned URL; skopeo and containerd follow it', async () => {
  const url = await pg.createDatabase('redirect');
  const env = rgw.env;
  const rc = await startRegcache({ config: sharedConfig(url, { s3Prefix: 'redirect/', s3Redirect: '5m' }), env });
  const ctrd = await startContainerd();
  try {
    const first = await skopeoPullDigests(`docker://${rc.host}/team/app:v1`); // fills (streamed, no redirect)
    expect(first.code, first.stderr).toBe(0);
    const layer = image.layers[0]!;
    const db = url.split('/').pop();
    const deadline = Date.now() + 30_000;
    while ((await pg.sql('SELECT count(*) FROM blobs', db)).trim() !== '3' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const r = await fetch(`${rc.url}/v2/team/app/blobs/${layer.digest}`, { redirect: 'manual' });
    expect(r.status).toBe(307);
    const location = r.headers.get('location')!;
    expect(location.startsWith(`${rgw.endpoint}/regcache/redirect/blobs/sha256/`)).toBe(true);
    expect(location).toContain('X-Amz-Signature=');
    fwd.reset();
    const mark = rc.logs().length;
    const again = await skopeoPullDigests(`docker://${rc.host}/team/app@${image.digest}`);
    expect(again.code, again.stderr).toBe(0);
    expect(again.blobs).toEqual(first.blobs);
    // containerd, configured with regcache as the docker.io mirror.
    const hosts = tmpDir('regcache-hosts-');
    mkdirSync(join(hosts, 'docker.io'));
    writeFileSync(join(hosts, 'docker.io', 'hosts.toml'), `server = "${upstream.url}"\n\n[host."http://${rc.host}"]\n  capabilities = ["pull", "resolve"]\n`);
    const pulled = await ctrd.pull('docker.io/team/app:v1', { hostsDir: hosts });
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(fwd.count('GET', /\/blobs\//)).toBe(0);
    // Every blob GET of both clients was a redirect: regcache streamed no blob bytes.
    const blobGets = rc.logs().slice(mark).filter((l) => l.msg === 'request' && l.kind === 'blob' && l.method === 'GET');
    expect(blobGets.length).toBeGreaterThanOrEqual(6);
    expect(blobGets.filter((l) => l.status !== 307)).toEqual([]);
  } finally {
    await ctrd.stop();
    await rc.stop();
  }
});

it('pulls through S3 + PostgreSQL; another process with an empty dataDir serves it from the shared stores', async () => {
  const url = await pg.createDatabase('shared');
  const env = rgw.env;
  const a = await startRegcache({ config: sharedConfig(url), env });
  const first = await skopeoPullDigests(`docker://${a.host}/team/app:v1`);
  expect(first.code, first.stderr).toBe(0);
  expect(first.blobs).toEqual([image.config.digest, ...image.layers.map((l) => l.digest)].sort());
  // Commits finish after the last byte went out: wait for the rows, then look at the bucket.
  const db = url.split('/').pop();
  const deadline = Date.now() + 30_000;
  while ((await pg.sql('SELECT count(*) FROM blobs', db)).trim() !== '3' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const listed = await rgw.client().send(new ListObjectsV2Command({ Bucket: 'regcache', Prefix: 'cluster-a/blobs/' }));
  const keys = (listed.Contents ?? []).map((o) => o.Key!.split('/').slice(-3).join('/')).sort();
  expect(keys).toEqual(first.blobs.map((d) => { const [alg, hex] = d.split(':'); return `${alg}/${hex!.slice(0, 2)}/${hex}`; }).sort());
  expect(a.logs().some((l) => JSON.stringify(l).includes(rgw.secretAccessKey))).toBe(false);
  await a.stop();

  fwd.reset();
  const b = await startRegcache({ config: sharedConfig(url), env });
  const again = await skopeoPullDigests(`docker://${b.host}/team/app@${image.digest}`);
  expect(again.code, again.stderr).toBe(0);
  expect(again.blobs).toEqual(first.blobs);
  expect(fwd.count('GET', /\/blobs\//)).toBe(0);

  // /readyz reflects the shared stores: ready while both answer, not ready once PostgreSQL is gone.
  expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
  await pg.stop();
  const until = Date.now() + 15_000;
  let status = 200;
  while (status === 200 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 200));
    status = (await fetch(`${b.url}/readyz`)).status;
  }
  expect(status).toBe(503);
  await b.stop();
});
