/**
 * One run of scenario 8 (main.ts) and of scale-probe.ts: regcache on a copy of a seeded
 * synthetic store, a warm-up, then cold 4 MiB fills two at a time while the latency probe
 * (latency-probe.ts, its own process) times /healthz and warm manifest hits.
 *
 * Each run starts from a fresh copy of the seed (blob files hard-linked: a run only unlinks
 * them; the index copied), so runs can be repeated and alternated: at `retention.maxSize`
 * (every fill crosses the cap and evicts) and, as the control, with maxSize × 2 (the same
 * fills, hits and probe, no eviction: the floor the machine and the load set).
 */
import { readdirSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Registry } from '../../../test/helpers/index.js';
import { newAgent } from './client.js';
import { startLatencyProbe, type ProbeResult } from './latency.js';
import { statCpu } from './proc.js';
import { warmUpScale } from './scale-warmup.js';
import { mapLimit } from './stats.js';
import { startRegcacheSystem } from './systems.js';
import type { SyntheticStore } from './synthetic-store.js';

export interface ScaleBlob {
  digest: string;
  size: number;
}

export interface ScaleRunOptions {
  upstream: Registry;
  /** The seed's data directory (seedSyntheticStore). */
  seedDataDir: string;
  /** Where this run's data directory goes (created). */
  runDir: string;
  store: SyntheticStore;
  /** Cold blobs the warm-up pulls, then the ones the probe is timed against (both on the upstream). */
  warm: ScaleBlob[];
  cold: ScaleBlob[];
  /** retention.maxSize as a factor of the seeded store: 1 evicts on every fill, 2 never does. */
  maxSizeFactor: number;
  logLevel: string;
  nodeArgs?: string[];
  /** How long the probe goes on after the fills, ms. */
  holdMs?: number;
  /** Run `sync` after copying the seed (the kernel's writeback is then not on the measured window). */
  sync?: boolean;
  /** Called with what the run is doing (start, warm-up, fills). */
  log?: (msg: string) => void;
  /** Called when the probe has started, with regcache's pid (scale-probe.ts: `perf record`). */
  onProbeStart?: ((pid: number) => void) | undefined;
  /** Called after regcache stopped, with the path of its log. */
  afterStop?: (logFile: string | undefined) => void;
}

export interface ScaleRunResult {
  startS: number;
  warmupS: number;
  fillS: number;
  failed: number;
  evictions: number;
  probe: ProbeResult;
  /** CPU seconds during the fills, per process (regcache, bench (the fill client), probe, others by name: docker-registry is the upstream). */
  cpu: Array<{ name: string; s: number }>;
  /** CPU seconds during the fills of regcache's main thread and of its other threads together. */
  mainThreadS: number;
  otherThreadsS: number;
}

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

/** CPU seconds of a process's main thread and of all its others. */
function threadCpu(pid: number): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const c = statCpu(`/proc/${pid}/task/${t}/stat`);
    if (!c) continue;
    if (Number(t) === pid) main += c.user + c.system;
    else others += c.user + c.system;
  }
  return { main, others };
}

/** Copies the seed for one run: blob files hard-linked, everything else copied. */
function copySeed(seedDataDir: string, dataDir: string, sync: boolean): void {
  mkdirSync(dataDir, { recursive: true });
  spawnSync('cp', ['-al', join(seedDataDir, 'blobs'), join(dataDir, 'blobs')], { stdio: 'inherit' });
  const rest = readdirSync(seedDataDir).filter((e) => e !== 'blobs').map((e) => join(seedDataDir, e));
  spawnSync('cp', ['-a', ...rest, dataDir], { stdio: 'inherit' });
  // What the machine still has to write back is not regcache's to wait for.
  if (sync) spawnSync('sync');
}

export async function runScale(o: ScaleRunOptions): Promise<ScaleRunResult> {
  const say = o.log ?? ((): void => undefined);
  const dataDir = join(o.runDir, 'data');
  copySeed(o.seedDataDir, dataDir, o.sync ?? true);
  const total = o.store.blobBytes + o.store.manifestBytes;
  const t0 = performance.now();
  const sys = await startRegcacheSystem(o.upstream, {
    logLevel: o.logLevel, startTimeoutMs: 600_000, stopTimeoutMs: 300_000, nodeArgs: o.nodeArgs ?? [],
    noForwarder: true, config: { dataDir, retention: { maxSize: Math.round(total * o.maxSizeFactor), interval: 0 } },
  });
  const startS = (performance.now() - t0) / 1000;
  say(`regcache started in ${startS.toFixed(1)} s (maxSize ${o.maxSizeFactor} × the store); log ${sys.logFile}`);
  const agent = newAgent();
  try {
    const w0 = performance.now();
    await warmUpScale(agent, sys.url, o.store.repo, o.warm, o.store.hot);
    const warmupS = (performance.now() - w0) / 1000;
    const probe = await startLatencyProbe(sys.url, o.store.repo, o.store.hot);
    o.onProbeStart?.(sys.pid!);
    const { request } = await import('undici');
    const cpu0 = allCpu();
    const th0 = threadCpu(sys.pid!);
    const fillT0 = performance.now();
    say(`warm-up ${warmupS.toFixed(1)} s; fills start at ${Date.now()} (epoch ms)`);
    let failed = 0;
    await mapLimit(o.cold, 2, async (b) => {
      const res = await request(`${sys.url}/v2/${o.store.repo}/blobs/${b.digest}`, { dispatcher: agent });
      const body = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode !== 200 || body.length !== b.size) failed++;
    });
    const fillS = (performance.now() - fillT0) / 1000;
    say(`fills end at ${Date.now()}`);
    const cpu1 = allCpu();
    const th1 = threadCpu(sys.pid!);
    const cpu = [...cpu1]
      .map(([pid, v]) => ({ pid, name: v.name, s: v.s - (cpu0.get(pid)?.s ?? 0) }))
      .filter((x) => x.s > 0.005)
      .sort((a, b) => b.s - a.s)
      .map((x) => ({ name: x.pid === sys.pid ? 'regcache' : x.pid === process.pid ? 'bench' : x.pid === probe.pid ? 'probe' : x.name, s: x.s }));
    await new Promise((r) => setTimeout(r, o.holdMs ?? 500));
    const r = await probe.stop();
    const metrics = await (await fetch(`${sys.url}/metrics`)).text();
    const evictions = metrics.split('\n').filter((l) => l.startsWith('regcache_evictions_total')).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
    return { startS, warmupS, fillS, failed, evictions, probe: r, cpu, mainThreadS: th1.main - th0.main, otherThreadsS: th1.others - th0.others };
  } finally {
    await agent.close();
    await sys.stop();
    o.afterStop?.(sys.logFile);
  }
}

/** One line for the log: the probe's figures and who used the machine during the fills. */
export function describeScaleRun(r: ScaleRunResult): string {
  return `${r.fillS.toFixed(1)} s of fills (${r.failed} failed, ${r.evictions} units evicted); ` +
    `longest /healthz ${r.probe.healthzMaxMs.toFixed(1)} ms (${r.probe.healthzCount} probes), ` +
    `warm hits p50 ${r.probe.warmP50Ms.toFixed(2)} ms p99 ${r.probe.warmP99Ms.toFixed(2)} ms (${r.probe.warmCount}), ${r.probe.errors} probe errors; ` +
    `CPU-s during the fills: ${r.cpu.slice(0, 5).map((x) => `${x.name} ${x.s.toFixed(2)}`).join(', ')} ` +
    `(regcache's main thread ${r.mainThreadS.toFixed(2)}, its other threads ${r.otherThreadsS.toFixed(2)})`;
}
