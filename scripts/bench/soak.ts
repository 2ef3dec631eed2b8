/**
 * regcache soak test (issue 6, "Load"): mixed traffic from many clients against one regcache for a while, on
 * loopback, checking that no valid request fails, every pulled blob hashes to its digest, and bad requests get a
 * 4xx; regcache's RSS and open fds are sampled every second and their growth after the warm-up is reported.
 *
 *   node --import ./scripts/register-ts.mjs scripts/bench/soak.ts [--duration 300] [--clients 100] [--warmup S]
 *        [--think-ms 100] [--tag-ttl 10s] [--log-level info] [--max-rss-growth-mb 50] [--max-fd-growth 50]
 *
 * Traffic (each client loops: pick an operation, run it, sleep 0..think-ms):
 * - warm pull (40%): a random already-published small image (manifest by tag, config and layers in parallel);
 * - cold pull (15%): the newest image a background pusher published (one every `--push-every` s), so cold fills,
 *   and many clients joining the same fill, go on for the whole run;
 * - medium pull (5%): a 20 MiB image;
 * - moving tag (10%): soak/moving:latest, re-pointed upstream every 15 s (tagTTL is short, so it revalidates);
 * - manifest HEAD (20%): by tag or by digest, must answer 200 with the right Docker-Content-Digest;
 * - bad request (10%): unknown repo/tag/blob, malformed digest, push attempt, unknown ns, bad range... must be 4xx.
 * Build first (npm run build). Writes bench-results/soak-<time>.json; exits non-zero when a check fails.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import {
  REPO_ROOT,
  makeImage,
  makeLayer,
  pushImage,
  pushManifest,
  startForwarder,
  startRegcache,
  type Image,
} from '../../test/helpers/index.js';
import { installSignalHandlers, interruptedBy, onCleanup, runCleanup } from './lib/cleanup.js';
import { ACCEPT_MANIFESTS, getBlob, pullImage } from './lib/client.js';
import { ensureBuilt, ensureTools, log, parseFlags } from './lib/env.js';
import { fdCount, procStatus } from './lib/proc.js';
import { MiB, mapLimit, sleep } from './lib/stats.js';
import { startUpstream } from './lib/systems.js';

const MB = 1e6;

interface Published {
  repo: string;
  tag: string;
  image: Image;
}

type Op = 'warm' | 'cold' | 'medium' | 'moving' | 'head' | 'bad';

const WEIGHTS: Array<[Op, number]> = [
  ['warm', 40],
  ['cold', 15],
  ['medium', 5],
  ['moving', 10],
  ['head', 20],
  ['bad', 10],
];

function pickOp(): Op {
  let r = Math.random() * 100;
  for (const [op, w] of WEIGHTS) {
    if ((r -= w) < 0) return op;
  }
  return 'warm';
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

let imageCounter = 0;
function smallImage(label: string): Image {
  const n = imageCounter++;
  const sizes = [8 * 1024 + Math.floor(Math.random() * 56 * 1024), 64 * 1024 + Math.floor(Math.random() * 448 * 1024)];
  const layers = sizes.map((s, i) => makeLayer({ randomBytes: s, seed: `soak-${process.pid}-${n}-${i}` }));
  return makeImage({ format: 'oci', layers, labels: { soak: `${label}-${n}` } });
}

interface Sample {
  t: number;
  rssMB: number;
  fds: number;
  ops: number;
}

function slopePerMin(xs: Array<{ t: number; v: number }>): number {
  if (xs.length < 2) return 0;
  const n = xs.length;
  const mt = xs.reduce((a, x) => a + x.t, 0) / n;
  const mv = xs.reduce((a, x) => a + x.v, 0) / n;
  let num = 0;
  let den = 0;
  for (const x of xs) {
    num += (x.t - mt) * (x.v - mv);
    den += (x.t - mt) ** 2;
  }
  return den ? (num / den) * 60 : 0;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function main(): Promise<number> {
  const { values } = parseFlags(process.argv.slice(2), []);
  const num = (k: string, d: number): number => (values.has(k) ? Number(values.get(k)) : d);
  const durationS = num('duration', 300);
  const clients = num('clients', 100);
  const warmupS = num('warmup', Math.min(60, Math.round(durationS * 0.2)));
  const thinkMs = num('think-ms', 100);
  const pushEveryS = num('push-every', 2);
  const maxRssGrowthMB = num('max-rss-growth-mb', 50);
  const maxFdGrowth = num('max-fd-growth', 50);
  const tagTTL = values.get('tag-ttl') ?? '10s';
  const logLevel = values.get('log-level') ?? 'info';

  installSignalHandlers();
  ensureTools(['docker-registry']);
  ensureBuilt();

  log(`soak: ${durationS} s, ${clients} clients, warm-up ${warmupS} s, think time 0–${thinkMs} ms, tagTTL ${tagTTL}`);
  const upstream = await startUpstream();
  const fwd = await startForwarder(upstream);
  onCleanup('soak forwarder', () => fwd.close());

  // Initial content.
  const warmSet: Published[] = [];
  for (let i = 0; i < 50; i++) warmSet.push({ repo: `soak/app-${String(i).padStart(2, '0')}`, tag: 'v1', image: smallImage('app') });
  const medium: Published = {
    repo: 'soak/medium',
    tag: '1',
    image: makeImage({
      format: 'oci',
      layers: [8, 12].map((m, i) => makeLayer({ randomBytes: m * MiB, seed: `soak-medium-${i}` })),
      labels: { soak: 'medium' },
    }),
  };
  const movingImages: Image[] = [smallImage('moving')];
  const movingDigests = new Set<string>([movingImages[0]!.digest]);
  await mapLimit(warmSet, 8, (p) => pushImage(upstream.url, p.repo, p.tag, p.image));
  await pushImage(upstream.url, medium.repo, medium.tag, medium.image);
  await pushImage(upstream.url, 'soak/moving', 'latest', movingImages[0]!);
  const fresh: Published[] = [];

  const rc = await startRegcache({
    config: {
      logLevel,
      cache: { tagTTL },
      upstreams: { 'soak.upstream': { url: fwd.url } },
      defaultUpstream: 'soak.upstream',
      server: { shutdownGrace: '5s' },
    },
  });
  onCleanup('regcache', () => rc.stop('SIGTERM', 10_000));
  const pid = rc.proc.pid!;
  const base = rc.url;
  log(`regcache pid ${pid} on ${base}; upstream via forwarder ${fwd.url}`);

  const started = Date.now();
  const deadline = started + durationS * 1000;
  const stats = {
    ops: {} as Record<Op, number>,
    failedValid: 0,
    failures: [] as string[],
    badMishandled: 0,
    badFailures: [] as string[],
    blobsVerified: 0,
    bytesVerified: 0,
    latencyMs: {} as Record<Op, number[]>,
    pushed: 0,
    pushErrors: 0,
    retags: 0,
  };
  const fail = (op: Op, msg: string): void => {
    stats.failedValid++;
    if (stats.failures.length < 50) stats.failures.push(`${((Date.now() - started) / 1000).toFixed(1)}s ${op}: ${msg}`);
  };

  // Background: publish new images (cold pulls) and re-point the moving tag.
  const pusher = (async () => {
    let nextRetag = Date.now() + 15_000;
    while (Date.now() < deadline - 5_000) {
      try {
        const p: Published = { repo: `soak/new-${String(stats.pushed).padStart(4, '0')}`, tag: 'v1', image: smallImage('new') };
        await pushImage(upstream.url, p.repo, p.tag, p.image);
        fresh.push(p);
        stats.pushed++;
        if (Date.now() >= nextRetag) {
          const img = smallImage('moving');
          await pushImage(upstream.url, 'soak/moving', undefined, img);
          movingDigests.add(img.digest);
          movingImages.push(img);
          await pushManifest(upstream.url, 'soak/moving', 'latest', img);
          stats.retags++;
          nextRetag = Date.now() + 15_000;
        }
      } catch (err) {
        stats.pushErrors++;
        log(`push failed: ${(err as Error).message}`);
      }
      await sleep(pushEveryS * 1000);
    }
  })();

  // Sampler.
  const samples: Sample[] = [];
  let opsDone = 0;
  const sampler = setInterval(() => {
    const s = procStatus(pid);
    const f = fdCount(pid);
    if (s && f !== undefined) samples.push({ t: (Date.now() - started) / 1000, rssMB: s.rss / MB, fds: f, ops: opsDone });
  }, 1000);
  const progress = setInterval(() => {
    const last = samples[samples.length - 1];
    log(`${((Date.now() - started) / 1000).toFixed(0)} s: ${opsDone} ops, ${stats.failedValid} failed, ${stats.badMishandled} bad mishandled, ` +
      `RSS ${last?.rssMB.toFixed(0) ?? '?'} MB, ${last?.fds ?? '?'} fds, ${stats.pushed} images pushed`);
  }, 30_000);

  const badRequests: Array<() => { method: string; path: string; headers?: Record<string, string> }> = [
    () => ({ method: 'GET', path: '/v2/soak/does-not-exist/manifests/latest' }),
    () => ({ method: 'GET', path: `/v2/soak/app-00/manifests/no-such-tag` }),
    () => ({ method: 'GET', path: `/v2/soak/app-00/blobs/sha256:${'0'.repeat(64)}` }),
    () => ({ method: 'GET', path: `/v2/soak/app-00/manifests/sha256:${'1'.repeat(64)}` }),
    () => ({ method: 'GET', path: '/v2/soak/app-00/blobs/sha256:not-a-digest' }),
    () => ({ method: 'GET', path: '/v2/Soak/UPPER/manifests/v1' }),
    () => ({ method: 'POST', path: '/v2/soak/app-00/blobs/uploads/' }),
    () => ({ method: 'PUT', path: '/v2/soak/app-00/manifests/v1' }),
    () => ({ method: 'DELETE', path: `/v2/soak/app-00/manifests/v1` }),
    () => ({ method: 'GET', path: '/v2/soak/app-00/manifests/v1?ns=unknown.example.com' }),
    () => {
      const l = pick(warmSet).image.layers[0]!;
      return { method: 'GET', path: `/v2/${warmSet[0]!.repo}/blobs/${l.digest}`, headers: { range: `bytes=${l.size + 100}-` } };
    },
    () => ({ method: 'GET', path: '/v2/../../etc/passwd' }),
  ];

  const client = async (id: number): Promise<void> => {
    const agent = new Agent({ keepAliveTimeout: 10_000, headersTimeout: 60_000, bodyTimeout: 60_000, connect: { timeout: 10_000 } });
    try {
      while (Date.now() < deadline) {
        let op = pickOp();
        if (op === 'cold' && fresh.length === 0) op = 'warm';
        const t0 = performance.now();
        try {
          switch (op) {
            case 'warm':
            case 'cold':
            case 'medium': {
              const p = op === 'warm' ? pick(warmSet) : op === 'cold' ? fresh[fresh.length - 1]! : medium;
              const r = await pullImage(agent, base, p.repo, p.tag, { verify: true, expectDigest: p.image.digest });
              stats.blobsVerified += r.requests - 1;
              stats.bytesVerified += r.bytes;
              if (op === 'cold' && Math.random() < 0.5) warmSet.push(p);
              break;
            }
            case 'moving': {
              const res = await request(`${base}/v2/soak/moving/manifests/latest`, { dispatcher: agent, headers: { accept: ACCEPT_MANIFESTS } });
              const body = Buffer.from(await res.body.arrayBuffer());
              if (res.statusCode !== 200) throw new Error(`moving tag: HTTP ${res.statusCode}`);
              const d = `sha256:${createHash('sha256').update(body).digest('hex')}`;
              if (!movingDigests.has(d)) throw new Error(`moving tag: manifest ${d} was never pushed under it`);
              if (res.headers['docker-content-digest'] !== d) throw new Error('moving tag: Docker-Content-Digest does not match the body');
              const m = JSON.parse(body.toString('utf8')) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
              for (const b of [m.config, ...m.layers]) {
                const n = await getBlob(agent, base, 'soak/moving', b, true); // (not `+= await`: that would lose updates)
                stats.bytesVerified += n;
                stats.blobsVerified++;
              }
              break;
            }
            case 'head': {
              const p = pick(warmSet);
              const byDigest = Math.random() < 0.5;
              const ref = byDigest ? p.image.digest : p.tag;
              const res = await request(`${base}/v2/${p.repo}/manifests/${ref}`, { dispatcher: agent, method: 'HEAD', headers: { accept: ACCEPT_MANIFESTS } });
              await res.body.dump();
              if (res.statusCode !== 200) throw new Error(`HEAD ${p.repo}:${ref}: HTTP ${res.statusCode}`);
              if (res.headers['docker-content-digest'] !== p.image.digest) throw new Error(`HEAD ${p.repo}:${ref}: digest ${String(res.headers['docker-content-digest'])}`);
              break;
            }
            case 'bad': {
              const b = pick(badRequests)();
              let status = 0;
              try {
                const res = await request(`${base}${b.path}`, { dispatcher: agent, method: b.method as 'GET', headers: b.headers });
                await res.body.dump();
                status = res.statusCode;
              } catch (err) {
                stats.badMishandled++;
                if (stats.badFailures.length < 50) stats.badFailures.push(`${b.method} ${b.path}: ${(err as Error).message}`);
                break;
              }
              if (status < 400 || status >= 500) {
                stats.badMishandled++;
                if (stats.badFailures.length < 50) stats.badFailures.push(`${b.method} ${b.path}: HTTP ${status}`);
              }
              break;
            }
          }
          (stats.latencyMs[op] ??= []).push(performance.now() - t0);
        } catch (err) {
          fail(op, (err as Error).message);
        }
        stats.ops[op] = (stats.ops[op] ?? 0) + 1;
        opsDone++;
        await sleep(Math.random() * thinkMs + (id % 2));
      }
    } finally {
      await agent.close();
    }
  };

  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  await pusher;
  clearInterval(sampler);
  clearInterval(progress);
  if (interruptedBy()) throw new Error(`interrupted by ${interruptedBy()}: no results written`);
  const alive = rc.running;
  const wallS = (Date.now() - started) / 1000;

  // Growth after warm-up: mean of the first 30 s after warm-up vs the last 30 s; and the least-squares slope.
  const after = samples.filter((s) => s.t >= warmupS);
  const win = Math.min(30, Math.max(1, Math.floor(after.length / 3)));
  const mean = (xs: Sample[], k: 'rssMB' | 'fds'): number => xs.reduce((a, s) => a + s[k], 0) / Math.max(1, xs.length);
  const first = after.slice(0, win);
  const last = after.slice(-win);
  const rssGrowth = mean(last, 'rssMB') - mean(first, 'rssMB');
  const fdGrowth = mean(last, 'fds') - mean(first, 'fds');
  const rssSlope = slopePerMin(after.map((s) => ({ t: s.t, v: s.rssMB })));
  const fdSlope = slopePerMin(after.map((s) => ({ t: s.t, v: s.fds })));
  const maxRss = Math.max(...samples.map((s) => s.rssMB));
  const maxFds = Math.max(...samples.map((s) => s.fds));

  const checks = [
    { check: 'no failed valid request', ok: stats.failedValid === 0, value: `${stats.failedValid} failed` },
    { check: 'every pulled blob hashed to its digest', ok: stats.failedValid === 0 && stats.blobsVerified > 0, value: `${stats.blobsVerified} blobs, ${(stats.bytesVerified / MB).toFixed(0)} MB verified` },
    { check: 'bad requests answered 4xx', ok: stats.badMishandled === 0, value: `${stats.badMishandled} mishandled of ${stats.ops.bad ?? 0}` },
    { check: 'regcache still running', ok: alive, value: alive ? 'yes' : 'no' },
    { check: `RSS growth after warm-up ≤ ${maxRssGrowthMB} MB`, ok: rssGrowth <= maxRssGrowthMB, value: `${rssGrowth.toFixed(1)} MB (slope ${rssSlope.toFixed(2)} MB/min, max ${maxRss.toFixed(0)} MB)` },
    { check: `open fds growth after warm-up ≤ ${maxFdGrowth}`, ok: fdGrowth <= maxFdGrowth, value: `${fdGrowth.toFixed(1)} (slope ${fdSlope.toFixed(2)}/min, max ${maxFds})` },
  ];
  const lat = Object.fromEntries(
    Object.entries(stats.latencyMs).map(([op, xs]) => [op, { n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99), max: Math.max(...xs) }]),
  );

  const lines = [
    `regcache soak: ${wallS.toFixed(0)} s, ${clients} clients, ${opsDone} operations (${(opsDone / wallS).toFixed(0)}/s), ` +
      `${stats.pushed} images published and ${stats.retags} re-tags during the run, ${fwd.requests.length} upstream requests`,
    '',
    '| Check | Result | |',
    '|---|---|---|',
    ...checks.map((c) => `| ${c.check} | ${c.value} | ${c.ok ? 'PASS' : 'FAIL'} |`),
    '',
    '| Operation | count | p50 ms | p99 ms | max ms |',
    '|---|---|---|---|---|',
    ...Object.entries(lat).map(([op, l]) => `| ${op} | ${l.n} | ${l.p50.toFixed(1)} | ${l.p99.toFixed(1)} | ${l.max.toFixed(0)} |`),
    '',
    `RSS after warm-up (${warmupS} s): ${mean(first, 'rssMB').toFixed(1)} MB -> end ${mean(last, 'rssMB').toFixed(1)} MB; ` +
      `fds ${mean(first, 'fds').toFixed(1)} -> ${mean(last, 'fds').toFixed(1)}`,
  ];
  if (stats.failures.length) lines.push('', 'First failures:', ...stats.failures.slice(0, 20).map((f) => `- ${f}`));
  if (stats.badFailures.length) lines.push('', 'Mishandled bad requests:', ...stats.badFailures.slice(0, 20).map((f) => `- ${f}`));
  const out = lines.join('\n');

  const dir = join(REPO_ROOT, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `soak-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        options: { durationS, clients, warmupS, thinkMs, pushEveryS, tagTTL, logLevel },
        checks,
        ops: stats.ops,
        latency: lat,
        pushed: stats.pushed,
        retags: stats.retags,
        pushErrors: stats.pushErrors,
        upstreamRequests: fwd.requests.length,
        failures: stats.failures,
        badFailures: stats.badFailures,
        growth: { rssMB: rssGrowth, fds: fdGrowth, rssSlopeMBPerMin: rssSlope, fdSlopePerMin: fdSlope, maxRssMB: maxRss, maxFds },
        samples,
      },
      null,
      2,
    ),
  );
  process.stdout.write(`\n${out}\n\nresults: ${file}\n`);
  if (!alive) process.stderr.write(`regcache stderr:\n${rc.stderr().slice(-4000)}\n`);
  return checks.every((c) => c.ok) ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`soak failed: ${(err as Error).stack ?? err}`);
} finally {
  await runCleanup();
}
process.exit(code);
