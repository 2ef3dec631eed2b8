/**
 * Scenario 8 (issue 16): several replicas on shared storage, in one run against peers on the same machine:
 * - cold: N clients spread over 3 replicas on S3 (Ceph RGW) + PostgreSQL, against the same N clients on one
 *   replica with the filesystem store: wall time, and upstream bytes over the image (target <= 1.05x);
 * - warm: N clients fetching the image's blobs from S3 through regcache (streamed) against the same clients
 *   following a presigned redirect (`storage.s3Redirect`) to the gateway.
 * Ceph and PostgreSQL are started here (test/helpers), on loopback, and stopped at the end.
 */
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { freePort, type Registry } from '../../test/helpers/index.js';
import { startCephRgw } from '../../test/helpers/ceph-rgw.js';
import { startPostgres } from '../../test/helpers/postgres.js';
import { onCleanup } from './lib/cleanup.js';
import { newAgent, pullImage } from './lib/client.js';
import { log } from './lib/env.js';
import type { SeededImage } from './lib/seed.js';
import { summarize, type Summary } from './lib/stats.js';
import { startRegcacheSystem, type System } from './lib/systems.js';

export interface ReplicasRow {
  scenario: string;
  metric: string;
  better: 'lower' | 'higher';
  cells: { regcache?: Summary | undefined };
  ratio?: number;
  target?: string;
  verdict?: 'PASS' | 'MISS';
  note?: string;
}

export interface ReplicasOptions {
  reps: number;
  clients: number;
  logLevel: string;
}

/** GET every blob, following one redirect when there is one; every body hashed. Returns bytes read. */
async function fetchBlobs(agent: Agent, base: string, img: SeededImage): Promise<number> {
  let total = 0;
  for (const d of [img.image.config, ...img.image.layers]) {
    let res = await request(`${base}/v2/${img.repo}/blobs/${d.digest}`, { dispatcher: agent });
    if (res.statusCode === 307) {
      await res.body.dump();
      res = await request(String(res.headers.location), { dispatcher: agent });
    }
    if (res.statusCode !== 200) throw new Error(`blob ${d.digest}: HTTP ${res.statusCode}`);
    const h = createHash('sha256');
    for await (const c of res.body as AsyncIterable<Buffer>) {
      h.update(c);
      total += c.length;
    }
    if (`sha256:${h.digest('hex')}` !== d.digest) throw new Error(`blob ${d.digest}: content does not hash to its digest`);
  }
  return total;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

export async function scenario8(upstream: Registry, img: SeededImage, o: ReplicasOptions): Promise<{ rows: ReplicasRow[]; raw: unknown; failures: string[] }> {
  const failures: string[] = [];
  log('11. starting Ceph RGW and PostgreSQL');
  const [rgw, pg] = await Promise.all([startCephRgw({ memoryBytes: 2 * 1024 * 1024 * 1024 }), startPostgres()]);
  const unRgw = onCleanup('ceph rgw', () => rgw.stop());
  const unPg = onCleanup('postgres', () => pg.stop());
  Object.assign(process.env, rgw.env); // the replicas' AWS credential chain reads them
  const cold3: number[] = [];
  const cold1: number[] = [];
  const upstreamRatio: number[] = [];
  const warmStream: number[] = [];
  const warmRedirect: number[] = [];
  try {
    for (let rep = 0; rep < o.reps; rep++) {
      const url = await pg.createDatabase('bench');
      const storage = { ...rgw.storageConfig('bench'), s3Prefix: `rep${rep}/`, metadata: 'postgres', postgresUrl: url };
      const systems: System[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          const port = await freePort();
          systems.push(await startRegcacheSystem(upstream, {
            logLevel: o.logLevel,
            config: { storage, replicas: { listen: `127.0.0.1:${port}`, advertise: `http://127.0.0.1:${port}`, secret: `bench-${rep}-secret`, id: `r${i}` } },
          }));
        }
        const agent = newAgent();
        const s = await timed(() => Promise.all(Array.from({ length: o.clients }, (_, i) =>
          pullImage(agent, systems[i % 3]!.url, img.repo, img.tag, { verify: true, expectDigest: img.image.digest }))));
        cold3.push(s);
        const up = systems.reduce((n, x) => n + x.fwd!.bytesFromTarget, 0);
        upstreamRatio.push(up / img.totalBytes);
        log(`11. cold, ${o.clients} clients over 3 replicas (S3 + PostgreSQL): rep ${rep + 1}: ${s.toFixed(2)} s, upstream ${(up / img.totalBytes).toFixed(3)}x the image`);
        // Warm, from the bucket: streamed by a replica, then by redirect (a fourth process on the same stores).
        warmStream.push(await timed(() => Promise.all(Array.from({ length: o.clients }, () => fetchBlobs(agent, systems[0]!.url, img)))));
        const redirecting = await startRegcacheSystem(upstream, { logLevel: o.logLevel, config: { storage: { ...storage, s3Redirect: '10m' } } });
        systems.push(redirecting);
        warmRedirect.push(await timed(() => Promise.all(Array.from({ length: o.clients }, () => fetchBlobs(agent, redirecting.url, img)))));
        log(`11. warm from S3, ${o.clients} clients: rep ${rep + 1}: streamed ${warmStream.at(-1)!.toFixed(2)} s, redirect ${warmRedirect.at(-1)!.toFixed(2)} s`);
        await agent.close();
      } catch (err) {
        failures.push(`scenario 11 rep ${rep + 1}: ${(err as Error).message}`);
        log(`FAILED scenario 11 rep ${rep + 1}: ${(err as Error).message}`);
      } finally {
        for (const x of systems) await x.stop();
      }
      // The peer: one replica, filesystem + SQLite, the same clients.
      const single = await startRegcacheSystem(upstream, { logLevel: o.logLevel });
      try {
        const agent = newAgent();
        cold1.push(await timed(() => Promise.all(Array.from({ length: o.clients }, () =>
          pullImage(agent, single.url, img.repo, img.tag, { verify: true, expectDigest: img.image.digest })))));
        await agent.close();
        log(`11. cold, ${o.clients} clients on 1 replica (filesystem): rep ${rep + 1}: ${cold1.at(-1)!.toFixed(2)} s`);
      } catch (err) {
        failures.push(`scenario 11 single rep ${rep + 1}: ${(err as Error).message}`);
      } finally {
        await single.stop();
      }
    }
  } finally {
    await rgw.stop();
    unRgw();
    await pg.stop();
    unPg();
  }
  const sc = `11. Replicas: ${o.clients} cold clients over 3 replicas on S3 + PostgreSQL`;
  const c3 = summarize(cold3);
  const c1 = summarize(cold1);
  const ur = summarize(upstreamRatio);
  const ws = summarize(warmStream);
  const wr = summarize(warmRedirect);
  const rows: ReplicasRow[] = [
    { scenario: sc, metric: 'upstream bytes ÷ image ↓', better: 'lower', cells: { regcache: ur }, target: '≤ 1.05×', ...(ur ? { verdict: ur.max <= 1.05 ? 'PASS' : 'MISS' } : {}) },
    { scenario: sc, metric: 'wall s, 3 replicas S3+PG ↓', better: 'lower', cells: { regcache: c3 }, ...(c3 && c1 ? { ratio: c3.median / c1.median, note: 'ratio: against 1 replica on the filesystem' } : {}) },
    { scenario: sc, metric: 'wall s, 1 replica filesystem ↓', better: 'lower', cells: { regcache: c1 } },
    { scenario: `11. Warm blobs from S3, ${o.clients} clients`, metric: 'wall s, streamed by regcache ↓', better: 'lower', cells: { regcache: ws }, ...(ws && wr ? { ratio: ws.median / wr.median, note: 'ratio: against the presigned redirect' } : {}) },
    { scenario: `11. Warm blobs from S3, ${o.clients} clients`, metric: 'wall s, presigned redirect ↓', better: 'lower', cells: { regcache: wr } },
  ];
  return { rows, raw: { clients: o.clients, imageBytes: img.totalBytes, cold3, cold1, upstreamRatio, warmStream, warmRedirect }, failures };
}
