/**
 * Scenario 8 alone, for investigating stalls: seeds the synthetic store once into a kept directory (--seed-dir),
 * copies it for each run, starts regcache with extra node flags, runs the latency probe while cold fills cross
 * maxSize, and prints the probe's figures, the CPU each process used during the fills, and where regcache's log
 * and CPU profile are (lib/scale-run.ts does the run, as for the bench).
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
 *     [--probe-trace FILE] the probe writes every sample there: "<epoch ms> <latency ms> <h|w>" (healthz, warm hit)
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBlob, pushBlob, seededBytes, tmpDir } from '../../test/helpers/index.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { log, parseFlags } from './lib/env.js';
import { describeScaleRun, runScale } from './lib/scale-run.js';
import { MiB } from './lib/stats.js';
import { seedSyntheticStore, type SyntheticStore } from './lib/synthetic-store.js';
import { startUpstream } from './lib/systems.js';

const { values, flags } = parseFlags(process.argv.slice(2), ['no-sync']);
const seedDir = values.get('seed-dir') ?? join(tmpDir('regcache-scale-seed-'), 'seed');
const blobs = Number(values.get('blobs') ?? 300_000);
const manifests = Number(values.get('manifests') ?? 20_000);
const fills = Number(values.get('fills') ?? 40);
const warmFills = Number(values.get('warmup-fills') ?? 10);
const blobSizes = values.get('blob-sizes') === 'tiny' ? 'tiny' : 'mixed';
const nodeArgs = (values.get('node-args') ?? '').split(' ').filter(Boolean);
if (values.get('probe-trace')) process.env.PROBE_TRACE = values.get('probe-trace');

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
  const store = JSON.parse(readFileSync(metaPath, 'utf8')) as SyntheticStore;
  const upstream = await startUpstream();
  const cold: Array<{ digest: string; size: number }> = [];
  for (let i = 0; i < fills + warmFills; i++) {
    const b = makeBlob(seededBytes(4 * MiB, `scale-cold-${i}`));
    await pushBlob(upstream.url, store.repo, b);
    cold.push({ digest: b.digest, size: b.size });
  }
  const perfOut = values.get('perf');
  let perf: ReturnType<typeof spawn> | undefined;
  const r = await runScale({
    upstream, seedDataDir: join(seedDir, 'data'), runDir: tmpDir('regcache-scale-run-'), store,
    warm: cold.slice(0, warmFills), cold: cold.slice(warmFills),
    maxSizeFactor: Number(values.get('max-size-factor') ?? 1), logLevel: 'info', nodeArgs,
    holdMs: Number(values.get('hold-ms') ?? 500), sync: !flags.has('no-sync'),
    log,
    onProbeStart: perfOut ? (pid) => { perf = spawn('perf', ['record', '-F', '1000', '-g', '-p', String(pid), '-o', perfOut], { stdio: 'ignore' }); } : undefined,
    afterStop: (logFile) => {
      const keep = values.get('keep-log');
      if (keep && logFile) copyFileSync(logFile, keep);
    },
  });
  if (perf) {
    perf.kill('SIGINT');
    await new Promise((res) => perf!.once('exit', res));
  }
  log(describeScaleRun(r));
  log(`probe: ${JSON.stringify(r.probe)}`);
} finally {
  await runCleanup();
}
