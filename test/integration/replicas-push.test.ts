/**
 * Pushes across three replicas on Ceph RGW + PostgreSQL: a chunked upload whose POST,
 * chunks and final PUT each go to a different replica (the session moves with its bytes),
 * and containerd (ctr) pulls through one replica an image pushed through another.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  cleanupAll, freePort, htpasswdLine, makeImage, makeLayer, pushManifest, registryFetch, sha256, startRegcache, stopAllChildren, tmpDir,
  type Blob, type Regcache, type RegistryAuth,
} from '../helpers/index.js';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

const auth: RegistryAuth = { user: 'ci', password: 'ci-secret' };
let rgw: CephRgw;
let pg: Postgres;
let ctrd: Containerd;
const replicas: Regcache[] = [];

beforeAll(async () => {
  [rgw, pg, ctrd] = await Promise.all([startCephRgw(), startPostgres(), startContainerd()]);
  const dir = tmpDir('regcache-replicas-push-');
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, `${await htpasswdLine('ci', 'ci-secret')}\n`);
  const url = await pg.createDatabase('push');
  for (const i of [0, 1, 2]) {
    const port = await freePort();
    replicas.push(await startRegcache({
      config: {
        retention: { interval: 0 },
        hostedRepositories: { 'team/**': {} },
        auth: { htpasswd, anonymousPull: true, rules: [{ users: ['ci'], repositories: ['team/**'], actions: ['push'] }] },
        storage: { ...rgw.storageConfig('push'), metadata: 'postgres', postgresUrl: url },
        replicas: { listen: `127.0.0.1:${port}`, advertise: `http://127.0.0.1:${port}`, secret: 'push-secret', id: `r${i}`, leaseTTL: '3s' },
      },
      env: rgw.env,
    }));
  }
}, 180_000);

afterAll(async () => {
  for (const r of replicas) await r.stop().catch(() => undefined);
  await ctrd?.stop();
  await rgw?.stop();
  await pg?.stop();
  await stopAllChildren();
  await cleanupAll();
});

/** POST on replica 0, one PATCH per middle chunk on replicas 1 and 2, the last chunk with the PUT on replica 0. */
async function pushAcross(repo: string, blob: Blob): Promise<void> {
  const [r0, r1, r2] = replicas as [Regcache, Regcache, Regcache];
  const third = Math.ceil(blob.bytes.length / 3);
  const parts = [blob.bytes.subarray(0, third), blob.bytes.subarray(third, 2 * third), blob.bytes.subarray(2 * third)];
  const post = await registryFetch(r0.url, repo, `${r0.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' }, auth);
  expect(post.status).toBe(202);
  let location = post.headers.get('location')!;
  const pathOf = (loc: string): string => new URL(loc, r0.url).pathname + new URL(loc, r0.url).search;
  let offset = 0;
  for (const [r, part] of [[r1, parts[0]!], [r2, parts[1]!]] as const) {
    const res = await registryFetch(r.url, repo, `${r.url}${pathOf(location)}`, {
      method: 'PATCH', body: part,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + part.length - 1}` },
    }, auth);
    expect(res.status, await res.clone().text()).toBe(202);
    offset += part.length;
    expect(res.headers.get('range')).toBe(`0-${offset - 1}`);
    location = res.headers.get('location')!;
  }
  // Where the upload stands, asked of the replica that does not hold it.
  const status = await registryFetch(r0.url, repo, `${r0.url}${pathOf(location)}`, { method: 'GET' }, auth);
  expect(status.status).toBe(204);
  expect(status.headers.get('range')).toBe(`0-${offset - 1}`);
  const put = new URL(`${r0.url}${pathOf(location)}`);
  put.searchParams.set('digest', blob.digest);
  const done = await registryFetch(r0.url, repo, put, { method: 'PUT', body: parts[2]!, headers: { 'content-type': 'application/octet-stream' } }, auth);
  expect(done.status, await done.clone().text()).toBe(201);
}

it('a chunked push spread over three replicas, then containerd pulls it through another replica', async () => {
  const image = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 3 * 1024 * 1024, seed: 'replicas-push' })] });
  for (const b of [image.config, ...image.layers]) await pushAcross('team/app', b);
  await pushManifest(replicas[1]!.url, 'team/app', 'v1', image, auth);
  // Every replica serves the layer whole and verified.
  const layer = image.layers[0]!;
  for (const r of replicas) {
    const got = Buffer.from(await (await fetch(`${r.url}/v2/team/app/blobs/${layer.digest}`)).arrayBuffer());
    expect(got.length).toBe(layer.bytes.length);
    expect(sha256(got)).toBe(layer.digest);
  }
  // containerd pulls through replica 2.
  const r2 = replicas[2]!;
  const hosts = tmpDir('regcache-replicas-push-hosts-');
  mkdirSync(join(hosts, r2.host), { recursive: true });
  writeFileSync(join(hosts, r2.host, 'hosts.toml'), `server = "${r2.url}"\n\n[host."${r2.url}"]\n  capabilities = ["pull", "resolve"]\n`);
  const pulled = await ctrd.pull(`${r2.host}/team/app:v1`, { hostsDir: hosts });
  expect(pulled.code, pulled.stderr).toBe(0);
  const checked = await ctrd.check();
  expect(checked.find((c) => c.ref === `${r2.host}/team/app:v1`)).toMatchObject({ status: 'complete' });
}, 240_000);
