/**
 * Scenario 9 (issue 13): `regcache copy` against skopeo, to a fresh destination registry each time, in one run:
 * - the big image (bench/big:1, 178 MB by default): `regcache copy` vs `skopeo copy`;
 * - the small images (small/img-NNN:v1, 200 by default): one `regcache copy -f mapping` vs `skopeo copy` run once
 *   per image (what a script around skopeo does) and one `skopeo sync` over all of them;
 * - peak RSS of the regcache copy process (VmRSS polled every 50 ms, and VmHWM);
 * - the big image once more with scripts/bench/minimal-copier.mjs (undici alone, ~30 lines): what any Node.js
 *   process pays on this machine (start-up, per-byte cost), so the big ratio can be read against Node's floor.
 * Targets: ratio to skopeo ≤ 1.0 (big), ≤ 0.8 (small), RSS < 150 MB. The floor row has none: it is a reference.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { CLI_PATH, spawnManaged, startRegistry, tmpDir, type Registry } from '../../test/helpers/index.js';
import { SERVE_NODE_FLAGS } from './lib/systems.js';
import { onCleanup } from './lib/cleanup.js';
import { log } from './lib/env.js';
import { RssSampler } from './lib/proc.js';
import type { Seed } from './lib/seed.js';
import { fmtNum, fmtSummary, summarize, type Summary } from './lib/stats.js';

export interface CopyBenchResult {
  markdown: string;
  raw: Record<string, unknown>;
  failures: string[];
}

interface Timed {
  s: number;
  peakRss?: number;
  hwm?: number;
}

async function timed(cmd: string, args: string[], sampleRss: boolean): Promise<Timed> {
  const t0 = performance.now();
  const p = spawnManaged(cmd, args);
  const sampler = sampleRss && p.proc.pid !== undefined ? new RssSampler(p.proc.pid, 50).start() : undefined;
  const r = await p.exited;
  const mem = sampler?.stop();
  const s = (performance.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`${cmd} ${args.slice(0, 3).join(' ')}... exited ${r.code}: ${p.stderr().slice(-500)}`);
  return mem ? { s, peakRss: mem.peakRss, hwm: mem.hwm } : { s };
}

async function freshDestination(): Promise<Registry> {
  const reg = await startRegistry({ extraConfig: { log: { level: 'warn', formatter: 'text', accesslog: { disabled: true } } } });
  onCleanup('copy bench destination', () => reg.stop());
  return reg;
}

const SKOPEO = ['--insecure-policy'];
const MINIMAL_COPIER = fileURLToPath(new URL('./minimal-copier.mjs', import.meta.url));
const TLS = ['--src-tls-verify=false', '--dest-tls-verify=false'];

export async function scenarioCopy(upstream: Registry, seed: Seed, reps: number): Promise<CopyBenchResult> {
  const dir = tmpDir('regcache-bench-copy-');
  const failures: string[] = [];
  const big: Record<'regcache' | 'skopeo' | 'nodeFloor', number[]> = { regcache: [], skopeo: [], nodeFloor: [] };
  const small: Record<'regcache' | 'skopeo' | 'skopeoSync', number[]> = { regcache: [], skopeo: [], skopeoSync: [] };
  const rss: number[] = [];
  const auth = join(dir, 'auth.json');
  writeFileSync(auth, '{"auths":{}}\n');
  for (let rep = 0; rep < reps; rep++) {
    const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        failures.push(`scenario 9 ${what} rep ${rep + 1}: ${(err as Error).message}`);
        log(`FAILED scenario 9 ${what} rep ${rep + 1}: ${(err as Error).message}`);
      }
    };
    await attempt('big regcache', async () => {
      const dst = await freshDestination();
      try {
        const t = await timed(process.execPath, [...SERVE_NODE_FLAGS, CLI_PATH, 'copy', '--registry-config', auth, '--insecure', `${upstream.host},${dst.host}`,
          `${upstream.host}/${seed.big.repo}:${seed.big.tag}`, `${dst.host}/${seed.big.repo}:${seed.big.tag}`], true);
        big.regcache.push(t.s);
        rss.push(t.peakRss! / 1e6);
        log(`9. copy big image: regcache rep ${rep + 1}: ${t.s.toFixed(2)} s, peak RSS ${(t.peakRss! / 1e6).toFixed(0)} MB`);
      } finally {
        await dst.stop();
      }
    });
    await attempt('big skopeo', async () => {
      const dst = await freshDestination();
      try {
        const t = await timed('skopeo', [...SKOPEO, 'copy', '--authfile', auth, ...TLS,
          `docker://${upstream.host}/${seed.big.repo}:${seed.big.tag}`, `docker://${dst.host}/${seed.big.repo}:${seed.big.tag}`], false);
        big.skopeo.push(t.s);
        log(`9. copy big image: skopeo rep ${rep + 1}: ${t.s.toFixed(2)} s`);
      } finally {
        await dst.stop();
      }
    });
    await attempt('big minimal Node copier', async () => {
      const dst = await freshDestination();
      try {
        // The same flags as regcache copy runs with (its CLI adds --liftoff-only itself for every command but serve).
        const t = await timed(process.execPath, [...SERVE_NODE_FLAGS, '--liftoff-only', MINIMAL_COPIER, upstream.host, dst.host, seed.big.repo, seed.big.tag], false);
        big.nodeFloor.push(t.s);
        log(`9. copy big image: minimal Node copier rep ${rep + 1}: ${t.s.toFixed(2)} s`);
      } finally {
        await dst.stop();
      }
    });
    await attempt('small regcache', async () => {
      const dst = await freshDestination();
      try {
        const mapping = join(dir, 'small.mapping');
        writeFileSync(mapping, seed.small.map((i) => `${upstream.host}/${i.repo}:${i.tag} ${dst.host}/${i.repo}:${i.tag}`).join('\n') + '\n');
        const t = await timed(process.execPath, [...SERVE_NODE_FLAGS, CLI_PATH, 'copy', '--registry-config', auth, '--insecure', `${upstream.host},${dst.host}`, '-f', mapping], true);
        small.regcache.push(t.s);
        rss.push(t.peakRss! / 1e6);
        log(`9. copy ${seed.small.length} small images: regcache rep ${rep + 1}: ${t.s.toFixed(2)} s, peak RSS ${(t.peakRss! / 1e6).toFixed(0)} MB`);
      } finally {
        await dst.stop();
      }
    });
    await attempt('small skopeo per image', async () => {
      const dst = await freshDestination();
      try {
        const t0 = performance.now();
        for (const i of seed.small) {
          await timed('skopeo', [...SKOPEO, 'copy', '--authfile', auth, ...TLS, `docker://${upstream.host}/${i.repo}:${i.tag}`, `docker://${dst.host}/${i.repo}:${i.tag}`], false);
        }
        const s = (performance.now() - t0) / 1000;
        small.skopeo.push(s);
        log(`9. copy ${seed.small.length} small images: skopeo copy per image rep ${rep + 1}: ${s.toFixed(2)} s`);
      } finally {
        await dst.stop();
      }
    });
    await attempt('small skopeo sync', async () => {
      const dst = await freshDestination();
      try {
        const yml = join(dir, 'sync.yaml');
        writeFileSync(yml, stringify({ [upstream.host]: { 'tls-verify': false, images: Object.fromEntries(seed.small.map((i) => [i.repo, [i.tag]])) } }));
        const t = await timed('skopeo', [...SKOPEO, 'sync', '--authfile', auth, '--src', 'yaml', '--dest', 'docker', '--dest-tls-verify=false', yml, dst.host], false);
        small.skopeoSync.push(t.s);
        log(`9. copy ${seed.small.length} small images: skopeo sync rep ${rep + 1}: ${t.s.toFixed(2)} s`);
      } finally {
        await dst.stop();
      }
    });
  }
  const cell = (xs: number[]): Summary | undefined => summarize(xs);
  const ratio = (a: number[], b: number[]): number | undefined => {
    const x = cell(a);
    const y = cell(b);
    return x && y && y.median > 0 ? x.median / y.median : undefined;
  };
  const rBig = ratio(big.regcache, big.skopeo);
  const rFloor = ratio(big.nodeFloor, big.skopeo);
  const rOverFloor = ratio(big.regcache, big.nodeFloor);
  const rSmall = ratio(small.regcache, small.skopeo);
  const rSync = ratio(small.regcache, small.skopeoSync);
  const peak = cell(rss);
  const v = (ok: boolean | undefined): string => (ok === undefined ? '' : ok ? 'PASS' : 'MISS');
  const mb = (seed.big.totalBytes / 1e6).toFixed(0);
  const lines = [
    '| Scenario 9: copy to a fresh registry | Metric | regcache copy | skopeo copy | skopeo sync | regcache ÷ skopeo copy | Target | |',
    '|---|---|---|---|---|---|---|---|',
    `| big image (${mb} MB) | wall time, s ↓ | ${fmtSummary(cell(big.regcache))} | ${fmtSummary(cell(big.skopeo))} | — | ${rBig === undefined ? '—' : `${fmtNum(rBig)}×`} | ≤ 1.0× | ${v(rBig === undefined ? undefined : rBig <= 1.0)} |`,
    `| big image, minimal Node copier (undici only: Node's floor here) | wall time, s ↓ | ${fmtSummary(cell(big.nodeFloor))} | ${fmtSummary(cell(big.skopeo))} | — | ${rFloor === undefined ? '—' : `${fmtNum(rFloor)}×`}${rOverFloor === undefined ? '' : ` (regcache ÷ floor ${fmtNum(rOverFloor)}×)`} | reference | |`,
    `| ${seed.small.length} small images | wall time, s ↓ | ${fmtSummary(cell(small.regcache))} | ${fmtSummary(cell(small.skopeo))} (one per image) | ${fmtSummary(cell(small.skopeoSync))} | ${rSmall === undefined ? '—' : `${fmtNum(rSmall)}×`}${rSync === undefined ? '' : ` (÷ sync ${fmtNum(rSync)}×)`} | ≤ 0.8× | ${v(rSmall === undefined ? undefined : rSmall <= 0.8)} |`,
    `| peak RSS of regcache copy | MB ↓ | ${fmtSummary(peak)} | — | — | — | < 150 MB | ${v(peak === undefined ? undefined : peak.max < 150)} |`,
  ];
  return { markdown: lines.join('\n') + '\n', raw: { unit: 's', big, small, peakRssMB: rss, bigBytes: seed.big.totalBytes }, failures };
}
