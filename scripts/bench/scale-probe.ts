/**
 * Scenario 8 alone, for investigating stalls: seeds the synthetic store once into a kept directory (--seed-dir),
 * copies it for each run, starts regcache with extra node flags, runs the latency probe while cold fills cross
 * maxSize, and prints the probe's figures and where regcache's log and CPU profile are.
 *
 *   npm run build && node --import ./scripts/register-ts.mjs scripts/bench/scale-probe.ts \
 *     [--seed-dir DIR] [--node-args "--cpu-prof --trace-gc"] [--fills 40] [--blobs 300000] [--manifests 20000]
 *     [--blob-sizes mixed|tiny]  synthetic blob sizes (lib/synthetic-store.ts; a seed dir keeps the sizes it was made with)
 *     [--keep-log FILE]   copy regcache's log there after it stopped
 *     [--perf FILE]       `perf record -g` of regcache while the probe runs (add --node-args --perf-basic-prof for JS names)
 *     [--warmup-fills 10] cold fills (crossing the cap) and warm GETs before the probe starts (lib/scale-warmup.ts)
 *     [--hold-ms 500]     how long the probe goes on after the fills (--fills 0 --hold-ms 5000: the probe against an idle store)
 *     [--no-sync]         do not `sync` after preparing the run's data directory (dirty pages written back during the run)
 *     [--max-size-factor F] retention.maxSize = F × the seeded store (2: the fills never cross it, no eviction: the floor)
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBlob, pushBlob, seededBytes, tmpDir } from '../../test/helpers/index.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { newAgent } from './lib/client.js';
import { startLatencyProbe } from './lib/latency.js';
import { warmUpScale } from './lib/scale-warmup.js';
import { log, parseFlags } from './lib/env.js';
import { statCpu } from './lib/proc.js';
import { mapLimit, MiB } from './lib/stats.js';
import { seedSyntheticStore } from './lib/synthetic-store.js';
import { startRegcacheSystem, startUpstream } from './lib/systems.js';

const { values, flags } = parseFlags(process.argv.slice(2), ['no-sync']);
const seedDir = values.get('seed-dir') ?? join(tmpDir('regcache-scale-seed-'), 'seed');
const blobs = Number(values.get('blobs') ?? 300_000);
const manifests = Number(values.get('manifests') ?? 20_000);
const fills = Number(values.get('fills') ?? 40);
const warmFills = Number(values.get('warmup-fills') ?? 10);
const blobSizes = values.get('blob-sizes') === 'tiny' ? 'tiny' : 'mixed';
const nodeArgs = (values.get('node-args') ?? '').split(' ').filter(Boolean);

/** CPU seconds (user + system, all threads) of every process. */
function allCpu(): Map<number, { name: string; s: number }> {
  const out = new Map<number, { name: string; s: number }>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const c = statCpu(`/proc/${e}/stat`);
    if (c) out.set(Number(e), { name: c.name, s: c.user + c.system });
  }
  return out;
}

installSignalHandlers();
try {
  const metaPath = join(seedDir, 'seed.json');
  if (!existsSync(metaPath)) {
    mkdirSync(seedDir, { recursive: true });
    const t0 = performance.now();
    const s = seedSyntheticStore(join(seedDir, 'data'), { blobs, manifests, blobSizes, now: Date.now(), hot: 200 });
    writeFileSync(metaPath, JSON.stringify(s));
    log(`seeded ${blobs} blobs, ${manifests} manifests in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const store = JSON.parse(readFileSync(metaPath, 'utf8')) as { blobBytes: number; manifestBytes: number; hot: string[]; repo: string };
  const dir = tmpDir('regcache-scale-run-');
  const dataDir = join(dir, 'data');
  // Blob files hard-linked (a run only unlinks them), the index copied: a run costs no 1.5 GB copy.
  mkdirSync(dataDir);
  spawnSync('cp', ['-al', join(seedDir, 'data', 'blobs'), join(dataDir, 'blobs')], { stdio: 'inherit' });
  const rest = readdirSync(join(seedDir, 'data')).filter((e) => e !== 'blobs').map((e) => join(seedDir, 'data', e));
  spawnSync('cp', ['-a', ...rest, dataDir], { stdio: 'inherit' });
  // What the machine still has to write back is not regcache's to wait for (--no-sync: measure it anyway).
  if (!flags.has('no-sync')) spawnSync('sync');
  const upstream = await startUpstream();
  const cold: Array<{ digest: string; size: number }> = [];
  for (let i = 0; i < fills + warmFills; i++) {
    const b = makeBlob(seededBytes(4 * MiB, `scale-cold-${i}`));
    await pushBlob(upstream.url, store.repo, b);
    cold.push({ digest: b.digest, size: b.size });
  }
  const t0 = performance.now();
  const sys = await startRegcacheSystem(upstream, {
    logLevel: 'info', startTimeoutMs: 600_000, stopTimeoutMs: 300_000, nodeArgs,
    noForwarder: true, config: { dataDir, retention: { maxSize: Math.round((store.blobBytes + store.manifestBytes) * Number(values.get('max-size-factor') ?? 1)), interval: 0 } },
  });
  log(`regcache started in ${((performance.now() - t0) / 1000).toFixed(1)} s; log ${sys.logFile}`);
  const agent = newAgent();
  const warm = cold.splice(0, warmFills);
  const w0 = performance.now();
  await warmUpScale(agent, sys.url, store.repo, warm, store.hot);
  log(`warm-up: ${warm.length} cold fills and the warm manifests in ${((performance.now() - w0) / 1000).toFixed(1)} s`);
  const perfOut = values.get('perf');
  const perf = perfOut ? spawn('perf', ['record', '-F', '1000', '-g', '-p', String(sys.pid), '-o', perfOut], { stdio: 'ignore' }) : undefined;
  const probe = await startLatencyProbe(sys.url, store.repo, store.hot);
  const { request } = await import('undici');
  const cpu0 = allCpu();
  const fillT0 = performance.now();
  await mapLimit(cold, 2, async (b) => {
    const res = await request(`${sys.url}/v2/${store.repo}/blobs/${b.digest}`, { dispatcher: agent });
    await res.body.arrayBuffer();
  });
  log(`fills done in ${((performance.now() - fillT0) / 1000).toFixed(1)} s`);
  const cpu1 = allCpu();
  const used = [...cpu1].map(([pid, v]) => ({ pid, name: v.name, s: v.s - (cpu0.get(pid)?.s ?? 0) })).filter((x) => x.s > 0).sort((a, b) => b.s - a.s).slice(0, 8);
  log(`CPU during the fills (s): ${used.map((x) => `${x.pid === sys.pid ? 'regcache' : x.pid === process.pid ? 'bench' : x.name}(${x.pid}) ${x.s.toFixed(2)}`).join(', ')}`);
  await new Promise((r) => setTimeout(r, Number(values.get('hold-ms') ?? 500)));
  const r = await probe.stop();
  if (perf) { perf.kill('SIGINT'); await new Promise((res) => perf.once('exit', res)); }
  await agent.close();
  await sys.stop();
  if (values.get('keep-log') && sys.logFile) copyFileSync(sys.logFile, values.get('keep-log')!);
  log(`probe: ${JSON.stringify(r)}`);
} finally {
  await runCleanup();
}
