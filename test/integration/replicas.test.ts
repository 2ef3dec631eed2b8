/**
 * Three regcache replicas on loopback sharing a Ceph RGW bucket and a PostgreSQL database
 * (all started by this file), in front of Debian's docker-registry behind a counting
 * forwarder:
 * - 20 concurrent cold clients spread over the replicas: every blob is fetched from the
 *   upstream once (upstream bytes 1.00x the image), every body verified;
 * - the replica filling a blob is killed mid-blob: its clients and the peers streaming from it
 *   see aborted responses, the next request completes (the lease is taken over), and no
 *   object under any digest key is corrupt;
 * - a tag revalidated on one replica is fresh on the others (shared tag state);
 * - one leader at a time, and another takes over when it stops;
 * - the internal endpoint answers only a token for that digest made with the shared secret.
 */
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  cleanupAll, freePort, makeImage, makeLayer, pushImage, startForwarder, startRegcache, startRegistry, stopAllChildren,
  type Forwarder, type Image, type Regcache, type Registry,
} from '../helpers/index.js';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { fillToken } from '../../src/replicas/fill-token.js';

let upstream: Registry;
let fwd: Forwarder;
let rgw: CephRgw;
let pg: Postgres;
let db: string;
let replicas: Regcache[] = [];
let image: Image;
let slowImage: Image;
const SECRET = 'replica-test-secret-0123456789';
/** Each replica's internal listener. */
const internal: string[] = [];

/** Every manifest type, as containerd sends: only such answers may set a shared tag. */
const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function startReplica(url: string, i: number): Promise<Regcache> {
  const port = await freePort();
  internal[i] = `http://127.0.0.1:${port}`;
  return startRegcache({
    config: {
      cache: { tagTTL: '2s' },
      defaultUpstream: 'docker.io',
      upstreams: { 'docker.io': { url: fwd.url } },
      storage: { ...rgw.storageConfig('replicas'), metadata: 'postgres', postgresUrl: url },
      replicas: { listen: `127.0.0.1:${port}`, advertise: `http://127.0.0.1:${port}`, secret: '${REPLICA_SECRET}', id: `r${i}`, leaseTTL: '3s' },
    },
    env: { ...rgw.env, REPLICA_SECRET: SECRET },
  });
}

beforeAll(async () => {
  [upstream, rgw, pg] = await Promise.all([startRegistry(), startCephRgw(), startPostgres()]);
  fwd = await startForwarder(upstream);
  image = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 24 * 1024 * 1024, seed: 'r-big' }), makeLayer({ randomBytes: 6 * 1024 * 1024, seed: 'r-small' })] });
  slowImage = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 32 * 1024 * 1024, seed: 'r-slow' })] });
  await pushImage(upstream.url, 'team/app', 'v1', image);
  await pushImage(upstream.url, 'team/slow', 'v1', slowImage);
  const url = await pg.createDatabase('replicas');
  db = url.split('/').pop()!;
  replicas = await Promise.all([0, 1, 2].map((i) => startReplica(url, i)));
}, 240_000);

afterAll(async () => {
  for (const r of replicas) await r.stop().catch(() => undefined);
  await fwd?.close();
  await upstream?.stop();
  await rgw?.stop();
  await pg?.stop();
  await stopAllChildren();
  await cleanupAll();
});

/** GET with the body collected; `aborted` when the response did not end cleanly. */
function get(base: string, path: string, onBytes?: (n: number) => void): Promise<{ status: number; body: Buffer; aborted: boolean; headers: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const req = request(`${base}${path}`, { headers: { accept: ACCEPT } }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => { chunks.push(c); n += c.length; onBytes?.(n); });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), aborted: false, headers: res.headers }));
      res.once('error', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), aborted: true, headers: res.headers }));
      res.once('aborted', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), aborted: true, headers: res.headers }));
    });
    req.once('error', () => resolve({ status: 0, body: Buffer.alloc(0), aborted: true, headers: {} }));
    req.end();
  });
}

/** A client pulling `repo:tag` from one replica, verifying every body against its digest. */
async function pull(base: string, repo: string, tag: string): Promise<string[]> {
  const m = await get(base, `/v2/${repo}/manifests/${tag}`);
  expect(m.status).toBe(200);
  const manifest = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
  const digests = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  await Promise.all(digests.map(async (d) => {
    const b = await get(base, `/v2/${repo}/blobs/${d}`);
    expect(b.status).toBe(200);
    expect(b.aborted).toBe(false);
    expect(sha(b.body)).toBe(d);
  }));
  return digests;
}

const imageBytes = (img: Image): number => img.size + img.config.size + img.layers.reduce((s, l) => s + l.size, 0);

it('20 concurrent cold clients over 3 replicas: each blob fetched upstream once (1.00x), every body verified', async () => {
  fwd.reset();
  await Promise.all(Array.from({ length: 20 }, (_, i) => pull(replicas[i % 3]!.url, 'team/app', 'v1')));
  for (const d of [image.config.digest, ...image.layers.map((l) => l.digest)]) expect(fwd.count('GET', `/v2/team/app/blobs/${d}`)).toBe(1);
  const blobBytes = image.config.size + image.layers.reduce((s, l) => s + l.size, 0);
  // Everything the upstream sent (blobs, manifests, headers of every answer) against the image.
  const ratio = fwd.bytesFromTarget / imageBytes(image);
  expect(ratio).toBeGreaterThanOrEqual(blobBytes / imageBytes(image));
  expect(Math.round(ratio * 100) / 100).toBe(1);
  // Each blob committed once, by whichever replica held its fill lease.
  const deadline = Date.now() + 30_000;
  while ((await pg.sql('SELECT count(*) FROM blobs', db)).trim() !== '3' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect((await pg.sql('SELECT count(*) FROM blobs', db)).trim()).toBe('3');
  expect((await pg.sql("SELECT count(*) FROM leases WHERE name LIKE 'fill:%'", db)).trim()).toBe('0');
  // Some responses came from a peer's live fill (the replicas that did not hold the lease).
  const peerStreams = await Promise.all(replicas.map(async (r) => {
    const text = await (await fetch(`${r.url}/metrics`)).text();
    return Number(/^regcache_peer_streams_total (\d+)/m.exec(text)?.[1] ?? 0);
  }));
  expect(peerStreams.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  const leaders = await Promise.all(replicas.map(async (r) => /^regcache_replica_leader 1$/m.test(await (await fetch(`${r.url}/metrics`)).text())));
  expect(leaders.filter(Boolean)).toHaveLength(1);
}, 180_000);

it('killing the filling replica mid-blob aborts its clients and the peers streaming from it; the next request completes; nothing corrupt is stored', async () => {
  const layer = slowImage.layers[0]!;
  // Slow upstream: the fill takes a few seconds, long enough to kill its replica in the middle.
  fwd.setFault({ trickleBytesPerSec: 6 * 1024 * 1024 });
  const [a, b, c] = replicas as [Regcache, Regcache, Regcache];
  const path = `/v2/team/slow/blobs/${layer.digest}`;
  let aBytes = 0;
  const fromA = get(a.url, path, (n) => { aBytes = n; });
  const deadline = Date.now() + 30_000;
  while (aBytes < 2 * 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect((await pg.sql(`SELECT holder FROM leases WHERE name = 'fill:${layer.digest}'`, db)).trim()).toBe('r0');
  let bBytes = 0;
  const fromB = get(b.url, path, (n) => { bBytes = n; });
  while (bBytes < 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(bBytes).toBeGreaterThan(0);
  await a.kill9();
  fwd.setFault({});
  const [ra, rb] = await Promise.all([fromA, fromB]);
  expect(ra.aborted).toBe(true);
  expect(rb.aborted).toBe(true);
  expect(rb.body.length).toBeLessThan(layer.size);
  // The next request, to another replica, completes: the dead replica's lease is taken over.
  const again = await get(c.url, path);
  expect(again.status).toBe(200);
  expect(again.aborted).toBe(false);
  expect(sha(again.body)).toBe(layer.digest);
  // No object under any digest key holds other bytes than its digest.
  const s3 = rgw.client();
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'replicas' }));
  expect((listed.Contents ?? []).length).toBeGreaterThan(0);
  for (const o of listed.Contents ?? []) {
    const [alg, , hex] = o.Key!.split('/').slice(-3);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'replicas', Key: o.Key! }));
    expect(sha(Buffer.from(await got.Body!.transformToByteArray()))).toBe(`${alg}:${hex}`);
  }
  s3.destroy();
  await a.restart();
}, 180_000);

it('tag state is shared: a tag revalidated on one replica is fresh on the others', async () => {
  await pull(replicas[0]!.url, 'team/app', 'v1');
  await new Promise((r) => setTimeout(r, 2_100)); // past tagTTL
  fwd.reset();
  await get(replicas[1]!.url, '/v2/team/app/manifests/v1'); // revalidates (one HEAD)
  await get(replicas[2]!.url, '/v2/team/app/manifests/v1'); // trusts replica 1's revalidation
  await get(replicas[0]!.url, '/v2/team/app/manifests/v1');
  expect(fwd.count('HEAD', '/v2/team/app/manifests/v1') + fwd.count('GET', '/v2/team/app/manifests/v1')).toBe(1);
}, 60_000);

it('one leader at a time; when it stops, another replica takes over', async () => {
  const leader = async (): Promise<string> => (await pg.sql("SELECT holder FROM leases WHERE name = 'leader'", db)).trim();
  const first = await leader();
  expect(['r0', 'r1', 'r2']).toContain(first);
  const idx = Number(first.slice(1));
  await replicas[idx]!.stop();
  const deadline = Date.now() + 15_000;
  let next = await leader();
  while ((next === first || next === '') && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    next = await leader();
  }
  expect(next).not.toBe(first);
  expect(['r0', 'r1', 'r2']).toContain(next);
  await replicas[idx]!.restart();
}, 60_000);

it('the internal fill endpoint wants a token for that digest made with the shared secret', async () => {
  const d = image.layers[0]!.digest;
  const at = (auth?: string): Promise<number> => fetch(`${internal[1]}/fills/${d}`, auth ? { headers: { authorization: auth } } : {}).then((r) => r.status);
  expect(await at()).toBe(401);
  expect(await at(`RegcacheFill ${fillToken('wrong secret', d, Date.now())}`)).toBe(401);
  expect(await at(`RegcacheFill ${fillToken(SECRET, image.layers[1]!.digest, Date.now())}`)).toBe(401);
  // A valid token, but no live fill of it there: 404 (the blob is committed, not filling).
  expect(await at(`RegcacheFill ${fillToken(SECRET, d, Date.now())}`)).toBe(404);
  expect((await fetch(`${internal[1]}/v2/`)).status).toBe(404);
});
