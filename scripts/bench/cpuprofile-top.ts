/**
 * Top self-time functions of a V8 .cpuprofile (as written by `node --cpu-prof`).
 *
 *   node --import ./scripts/register-ts.mjs scripts/bench/cpuprofile-top.ts FILE.cpuprofile [N]
 *
 * Self time of a node = the sum of the sampling intervals whose sample landed in it; functions are aggregated by
 * name + script + line, and also grouped by where they live (regcache's dist/, a node_modules package, node
 * internals, or V8's pseudo-nodes such as (garbage collector), (program), (idle)).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  where: string;
  selfMs: number;
  pct: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Excluding (idle). */
  busyMs: number;
  top: ProfileEntry[];
  groups: Array<{ group: string; selfMs: number; pct: number }>;
}

function shortUrl(url: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + 14);
  const dist = u.indexOf('/dist/');
  if (dist >= 0) return u.slice(dist + 1);
  return u;
}

function groupOf(f: CallFrame): string {
  if (f.functionName.startsWith('(') && !f.url) return f.functionName;
  const u = f.url;
  if (!u) return '(native / V8 builtins)';
  if (u.startsWith('node:')) return 'node internals';
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 14).split('/');
    return `node_modules/${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (u.includes('/dist/')) return 'regcache (dist/)';
  return u;
}

export function summarizeProfile(file: string): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    // timeDeltas[i] is the time since the previous sample; charge the interval that ends at sample i+1 to sample i.
    const dt = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }
  const fn = new Map<string, { name: string; where: string; us: number }>();
  const groups = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    total += us;
    if (f.functionName === '(idle)') idle += us;
    const name = f.functionName || '(anonymous)';
    const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '';
    const key = `${name}\u0000${where}`;
    const e = fn.get(key) ?? { name, where, us: 0 };
    e.us += us;
    fn.set(key, e);
    const g = groupOf(f);
    groups.set(g, (groups.get(g) ?? 0) + us);
  }
  const pct = (us: number): number => (total ? (100 * us) / total : 0);
  return {
    totalMs: total / 1000,
    busyMs: (total - idle) / 1000,
    top: [...fn.values()].sort((a, b) => b.us - a.us).map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, pct: pct(e.us) })),
    groups: [...groups.entries()].sort((a, b) => b[1] - a[1]).map(([group, us]) => ({ group, selfMs: us / 1000, pct: pct(us) })),
  };
}

export function formatProfileSummary(s: ProfileSummary, n = 25): string {
  const lines = [`total ${s.totalMs.toFixed(0)} ms sampled, busy (not idle) ${s.busyMs.toFixed(0)} ms`, '', 'self time by function:'];
  for (const e of s.top.slice(0, n)) {
    lines.push(`  ${e.selfMs.toFixed(1).padStart(9)} ms ${e.pct.toFixed(1).padStart(5)}%  ${e.name}${e.where ? `  ${e.where}` : ''}`);
  }
  lines.push('', 'self time by origin:');
  for (const g of s.groups.slice(0, 12)) lines.push(`  ${g.selfMs.toFixed(1).padStart(9)} ms ${g.pct.toFixed(1).padStart(5)}%  ${g.group}`);
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node --import ./scripts/register-ts.mjs scripts/bench/cpuprofile-top.ts FILE.cpuprofile [N]');
    process.exit(2);
  }
  process.stdout.write(`${formatProfileSummary(summarizeProfile(file), n ? Number(n) : 25)}\n`);
}
