/**
 * Scenario 8 alone, for investigating stalls: seeds the synthetic store once into a kept directory (--seed-dir),
 * copies it for each run, starts regcache with extra node flags, runs the latency probe while cold fills cross
 * maxSize, and prints the probe's figures and where regcache's log and CPU profile are.
 *
 *   npm run build && node --import ./scripts/register-ts.mjs scripts/bench/scale-probe.ts \
 *     [--seed-dir DIR] [--node-args "--cpu-prof --trace-gc"] [--fills 40] [--blobs 300000] [--manifests 20000]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBlob, pushBlob, seededBytes, tmpDir } from '../../test/helpers/index.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { newAgent } from './lib/client.js';
import { startLatencyProbe } from './lib/latency.js';
import { log, parseFlags } from './lib/env.js';
import { mapLimit, MiB } from './lib/stats.js';
import { seedSyntheticStore } from './lib/synthetic-store.js';
import { startRegcacheSystem, startUpstream } from './lib/systems.js';

const { values } = parseFlags(process.argv.slice(2), []);
const seedDir = values.get('seed-dir') ?? join(tmpDir('regcache-scale-seed-'), 'seed');
const blobs = Number(values.get('blobs') ?? 300_000);
const manifests = Number(values.get('manifests') ?? 20_000);
const fills = Number(values.get('fills') ?? 40);
const nodeArgs = (values.get('node-args') ?? '').split(' ').filter(Boolean);

installSignalHandlers();
try {
  const metaPath = join(seedDir, 'seed.json');
  if (!existsSync(metaPath)) {
    mkdirSync(seedDir, { recursive: true });
    const t0 = performance.now();
    const s = seedSyntheticStore(join(seedDir, 'data'), { blobs, manifests, blobSize: 1024, now: Date.now(), hot: 200 });
    writeFileSync(metaPath, JSON.stringify(s));
    log(`seeded ${blobs} blobs, ${manifests} manifests in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const store = JSON.parse(readFileSync(metaPath, 'utf8')) as { blobBytes: number; manifestBytes: number; hot: string[]; repo: string };
  const dir = tmpDir('regcache-scale-run-');
  const dataDir = join(dir, 'data');
  spawnSync('cp', ['-a', join(seedDir, 'data'), dataDir], { stdio: 'inherit' });
  const upstream = await startUpstream();
  const cold: Array<{ digest: string; size: number }> = [];
  for (let i = 0; i < fills; i++) {
    const b = makeBlob(seededBytes(4 * MiB, `scale-cold-${i}`));
    await pushBlob(upstream.url, store.repo, b);
    cold.push({ digest: b.digest, size: b.size });
  }
  const t0 = performance.now();
  const sys = await startRegcacheSystem(upstream, {
    logLevel: 'info', startTimeoutMs: 600_000, nodeArgs,
    config: { dataDir, retention: { maxSize: store.blobBytes + store.manifestBytes, interval: 0 } },
  });
  log(`regcache started in ${((performance.now() - t0) / 1000).toFixed(1)} s; log ${sys.logFile}`);
  const probe = await startLatencyProbe(sys.url, store.repo, store.hot);
  const agent = newAgent();
  const { request } = await import('undici');
  const fillT0 = performance.now();
  await mapLimit(cold, 2, async (b) => {
    const res = await request(`${sys.url}/v2/${store.repo}/blobs/${b.digest}`, { dispatcher: agent });
    await res.body.arrayBuffer();
  });
  log(`fills done in ${((performance.now() - fillT0) / 1000).toFixed(1)} s`);
  await new Promise((r) => setTimeout(r, 500));
  const r = await probe.stop();
  await agent.close();
  await sys.stop();
  log(`probe: ${JSON.stringify(r)}`);
} finally {
  await runCleanup();
}
