/**
 * Latency probe for the admission-at-scale scenario, in its own process so the bench's own
 * work never shows up as server latency. Until its stdin closes it (1) GETs /healthz every
 * 5 ms on one connection (the longest answer is the longest event-loop stall, plus a
 * loopback round trip) and (2) GETs warm manifests round-robin on 4 connections. Prints one
 * JSON line: healthz max/p99 and warm p50/p99 in ms, and counts. With PROBE_TRACE=FILE it also
 * writes every sample there (scale-probe.ts --probe-trace).
 *
 *   node --import ./scripts/register-ts.mjs scripts/bench/latency-probe.ts BASE_URL REPO DIGEST[,DIGEST...]
 */
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'undici';

const [base, repo, list] = process.argv.slice(2);
if (!base || !repo || !list) {
  process.stderr.write('usage: latency-probe.ts BASE_URL REPO DIGESTS\n');
  process.exit(2);
}
const digests = list.split(',');
const agent = new Agent({ connections: 8, keepAliveTimeout: 30_000 });
let running = true;
process.stdin.on('end', () => { running = false; });
process.stdin.on('close', () => { running = false; });
process.stdin.resume();

const healthz: number[] = [];
const warm: number[] = [];
/** PROBE_TRACE=FILE: every sample, "<epoch ms> <latency ms> <h|w>", written there at the end. */
const traceFile = process.env.PROBE_TRACE;
const trace: string[] = [];
let errors = 0;

async function timed(path: string, accept?: string): Promise<number> {
  const t0 = performance.now();
  const res = await request(`${base}${path}`, { dispatcher: agent, ...(accept ? { headers: { accept } } : {}) });
  await res.body.arrayBuffer();
  if (res.statusCode !== 200) errors++;
  const ms = performance.now() - t0;
  if (traceFile) trace.push(`${(performance.timeOrigin + t0).toFixed(1)} ${ms.toFixed(2)} ${path.startsWith('/healthz') ? 'h' : 'w'}`);
  return ms;
}

async function probeHealth(): Promise<void> {
  while (running) {
    healthz.push(await timed('/healthz'));
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function probeWarm(offset: number): Promise<void> {
  let i = offset;
  while (running) {
    const d = digests[i++ % digests.length]!;
    warm.push(await timed(`/v2/${repo}/manifests/${d}`, 'application/vnd.oci.image.manifest.v1+json'));
  }
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN;
};

await Promise.all([probeHealth(), probeWarm(0), probeWarm(7), probeWarm(13), probeWarm(29)]);
process.stdout.write(`${JSON.stringify({
  healthzMaxMs: healthz.reduce((a, b) => Math.max(a, b), 0), healthzP99Ms: pct(healthz, 0.99), healthzCount: healthz.length,
  warmP50Ms: pct(warm, 0.5), warmP99Ms: pct(warm, 0.99), warmMaxMs: warm.reduce((a, b) => Math.max(a, b), 0), warmCount: warm.length, errors,
})}\n`);
if (traceFile) writeFileSync(traceFile, `${trace.join('\n')}\n`);
await agent.close();
