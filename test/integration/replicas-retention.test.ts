/**
 * Retention with two replicas on Ceph RGW + PostgreSQL: the leader's periodic sweep removes
 * an expired image's rows at once, and its objects only after replicas.evictionGrace (another
 * replica may still be streaming them); the follower never sweeps.
 */
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  cleanupAll, freePort, makeImage, makeLayer, pushImage, skopeoPullDigests, startRegcache, startRegistry, stopAllChildren,
  type Image, type Regcache, type Registry,
} from '../helpers/index.js';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

let upstream: Registry;
let rgw: CephRgw;
let pg: Postgres;
let image: Image;
const replicas: Regcache[] = [];

beforeAll(async () => {
  [upstream, rgw, pg] = await Promise.all([startRegistry(), startCephRgw(), startPostgres()]);
  image = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 2 * 1024 * 1024, seed: 'ret-1' })] });
  await pushImage(upstream.url, 'team/old', 'v1', image);
}, 180_000);

afterAll(async () => {
  for (const r of replicas) await r.stop().catch(() => undefined);
  await upstream?.stop();
  await rgw?.stop();
  await pg?.stop();
  await stopAllChildren();
  await cleanupAll();
});

it('the leader sweeps rows at once and objects after the grace period', async () => {
  const url = await pg.createDatabase('retention');
  const db = url.split('/').pop();
  for (const i of [0, 1]) {
    const port = await freePort();
    replicas.push(await startRegcache({
      config: {
        defaultUpstream: 'docker.io',
        upstreams: { 'docker.io': { url: upstream.url } },
        retention: { maxAge: '3s', interval: '1s' },
        storage: { ...rgw.storageConfig('retention'), metadata: 'postgres', postgresUrl: url },
        replicas: { listen: `127.0.0.1:${port}`, advertise: `http://127.0.0.1:${port}`, secret: 'ret-secret', id: `r${i}`, leaseTTL: '3s', evictionGrace: '6s' },
      },
      env: rgw.env,
    }));
  }
  const pulled = await skopeoPullDigests(`docker://${replicas[1]!.host}/team/old:v1`);
  expect(pulled.code, pulled.stderr).toBe(0);
  const layer = image.layers[0]!.digest;
  const key = `blobs/sha256/${layer.slice(7, 9)}/${layer.slice(7)}`;
  const s3 = rgw.client();
  const exists = (): Promise<boolean> => s3.send(new HeadObjectCommand({ Bucket: 'retention', Key: key })).then(() => true, () => false);
  const rows = async (): Promise<number> => Number((await pg.sql(`SELECT count(*) FROM blobs WHERE digest = '${layer}'`, db)).trim());
  const waitFor = async (cond: () => Promise<boolean>, ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await waitFor(async () => (await rows()) === 1 && (await exists()), 30_000);
  // Expired (maxAge 3 s): the leader's sweep removes the rows...
  await waitFor(async () => (await rows()) === 0, 30_000);
  const rowsGoneAt = Date.now();
  // ...and the object stays through the grace period, then goes.
  expect(await exists()).toBe(true);
  await waitFor(async () => !(await exists()), 30_000);
  expect(Date.now() - rowsGoneAt).toBeGreaterThan(3_000);
  // Only the leader swept.
  const sweeps = replicas.map((r) => r.logs().filter((l) => l.msg === 'retention sweep').length);
  expect(sweeps.filter((n) => n > 0)).toHaveLength(1);
  s3.destroy();
}, 120_000);
