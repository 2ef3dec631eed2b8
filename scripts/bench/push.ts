/**
 * Push scenarios (issue 11), regcache's hosted repositories against distribution as a plain
 * registry (Debian docker-registry, filesystem storage), in the same run:
 *   12. skopeo pushes the big image, then the small images (8 at a time), from an OCI layout on
 *      disk: wall time, regcache / distribution (target <= 1.0);
 *   13. 20 concurrent pushes of images sharing one 100 MiB layer into regcache: peak RSS
 *      (target < 150 MB) and bytes regcache wrote to disk per byte of that layer (written once: ~1).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeImage, makeLayer, pushImage, runCommand, startRegistry, tmpDir, type Registry } from '../../test/helpers/index.js';
import { onCleanup } from './lib/cleanup.js';
import { log } from './lib/env.js';
import { RssSampler } from './lib/proc.js';
import type { Seed } from './lib/seed.js';
import { mapLimit, MiB, summarize, type Summary } from './lib/stats.js';
import { startRegcacheSystem, type System } from './lib/systems.js';

export interface PushRow {
  scenario: string;
  metric: string;
  better: 'lower' | 'higher';
  cells: Partial<Record<'regcache' | 'distribution', Summary>>;
  ratio?: number;
  target?: string;
  verdict?: 'PASS' | 'MISS';
  note?: string;
}

/** regcache with every name hosted and anonymous pushes (an empty htpasswd: no users, one anonymous rule). */
async function hostedRegcache(upstream: Registry, logLevel: string, extra: Record<string, unknown> = {}): Promise<System> {
  const dir = tmpDir('regcache-bench-push-');
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, '');
  return startRegcacheSystem(upstream, {
    logLevel,
    config: {
      hostedRepositories: { '**': {} },
      auth: { htpasswd, anonymousPull: true, rules: [{ users: ['anonymous'], repositories: ['**'], actions: ['push'] }] },
      ...extra,
    },
  });
}

async function plainDistribution(): Promise<Registry> {
  const reg = await startRegistry();
  onCleanup('distribution (plain registry)', () => reg.stop());
  return reg;
}

async function skopeo(args: string[]): Promise<void> {
  const r = await runCommand('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--retry-times', '0', ...args], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`skopeo copy ${args.join(' ')}: ${r.stderr.slice(-500)}`);
}

function writeBytes(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const m = /write_bytes:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export async function pushScenarios(upstream: Registry, seed: Seed, opts: { reps: number; only: Set<number>; logLevel: string }): Promise<PushRow[]> {
  const rows: PushRow[] = [];
  if (opts.only.has(12)) {
    log('scenario 8: skopeo push of the big image and the small images (regcache hosted vs distribution)');
    const layout = join(tmpDir('regcache-bench-layout-'), 'oci');
    await skopeo([`docker://${upstream.host}/${seed.big.repo}:${seed.big.tag}`, `oci:${layout}:big`]);
    await mapLimit(seed.small, 8, (s, i) => skopeo([`docker://${upstream.host}/${s.repo}:${s.tag}`, `oci:${layout}-small-${i}:img`]));
    const times: Record<'big' | 'small', Record<'regcache' | 'distribution', number[]>> = { big: { regcache: [], distribution: [] }, small: { regcache: [], distribution: [] } };
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const name of ['regcache', 'distribution'] as const) {
        const target = name === 'regcache' ? await hostedRegcache(upstream, opts.logLevel) : await plainDistribution();
        const host = target.url.replace(/^http:\/\//, '');
        try {
          let t0 = performance.now();
          await skopeo([`oci:${layout}:big`, `docker://${host}/push/big:${rep}`]);
          times.big[name].push((performance.now() - t0) / 1000);
          t0 = performance.now();
          await mapLimit(seed.small, 8, (s, i) => skopeo([`oci:${layout}-small-${i}:img`, `docker://${host}/push/${s.repo}:${rep}`]));
          times.small[name].push((performance.now() - t0) / 1000);
          log(`scenario 12 rep ${rep + 1} ${name}: big ${times.big[name].at(-1)!.toFixed(1)} s, small ${times.small[name].at(-1)!.toFixed(1)} s`);
        } finally {
          await target.stop();
        }
      }
    }
    for (const k of ['big', 'small'] as const) {
      const cells = { regcache: summarize(times[k].regcache), distribution: summarize(times[k].distribution) };
      const ratio = cells.regcache && cells.distribution ? cells.regcache.median / cells.distribution.median : undefined;
      rows.push({
        scenario: k === 'big' ? `12a. skopeo push, big image (${(seed.big.totalBytes / 1e6).toFixed(0)} MB)` : `12b. skopeo push, ${seed.small.length} small images (8 at a time)`,
        metric: 'wall time (s)', better: 'lower', cells, target: 'regcache/distribution <= 1.0',
        ...(ratio === undefined ? {} : { ratio, verdict: ratio <= 1.0 ? 'PASS' : 'MISS' }),
      });
    }
  }
  if (opts.only.has(13)) {
    log('scenario 9: 20 concurrent pushes sharing a 100 MiB layer into regcache');
    const shared = makeLayer({ randomBytes: 100 * MiB, seed: 'bench-push-shared' });
    const images = Array.from({ length: 20 }, (_, i) => makeImage({ format: 'oci', layers: [shared, makeLayer({ [`own-${i}`]: `push ${i}\n` })] }));
    const rss: number[] = [];
    const written: number[] = [];
    for (let rep = 0; rep < opts.reps; rep++) {
      // This scenario measures memory and disk writes, not latency: the client (this process) builds and
      // sends 20 bodies at once and may not get its request headers out within the default 10 s on a loaded machine.
      const rc = await hostedRegcache(upstream, opts.logLevel, { server: { headersTimeout: '120s' } });
      try {
        const sampler = new RssSampler(rc.pid!).start();
        const w0 = writeBytes(rc.pid);
        await Promise.all(images.map((img, i) => pushImage(rc.url, `push/shared-${i}`, 'v1', img)));
        written.push((writeBytes(rc.pid) - w0) / shared.size);
        rss.push(sampler.stop().peakRss / 1e6);
        log(`scenario 13 rep ${rep + 1}: peak RSS ${rss.at(-1)!.toFixed(0)} MB, written ${written.at(-1)!.toFixed(2)} x the layer`);
      } finally {
        await rc.stop();
      }
    }
    const peak = summarize(rss);
    rows.push({
      scenario: '13. 20 concurrent pushes sharing a 100 MiB layer', metric: 'regcache peak RSS (MB)', better: 'lower',
      cells: peak ? { regcache: peak } : {}, target: '< 150 MB', ...(peak ? { verdict: peak.max < 150 ? 'PASS' : 'MISS' } : {}),
    });
    const w = summarize(written);
    rows.push({
      scenario: '13. 20 concurrent pushes sharing a 100 MiB layer', metric: 'bytes written to disk / layer size', better: 'lower',
      cells: w ? { regcache: w } : {}, target: '~1 (the layer written once)', ...(w ? { verdict: w.max < 2 ? 'PASS' : 'MISS' } : {}),
      note: 'concurrent uploads of the same content share one spool (the first 64 KiB pick it; later sessions compare instead of writing): the layer is written once',
    });
  }
  return rows;
}
