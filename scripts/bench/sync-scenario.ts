/**
 * Scenario 8 of `npm run bench`: sync jobs (docs/sync.md) against `skopeo sync` of the same
 * set to a local directory, in one run, each through its own counting forwarder to the same
 * upstream docker-registry. The set is the big image (one job) plus every small image (a
 * second job over the `small/*` namespace, listed from the catalog). Figures: wall time of
 * the first run (both jobs at once, `?wait=1`), upstream bytes against the content bytes,
 * and what a second run with nothing changed asks the upstream (expected: no blob or
 * manifest GET, one manifest HEAD per tag).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runCommand, startForwarder, tmpDir, type Registry } from '../../test/helpers/index.js';
import { imageBytes, type Seed } from './lib/seed.js';
import { startRegcacheSystem, type System } from './lib/systems.js';

export interface SyncRep {
  regcacheSeconds: number;
  skopeoSeconds: number;
  regcacheUpstreamBytes: number;
  skopeoUpstreamBytes: number;
  second: { blobGets: number; manifestGets: number; manifestHeads: number; otherRequests: number };
}

export interface SyncScenarioResult {
  contentBytes: number;
  tags: number;
  reps: SyncRep[];
}

async function runNow(sys: System, job: string): Promise<{ result: string; error?: string }> {
  const res = await fetch(`${sys.url}/api/v1/sync/${job}/now?wait=1`, { method: 'POST' });
  const body = (await res.json()) as { run?: { result: string; error?: string } };
  if (!res.ok || !body.run) throw new Error(`sync now ${job}: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return body.run;
}

async function bothJobs(sys: System): Promise<void> {
  const runs = await Promise.all([runNow(sys, 'big'), runNow(sys, 'small')]);
  for (const r of runs) if (r.result !== 'SUCCESS') throw new Error(`sync run ${r.result}: ${r.error}`);
}

export async function syncScenario(upstream: Registry, seed: Seed, reps: number, logLevel: string, log: (s: string) => void): Promise<SyncScenarioResult> {
  const contentBytes = imageBytes(seed.big.image) + seed.small.reduce((a, s) => a + imageBytes(s.image), 0);
  const tags = 1 + seed.small.length;
  const out: SyncRep[] = [];
  for (let rep = 0; rep < reps; rep++) {
    // regcache: two jobs, started together, as an operator would with `regcache sync now`.
    const sys = await startRegcacheSystem(upstream, {
      logLevel,
      config: {
        sync: {
          big: { source: `bench.upstream/${seed.big.repo}`, tags: seed.big.tag, enabled: false },
          small: { source: 'bench.upstream/small/*', tags: 'v1', enabled: false },
        },
        syncLimits: { 'bench.upstream': { concurrency: 8 } },
      },
    });
    let regcacheSeconds: number;
    let regcacheUpstreamBytes: number;
    let second: SyncRep['second'];
    try {
      sys.fwd!.reset();
      const t0 = performance.now();
      await bothJobs(sys);
      regcacheSeconds = (performance.now() - t0) / 1000;
      regcacheUpstreamBytes = sys.fwd!.bytesFromTarget;
      sys.fwd!.reset();
      await bothJobs(sys);
      const f = sys.fwd!;
      const blobGets = f.count('GET', /\/blobs\//);
      const manifestGets = f.count('GET', /\/manifests\//);
      const manifestHeads = f.count('HEAD', /\/manifests\//);
      second = { blobGets, manifestGets, manifestHeads, otherRequests: f.requests.length - blobGets - manifestGets - manifestHeads };
    } finally {
      await sys.stop();
    }

    // skopeo sync of the same images to a directory, through its own forwarder.
    const fwd = await startForwarder(upstream);
    const dir = tmpDir('regcache-bench-skopeo-sync-');
    let skopeoSeconds: number;
    let skopeoUpstreamBytes: number;
    try {
      const images: Record<string, string[]> = { [seed.big.repo]: [seed.big.tag] };
      for (const s of seed.small) images[s.repo] = [s.tag];
      const yamlFile = join(dir, 'sync.yaml');
      writeFileSync(yamlFile, stringify({ [fwd.host]: { 'tls-verify': false, images } }));
      const t0 = performance.now();
      const r = await runCommand('skopeo', ['--insecure-policy', '--tmpdir', dir, 'sync', '--src', 'yaml', '--dest', 'dir', '--retry-times', '0', yamlFile, join(dir, 'out')], {
        timeoutMs: 1_800_000, env: { ...process.env, TMPDIR: dir },
      });
      skopeoSeconds = (performance.now() - t0) / 1000;
      if (r.code !== 0) throw new Error(`skopeo sync failed (${r.code}): ${r.stderr.slice(-1000)}`);
      skopeoUpstreamBytes = fwd.bytesFromTarget;
    } finally {
      await fwd.close();
    }
    const rr: SyncRep = { regcacheSeconds, skopeoSeconds, regcacheUpstreamBytes, skopeoUpstreamBytes, second };
    log(`10. sync jobs rep ${rep + 1}: regcache ${regcacheSeconds.toFixed(2)} s, skopeo sync ${skopeoSeconds.toFixed(2)} s; ` +
      `upstream bytes ${regcacheUpstreamBytes} / content ${contentBytes}; second run: ${JSON.stringify(second)}`);
    out.push(rr);
  }
  return { contentBytes, tags, reps: out };
}
