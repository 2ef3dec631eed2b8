/**
 * Sync jobs with three replicas on Ceph RGW + PostgreSQL: the job runs on the leader only;
 * kill -9 the leader in the middle of a run (the upstream trickles through a forwarder) and
 * another replica takes the leader lease, records the cut run INTERRUPTED, runs it again to
 * SUCCESS, and the run never went on two replicas at once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  cleanupAll, freePort, httpProbe, makeImage, makeLayer, pushImage, startForwarder, startRegcache, startRegistry, stopAllChildren,
  type Forwarder, type Regcache, type Registry,
} from '../helpers/index.js';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

const HOST = 'reg.test';
let upstream: Registry;
let fw: Forwarder;
let rgw: CephRgw;
let pg: Postgres;
const replicas: Regcache[] = [];

async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function status(r: Regcache): Promise<any> {
  const res = await httpProbe(`${r.url}/api/v1/sync/big`);
  return JSON.parse(res.body.toString('utf8'));
}

const leads = (r: Regcache): boolean => {
  const changes = r.logs().filter((l) => l.msg === 'this replica is the leader' || l.msg === 'this replica is no longer the leader');
  return changes.at(-1)?.msg === 'this replica is the leader';
};
const runsStarted = (r: Regcache): number => r.logs().filter((l) => l.msg === 'sync run started').length;

beforeAll(async () => {
  [upstream, rgw, pg] = await Promise.all([startRegistry(), startCephRgw(), startPostgres()]);
  const big = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 6 * 1024 * 1024, seed: 'replicas-jobs-big' })] });
  await pushImage(upstream.url, 'apps/big', 'v1', big);
  fw = await startForwarder(upstream);
}, 180_000);

afterAll(async () => {
  for (const r of replicas) await r.stop().catch(() => undefined);
  await fw?.close();
  await upstream?.stop();
  await rgw?.stop();
  await pg?.stop();
  await stopAllChildren();
  await cleanupAll();
});

it('kill -9 the leader during a sync: another replica takes over and the job completes, on one replica at a time', async () => {
  const url = await pg.createDatabase('jobs');
  // The upstream trickles: the run is still going when the leader dies.
  fw.setFault({ trickleBytesPerSec: 512 * 1024 });
  for (const i of [0, 1, 2]) {
    const port = await freePort();
    replicas.push(await startRegcache({
      config: {
        upstreams: { [HOST]: { url: fw.url } },
        retention: { interval: 0 },
        storage: { ...rgw.storageConfig('jobs'), metadata: 'postgres', postgresUrl: url },
        replicas: { listen: `127.0.0.1:${port}`, advertise: `http://127.0.0.1:${port}`, secret: 'jobs-secret', id: `r${i}`, leaseTTL: '3s' },
        sync: { big: { source: `${HOST}/apps/big`, retries: 0 } },
      },
      env: rgw.env,
    }));
  }
  // The first replica took the lease at its start and runs the (never run, enabled) job at once.
  const first = replicas[0]!;
  expect(leads(first)).toBe(true);
  await until(() => fw.count('GET', /\/blobs\//) > 0, 'the big layer to be fetched');
  expect((await status(first)).state).toBe('SYNCING');
  // A follower refuses to run the job itself.
  const refused = await httpProbe(`${replicas[1]!.url}/api/v1/sync/big/now`, { method: 'POST' });
  expect(refused.status).toBe(503);
  expect(refused.body.toString('utf8')).toContain('not the leader');

  await first.kill9();
  fw.setFault({});
  const rest = replicas.slice(1);
  await until(() => rest.some(leads), 'another replica to take the leader lease', 30_000);
  const next = rest.find(leads)!;
  await until(async () => (await status(next)).state === 'SUCCESS', 'the re-run on the new leader to succeed', 90_000);
  const d = await status(next);
  expect(d.history.map((r: { trigger: string; result: string }) => `${r.trigger} ${r.result}`)).toEqual(['schedule INTERRUPTED', 'start SUCCESS']);
  // One run per leader, none on the replica that never led; the new leader started its run
  // only after taking charge (when the old leader was dead).
  expect(runsStarted(first)).toBe(1);
  expect(runsStarted(next)).toBe(1);
  const other = rest.find((r) => r !== next)!;
  expect(runsStarted(other)).toBe(0);
  const nextLogs = next.logs().map((l) => l.msg);
  expect(nextLogs.indexOf('leader: taking charge of sync and copy jobs')).toBeGreaterThanOrEqual(0);
  expect(nextLogs.indexOf('leader: taking charge of sync and copy jobs')).toBeLessThan(nextLogs.indexOf('sync run started'));
  // Nothing is left SYNCING in the shared store.
  const db = url.split('/').pop();
  const rows = await pg.sql(`SELECT count(*) FROM state WHERE ns = 'jobs' AND key = 'sync/big' AND value ? 'running'`, db);
  expect(rows.trim()).toBe('0');
}, 240_000);
