/**
 * Scenario 1 (one cold pull of the big image) alone, with regcache's and distribution's CPU split by thread
 * and into user and system time, for finding where the cold path's CPU goes. Clients are curl (3 layers in parallel).
 *
 *   npm run build && node --import ./scripts/register-ts.mjs scripts/bench/cold-probe.ts [--reps 5] [--only regcache]
 *     [--warmup-mib 100]      first pull a cold blob of that size (the process's JIT warm-up), then measure
 *     [--node-args "--cpu-prof --cpu-prof-dir=/tmp/p"]   node flags for regcache
 *     [--perf 1 | --perf-all 1]   `perf record -g` of regcache (or both) during the measured pull: /tmp/perf-NAME-REP.data
 *     [--keep-logs 1]         copy each system's log to /tmp/cold-probe-NAME-REP.log
 *
 * Threads are named by /proc/PID/task: "main" is the event loop; a Node process's other threads are V8's platform
 * workers (GC, optimizing compiler), libuv's pool (file I/O) and worker threads.
 */
import { readdirSync } from 'node:fs';
import { makeBlob, pushBlob, runCommand, seededBytes } from '../../test/helpers/index.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { log, parseFlags } from './lib/env.js';
import { statCpu } from './lib/proc.js';
import { generateSeed, pushSeed } from './lib/seed.js';
import { startDistributionSystem, startRegcacheSystem, startUpstream, type System } from './lib/systems.js';

const { values } = parseFlags(process.argv.slice(2), []);
const reps = Number(values.get('reps') ?? 5);
const nodeArgs = (values.get('node-args') ?? '').split(' ').filter(Boolean);
const warmupMiB = Number(values.get('warmup-mib') ?? 0);
const only = (values.get('only') ?? 'regcache,distribution').split(',');

interface ThreadCpu { user: number; sys: number }
function threads(pid: number): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const c = statCpu(`/proc/${pid}/task/${t}/stat`);
    if (!c) continue; // thread gone
    const key = t === String(pid) ? 'main' : `${t}:${c.name}`;
    const cur = out.get(key) ?? { user: 0, sys: 0 };
    cur.user += c.user;
    cur.sys += c.system;
    out.set(key, cur);
  }
  return out;
}

installSignalHandlers();
try {
  const upstream = await startUpstream();
  const seed = generateSeed({ smallCount: 0 });
  await pushSeed(upstream.url, seed);
  const img = seed.big.image;
  const warm = Array.from({ length: reps * 2 }, (_, i) => makeBlob(seededBytes(Math.max(1, warmupMiB) * 1024 * 1024, `cold-probe-warm-${i}`)));
  if (warmupMiB > 0) for (const b of warm) await pushBlob(upstream.url, seed.big.repo, b);
  const totals: Record<string, Array<{ wall: number; user: number; sys: number }>> = {};
  for (let r = 0; r < reps; r++) {
    for (const name of only) {
      const sys: System = name === 'regcache'
        ? await startRegcacheSystem(upstream, { nodeArgs })
        : await startDistributionSystem(upstream);
      if (warmupMiB > 0) {
        const w = warm.pop()!;
        const wc = await runCommand('curl', ['-sf', '-o', '/dev/null', `${sys.url}/v2/${seed.big.repo}/blobs/${w.digest}`]);
        if (wc.code !== 0) throw new Error(`warm-up: curl ${wc.code}`);
        await new Promise((res) => setTimeout(res, 1500));
      }
      const perf = values.has('perf') && name === 'regcache' || values.has('perf-all')
        ? (await import('node:child_process')).spawn('perf', ['record', '-F', '2000', '-g', '-p', String(sys.pid), '-o', `/tmp/perf-${name}-${r}.data`], { stdio: 'ignore' })
        : undefined;
      if (perf) await new Promise((res) => setTimeout(res, 500));
      const before = threads(sys.pid!);
      const t0 = performance.now();
      const m = await runCommand('curl', ['-sf', '-o', '/dev/null', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `${sys.url}/v2/${seed.big.repo}/manifests/${seed.big.tag}`]);
      if (m.code !== 0) throw new Error(`manifest: curl ${m.code}`);
      const args = ['-sfZ'];
      for (const b of [img.config, ...img.layers]) args.push('-o', '/dev/null', `${sys.url}/v2/${seed.big.repo}/blobs/${b.digest}`);
      const c = await runCommand('curl', args, { timeoutMs: 120_000 });
      if (c.code !== 0) throw new Error(`blobs: curl ${c.code} ${c.stderr}`);
      const wall = (performance.now() - t0) / 1000;
      await new Promise((res) => setTimeout(res, 300)); // commits, checkpoints
      const after = threads(sys.pid!);
      if (perf) { perf.kill('SIGINT'); await new Promise((res) => perf.once('exit', res)); }
      const parts: string[] = [];
      let user = 0; let sysT = 0;
      for (const [k, a] of after) {
        const b = before.get(k) ?? { user: 0, sys: 0 };
        const du = a.user - b.user; const ds = a.sys - b.sys;
        user += du; sysT += ds;
        if (du + ds > 0.005) parts.push(`${k} ${du.toFixed(2)}u+${ds.toFixed(2)}s`);
      }
      (totals[name] ??= []).push({ wall, user, sys: sysT });
      if (sys.logFile) log(`log: ${sys.logFile}`);
      log(`${name} rep ${r + 1}: wall ${wall.toFixed(2)} s, cpu ${(user + sysT).toFixed(2)} (${user.toFixed(2)}u + ${sysT.toFixed(2)}s) = ${((user + sysT) / (seed.big.totalBytes / 1e9)).toFixed(2)} CPU-s/GB; ${parts.join(', ')}`);
      if (values.has("keep-logs")) { const { copyFileSync } = await import("node:fs"); if (sys.logFile) copyFileSync(sys.logFile, `/tmp/cold-probe-${name}-${r}.log`); }
      await sys.stop();
    }
  }
  for (const [name, xs] of Object.entries(totals)) {
    const med = (f: (x: { wall: number; user: number; sys: number }) => number): string => { const v = xs.map(f).sort((a, b) => a - b); return v[Math.floor(v.length / 2)]!.toFixed(2); };
    log(`${name}: median wall ${med((x) => x.wall)} s, user ${med((x) => x.user)}, sys ${med((x) => x.sys)}, CPU-s/GB ${med((x) => (x.user + x.sys) / (seed.big.totalBytes / 1e9))}`);
  }
} finally {
  await runCleanup();
}
