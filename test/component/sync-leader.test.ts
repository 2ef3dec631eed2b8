/**
 * The jobs service as one replica of a cluster (deps.leader): two SyncServices on one
 * metadata store stand for two replicas. A follower runs nothing and refuses run-now; the
 * replica that gains the lease runs the job; one that loses it aborts the run and leaves its
 * `running` mark; the next leader records that run INTERRUPTED and runs the job again.
 */
import { tmpdir } from 'node:os';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/validate.js';
import { SyncService, type LeaderLease } from '../../src/jobs/sync-service.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { OciError } from '../../src/protocol/errors.js';
import { imageParts } from '../contract/repository.contract.js';
import { HOST, startProxy, type ProxyHarness } from './proxy-harness.js';

class FakeLease implements LeaderLease {
  private leader = false;
  private readonly cbs = new Set<(leader: boolean) => void>();
  isLeader(): boolean {
    return this.leader;
  }
  onLeaderChange(cb: (leader: boolean) => void): () => void {
    this.cbs.add(cb);
    return () => void this.cbs.delete(cb);
  }
  set(leader: boolean): void {
    this.leader = leader;
    for (const cb of this.cbs) cb(leader);
  }
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('sync jobs on the leader replica only', () => {
  let h: ProxyHarness;
  const services: SyncService[] = [];
  afterEach(async () => {
    for (const s of services.splice(0)) await s.stop(50);
    await h?.close();
  });

  it('runs on the leader only; a lost lease aborts the run and the next leader re-runs it', async () => {
    h = await startProxy();
    const p = imageParts('lib/app:v1');
    h.up.putBlob('lib/app', p.config);
    h.up.putBlob('lib/app', p.layer);
    h.up.putManifest('lib/app', p.manifest, 'application/vnd.oci.image.manifest.v1+json', 'v1');
    // Blob requests wait at the upstream until released.
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    h.up.script = async (req) => {
      if (req.kind === 'blob') await gate;
      return false;
    };
    const config = validateConfig({
      listen: '127.0.0.1:0', dataDir: tmpdir(), logLevel: 'silent', retention: { interval: 0 },
      upstreams: { [HOST]: { url: h.up.url } }, sync: { app: { source: `${HOST}/lib/app`, interval: '24h', retries: 0 } },
    });
    const replica = (lease: FakeLease): SyncService => {
      const s = new SyncService(config, {
        meta: h.app.meta, proxy: h.app.proxy, events: h.app.events, metrics: new Metrics({ defaultMetrics: false }),
        log: pino({ level: 'silent' }), now: Date.now, leader: lease,
      });
      services.push(s);
      return s;
    };
    const a = new FakeLease();
    const b = new FakeLease();
    const ra = replica(a);
    const rb = replica(b);
    await ra.start();
    await rb.start();
    // Followers: the enabled, never-run job is not run, and run-now is refused.
    await new Promise((r) => setTimeout(r, 100));
    expect(h.up.count('GET', 'blob')).toBe(0);
    await expect(rb.runNow('app')).rejects.toSatisfy((e) => e instanceof OciError && e.code === 'UNAVAILABLE');

    a.set(true);
    await until(() => h.up.count('GET', 'blob') > 0, 'the leader to run the job');
    expect(ra.get('app')!.state).toBe('SYNCING');
    expect(rb.get('app')!.state).not.toBe('SYNCING');

    // A loses the lease: its run is aborted, not recorded as finished.
    a.set(false);
    await until(() => ra.get('app')!.state !== 'SYNCING', 'the run to be aborted');
    const stored = await h.app.meta.getState('jobs', 'sync/app');
    expect(stored).toHaveProperty('running');

    release();
    h.up.script = undefined;
    b.set(true);
    await until(() => rb.get('app')!.state === 'SUCCESS', 'the new leader to re-run the job');
    expect(rb.get('app')!.history.map((r) => `${r.trigger} ${r.result}`)).toEqual(['schedule INTERRUPTED', 'start SUCCESS']);
    expect(await h.app.meta.getState('jobs', 'sync/app')).not.toHaveProperty('running');
  });
});
