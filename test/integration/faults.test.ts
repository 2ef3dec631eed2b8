/**
 * Upstream and host faults against a real regcache process: an upstream that is not there at start and comes
 * back, dies or sends wrong bytes in the middle of a blob, stalls or trickles, answers 429/5xx (health detector:
 * stale tags, fail fast, retry after failTimeout); regcache SIGKILLed during ten concurrent fills; a store on a
 * tmpfs that is (nearly) full.
 *
 * Upstream: Debian's docker-registry, behind the fault-injecting forwarder where a fault is needed, and the
 * scripted hostile server (test/helpers/hostile-upstream.ts) for 429/5xx and chunked answers.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, CLI_PATH, httpProbe, makeImage, makeLayer, pushImage, runCommand, sha256, skopeoPullDigests, startForwarder,
  startRegcache, startRegistry, stopAllChildren, tmpDir, waitUntil,
  type Forwarder, type Image, type ProbeResponse, type Regcache, type Registry,
} from '../helpers/index.js';
import { sendStatus, serveImages, startHostileUpstream, type HostileUpstream } from '../helpers/hostile-upstream.js';

const MiB = 1024 * 1024;

let upstream: Registry;
let fwd: Forwarder;
let hostile: HostileUpstream;
/** Serves the forwarder (`fwd.example`) and the registry directly (`direct.example`); idle timeout 1 s. */
let rc: Regcache;

beforeAll(async () => {
  upstream = await startRegistry();
  fwd = await startForwarder(upstream);
  hostile = await startHostileUpstream();
  rc = await startRegcache({
    config: {
      upstreams: {
        'fwd.example': { url: fwd.url },
        'direct.example': { url: upstream.url },
      },
      upstreamTimeouts: { idle: '1s', headers: '2s', connect: '2s' },
      // These tests break single transfers on purpose; the detector has its own test below.
      upstreamHealth: { maxFails: 1000, failTimeout: '1s' },
    },
  });
});

afterAll(async () => {
  await rc?.stop();
  await fwd?.close();
  await hostile?.close();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

// ---------------------------------------------------------------------------------------------------------------
// helpers

interface Outcome {
  status: number;
  headers: IncomingMessage['headers'];
  /** Body bytes received (the body itself only with keep). */
  bytes: number;
  body?: Buffer;
  digest: string;
  /** Ended cleanly with as many bytes as Content-Length said (or a clean chunked end). */
  complete: boolean;
  error?: string;
  ms: number;
}

/** One GET on its own connection that never throws: reports whether the body ended cleanly and completely. */
function fetchOutcome(url: string, opts: { keep?: boolean; timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent: false, headers: { connection: 'close', ...opts.headers }, timeout: opts.timeoutMs ?? 30_000 }, (res) => {
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let bytes = 0;
      let ended = false;
      let done = false;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
        if (opts.keep) chunks.push(c);
      });
      res.once('end', () => { ended = true; });
      const finish = (error?: string): void => {
        if (done) return;
        done = true;
        const len = res.headers['content-length'];
        const complete = ended && error === undefined && (len === undefined || Number(len) === bytes);
        const o: Outcome = { status: res.statusCode ?? 0, headers: res.headers, bytes, digest: `sha256:${hash.digest('hex')}`, complete, ms: Date.now() - started };
        if (opts.keep) o.body = Buffer.concat(chunks);
        if (error !== undefined) o.error = error;
        resolve(o);
      };
      res.once('error', (e) => finish(e.message));
      res.once('close', () => finish(ended ? undefined : 'closed before the end'));
    });
    req.once('timeout', () => req.destroy(new Error('client timeout')));
    req.once('error', (e) => resolve({ status: 0, headers: {}, bytes: 0, digest: '', complete: false, error: e.message, ms: Date.now() - started }));
    req.end();
  });
}

const errorCode = (r: { body?: Buffer }): string | undefined => {
  try {
    return (JSON.parse(r.body!.toString('utf8')) as { errors: Array<{ code: string }> }).errors[0]?.code;
  } catch {
    return undefined;
  }
};

/** Sum of a metric's samples whose labels include `labels` (NaN if none). */
async function metric(r: Regcache, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await httpProbe(`${r.url}/metrics`)).body.toString('utf8');
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = Object.fromEntries((m[2] ?? '').split(',').filter(Boolean).map((kv) => {
      const i = kv.indexOf('=');
      return [kv.slice(0, i), kv.slice(i + 1).replace(/^"|"$/g, '')];
    }));
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) {
      sum += Number(m[3]);
      found = true;
    }
  }
  return found ? sum : NaN;
}

/** waitUntil with a failure message computed when it fails (so it shows the state at the deadline). */
async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs: number, message: () => string, intervalMs = 25): Promise<void> {
  try {
    await waitUntil(pred, { timeoutMs, intervalMs });
  } catch {
    throw new Error(message());
  }
}

const blobFile = (dataDir: string, digest: string): string => {
  const hex = digest.slice(digest.indexOf(':') + 1);
  return join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
};
const tmpEntries = (dataDir: string): string[] => {
  try {
    return readdirSync(join(dataDir, 'tmp'));
  } catch {
    return [];
  }
};
/** Every file under blobs/ as [name-derived digest, content digest]. */
function storeFiles(dataDir: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const root = join(dataDir, 'blobs');
  if (!existsSync(root)) return out;
  for (const alg of readdirSync(root)) {
    for (const prefix of readdirSync(join(root, alg))) {
      for (const name of readdirSync(join(root, alg, prefix))) {
        const h = createHash(alg).update(readFileSync(join(root, alg, prefix, name))).digest('hex');
        out.push([`${alg}:${name}`, `${alg}:${h}`]);
      }
    }
  }
  return out;
}
/** Nothing committed for `digest` and, after a moment, no temp file left. */
async function expectNothingStored(dataDir: string, digest: string): Promise<void> {
  expect(existsSync(blobFile(dataDir, digest)), `${digest} must not be in the store`).toBe(false);
  await waitFor(() => tmpEntries(dataDir).length === 0, 5_000, () => `temp files left in ${dataDir}/tmp: ${tmpEntries(dataDir).join(', ')}`);
}
function registryBlobData(reg: Registry, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(reg.storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}
async function fsck(r: Regcache): Promise<{ code: number | null; out: string }> {
  const res = await runCommand(process.execPath, [CLI_PATH, 'fsck', '--config', r.configPath], { timeoutMs: 60_000 });
  return { code: res.code, out: res.stdout + res.stderr };
}

// ---------------------------------------------------------------------------------------------------------------

describe('upstream unreachable at start', () => {
  it('starts with nothing listening upstream, serves what it cached, and takes new content again once the upstream is back', async () => {
    const reg = await startRegistry();
    const cached = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 512 * 1024, seed: 'unreach-a' })] });
    const later = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 512 * 1024, seed: 'unreach-b' })] });
    await pushImage(reg.url, 'team/cached', 'v1', cached);
    await pushImage(reg.url, 'team/later', 'v1', later);
    const r = await startRegcache({
      config: {
        cache: { tagTTL: '300ms' },
        upstreams: { 'reg.example': { url: reg.url } },
        upstreamHealth: { maxFails: 2, failTimeout: '1s' },
        upstreamTimeouts: { connect: '1s' },
      },
    });
    try {
      // Seed the cache with a real client while the registry runs.
      const seed = await skopeoPullDigests(`docker://${r.host}/reg.example/team/cached:v1`);
      expect(seed.code, seed.stderr).toBe(0);

      await reg.stop();
      // Restart with nothing listening on the upstream's port: it must come up anyway.
      await r.restart();
      expect(r.running).toBe(true);

      // Everything cached is served (the tag is past its TTL: revalidation fails, served stale).
      const pulled = await skopeoPullDigests(`docker://${r.host}/reg.example/team/cached:v1`);
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(pulled.manifestDigest).toBe(cached.digest);
      expect(pulled.blobs).toEqual([cached.config.digest, ...cached.layers.map((l) => l.digest)].sort());
      await waitUntil(() => r.logs({ currentRunOnly: true }).some((l) => l.msg === 'request' && l.cache === 'stale'), {
        timeoutMs: 5_000, message: 'no request served stale after the restart',
      });

      // Uncached content fails, with an OCI error and without hanging.
      const down = await httpProbe(`${r.url}/v2/reg.example/team/later/manifests/v1`, { timeoutMs: 10_000 });
      expect([502, 503, 504]).toContain(down.status);
      expect(['UPSTREAM_ERROR', 'UNAVAILABLE', 'UPSTREAM_TIMEOUT']).toContain(errorCode(down));

      // The registry comes back on the same port: new content flows without restarting regcache.
      await reg.restart();
      const backAt = Date.now();
      let last: ProbeResponse | undefined;
      await waitUntil(async () => {
        last = await httpProbe(`${r.url}/v2/reg.example/team/later/manifests/v1`);
        return last.status === 200;
      }, { timeoutMs: 8_000, intervalMs: 100, message: 'upstream never used again after it came back' });
      // failTimeout is 1 s: well within a few seconds.
      expect(Date.now() - backAt).toBeLessThan(5_000);
      expect(last!.headers['docker-content-digest']).toBe(later.digest);
      const fresh = await skopeoPullDigests(`docker://${r.host}/reg.example/team/later:v1`);
      expect(fresh.code, fresh.stderr).toBe(0);
      expect(fresh.manifestDigest).toBe(later.digest);
    } finally {
      await r.stop();
      await reg.stop();
    }
  });
});

describe('upstream dies in the middle of a blob', () => {
  it('every concurrent client of the fill is aborted, nothing is committed, and the next request refetches', async () => {
    const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 8 * MiB, seed: 'die-mid-blob' })] });
    await pushImage(upstream.url, 'team/die', 'v1', img);
    const l = img.layers[0]!;
    const url = `${rc.url}/v2/fwd.example/team/die/blobs/${l.digest}`;
    fwd.reset();
    fwd.setFault({ dieAfterBytes: 3 * MiB });
    try {
      const outcomes = await Promise.all(Array.from({ length: 6 }, () => fetchOutcome(url)));
      for (const o of outcomes) {
        expect(o.complete, `status ${o.status}, ${o.bytes} bytes, ${o.error}`).toBe(false);
        expect(o.bytes).toBeLessThan(l.size);
      }
      expect(fwd.kills).toBeGreaterThanOrEqual(1);
    } finally {
      fwd.setFault({});
    }
    await expectNothingStored(rc.dataDir, l.digest);
    await rc.waitForLog((x) => x.msg === 'blob fill failed; nothing stored' && x.digest === l.digest, 5_000);
    const gets = fwd.count('GET', `/v2/team/die/blobs/${l.digest}`);
    const ok = await fetchOutcome(url, { timeoutMs: 30_000 });
    expect(ok.status).toBe(200);
    expect(ok.complete).toBe(true);
    expect(ok.digest).toBe(l.digest);
    expect(fwd.count('GET', `/v2/team/die/blobs/${l.digest}`)).toBe(gets + 1);
    // The commit (fsync, rename) follows the verified last byte.
    await waitUntil(() => existsSync(blobFile(rc.dataDir, l.digest)), { timeoutMs: 5_000 });
  });
});

describe('upstream sends wrong bytes', () => {
  it('a flipped byte on the wire: digest mismatch, clients aborted before the last byte, nothing stored, counted', async () => {
    const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 6 * MiB, seed: 'flip-on-wire' })] });
    await pushImage(upstream.url, 'team/flip', 'v1', img);
    const l = img.layers[0]!;
    const url = `${rc.url}/v2/fwd.example/team/flip/blobs/${l.digest}`;
    const before = await metric(rc, 'regcache_digest_mismatches_total', { upstream: 'fwd.example' });
    fwd.setFault({ flipByteAfter: 4 * MiB });
    let outcomes: Outcome[];
    try {
      outcomes = await Promise.all(Array.from({ length: 5 }, () => fetchOutcome(url)));
    } finally {
      fwd.setFault({});
    }
    for (const o of outcomes) {
      expect(o.complete, `status ${o.status}, ${o.bytes} bytes, ${o.error}`).toBe(false);
      // Content-Length was known: the last byte is held back until verified, so no client has all of it.
      expect(o.bytes).toBeLessThan(l.size);
    }
    expect(fwd.flips).toBeGreaterThanOrEqual(1);
    expect((await metric(rc, 'regcache_digest_mismatches_total', { upstream: 'fwd.example' })) - (Number.isNaN(before) ? 0 : before)).toBeGreaterThanOrEqual(1);
    await expectNothingStored(rc.dataDir, l.digest);
    const line = await rc.waitForLog((x) => x.msg === 'blob fill failed; nothing stored' && x.digest === l.digest, 5_000);
    expect(line.reason).toBe('digest');
    const ok = await fetchOutcome(url);
    expect(ok.complete).toBe(true);
    expect(ok.digest).toBe(l.digest);
  });

  it('a corrupted file in the upstream registry\'s storage: refused every time until it is repaired', async () => {
    const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 2 * MiB, seed: 'bit-rot' })] });
    await pushImage(upstream.url, 'team/rot', 'v1', img);
    const l = img.layers[0]!;
    const dataPath = registryBlobData(upstream, l.digest);
    const original = readFileSync(dataPath);
    expect(sha256(original)).toBe(l.digest);
    const rotten = Buffer.from(original);
    rotten[1000]! ^= 0x01;
    writeFileSync(dataPath, rotten);
    const url = `${rc.url}/v2/direct.example/team/rot/blobs/${l.digest}`;
    try {
      const before = await metric(rc, 'regcache_digest_mismatches_total', { upstream: 'direct.example' });
      for (let i = 0; i < 2; i++) {
        const o = await fetchOutcome(url);
        expect(o.complete, `attempt ${i}: status ${o.status}, ${o.bytes} bytes`).toBe(false);
        expect(o.digest).not.toBe(sha256(rotten));
      }
      expect((await metric(rc, 'regcache_digest_mismatches_total', { upstream: 'direct.example' })) - (Number.isNaN(before) ? 0 : before)).toBe(2);
      await expectNothingStored(rc.dataDir, l.digest);
    } finally {
      writeFileSync(dataPath, original);
    }
    const ok = await fetchOutcome(url);
    expect(ok.complete).toBe(true);
    expect(ok.digest).toBe(l.digest);
  });
});

describe('upstream slow', () => {
  it('stall after headers: the idle timeout answers every client 504 (nothing had been sent), with a logged reason, and other pulls go on meanwhile', async () => {
    const stalled = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 4 * MiB, seed: 'stall' })] });
    const other = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 4 * MiB, seed: 'not-stalled' })] });
    await pushImage(upstream.url, 'team/stall', 'v1', stalled);
    await pushImage(upstream.url, 'team/other', 'v1', other);
    const l = stalled.layers[0]!;
    fwd.reset();
    fwd.setFault({ stallAfterHeaders: true });
    let waiting: Promise<Outcome[]>;
    let settled = false;
    try {
      waiting = Promise.all(Array.from({ length: 3 }, () => fetchOutcome(`${rc.url}/v2/fwd.example/team/stall/blobs/${l.digest}`)));
      void waiting.then(() => { settled = true; });
      await waitUntil(() => fwd.stalls >= 1, { timeoutMs: 5_000, message: 'the forwarder never stalled a response' });
      // Other content, from the same regcache, while the stalled fill waits for its idle timeout.
      const t0 = Date.now();
      const m = await httpProbe(`${rc.url}/v2/direct.example/team/other/manifests/v1`);
      expect(m.status).toBe(200);
      const b = await fetchOutcome(`${rc.url}/v2/direct.example/team/other/blobs/${other.layers[0]!.digest}`);
      expect(b.complete).toBe(true);
      expect(b.digest).toBe(other.layers[0]!.digest);
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(settled, 'the other pull should have finished while the stalled clients were still waiting').toBe(false);
    } finally {
      fwd.setFault({});
    }
    const outcomes = await waiting;
    for (const o of outcomes) {
      // Nothing of the body had come: each client is answered 504 UPSTREAM_TIMEOUT (an OCI
      // error, not a blob), by the 1 s idle timeout, not by some client or default 30 s timeout.
      expect(o.status).toBe(504);
      expect(o.headers['docker-content-digest']).toBeUndefined();
      expect(o.ms).toBeLessThan(8_000);
    }
    const line = await rc.waitForLog((x) => x.msg === 'blob fill failed; nothing stored' && x.digest === l.digest, 5_000);
    expect(line.reason).toBe('upstream');
    expect(String(line.err)).toMatch(/timeout/i);
    await expectNothingStored(rc.dataDir, l.digest);
    fwd.dropConnections();
  });

  it('a steady trickle slower than the network but faster than the idle timeout completes (idle is not a total timeout)', async () => {
    const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 1536 * 1024, seed: 'trickle-ok' })] });
    await pushImage(upstream.url, 'team/trickle', 'v1', img);
    const l = img.layers[0]!;
    fwd.setFault({ trickleBytesPerSec: 512 * 1024 });
    try {
      const o = await fetchOutcome(`${rc.url}/v2/fwd.example/team/trickle/blobs/${l.digest}`, { timeoutMs: 20_000 });
      expect(o.complete, `${o.error}`).toBe(true);
      expect(o.digest).toBe(l.digest);
      expect(o.ms).toBeGreaterThan(1_500); // it really was slow: longer than the idle timeout in total
    } finally {
      fwd.setFault({});
    }
    expect(rc.logs().some((x) => x.msg === 'blob fill failed; nothing stored' && x.digest === l.digest)).toBe(false);
  });

  it('a trickle too slow to even finish the headers: 504 UPSTREAM_TIMEOUT after upstreamTimeouts.headers, not a hang', async () => {
    const img = makeImage({ format: 'oci', layers: [makeLayer({ 'x.txt': 'trickle-headers' })] });
    await pushImage(upstream.url, 'team/crawl', 'v1', img);
    fwd.setFault({ trickleBytesPerSec: 5 });
    try {
      const t0 = Date.now();
      const r = await httpProbe(`${rc.url}/v2/fwd.example/team/crawl/manifests/v1`, { timeoutMs: 15_000 });
      expect(r.status).toBe(504);
      expect(errorCode(r)).toBe('UPSTREAM_TIMEOUT');
      expect(Date.now() - t0).toBeLessThan(6_000);
    } finally {
      fwd.setFault({});
      fwd.dropConnections();
    }
  });
});

describe('upstream answers 429 / 5xx', () => {
  it('serves cached tags stale, passes the error on for uncached content, fails fast while marked down, retries after failTimeout', async () => {
    const v1 = makeImage({ format: 'oci', layers: [makeLayer({ 'v.txt': 'v1' })] });
    const v2 = makeImage({ format: 'oci', layers: [makeLayer({ 'v.txt': 'v2' })] });
    const healthy = serveImages([{ repo: 'team/app', tag: 'v1', image: v1 }, { repo: 'team/app', tag: 'v2', image: v2 }]);
    hostile.reset();
    hostile.handle(healthy);
    const r = await startRegcache({
      config: {
        cache: { tagTTL: '200ms' },
        upstreams: { 'rl.example': { url: hostile.url } },
        upstreamHealth: { maxFails: 3, failTimeout: '2s' },
      },
    });
    try {
      const base = `${r.url}/v2/rl.example/team/app`;
      const seeded = await httpProbe(`${base}/manifests/v1`);
      expect(seeded.status).toBe(200);
      const seededAt = Date.now();
      expect((await httpProbe(`${base}/blobs/${v1.layers[0]!.digest}`)).status).toBe(200);

      hostile.handle((_req, res) => sendStatus(res, 429, { 'retry-after': '7' }, 'TOOMANYREQUESTS'));
      await waitUntil(() => Date.now() - seededAt > 300, { timeoutMs: 2_000 }); // let the tag's TTL run out

      // 1st failure: a cached tag past its TTL is served stale.
      const stale = await httpProbe(`${base}/manifests/v1`);
      expect(stale.status).toBe(200);
      expect(stale.headers['docker-content-digest']).toBe(v1.digest);
      expect(sha256(stale.body)).toBe(v1.digest);
      await r.waitForLog((l) => l.msg === 'request' && l.cache === 'stale', 5_000);

      // 2nd failure: uncached content gets the upstream's status as an OCI error.
      const limited = await httpProbe(`${base}/manifests/v2`);
      expect(limited.status).toBe(429);
      expect(errorCode(limited)).toBe('TOOMANYREQUESTS');
      expect(limited.headers['retry-after']).toBe('7');

      // 3rd failure (a 503 on a blob): now the upstream is marked down.
      hostile.handle((_req, res) => sendStatus(res, 503, { 'retry-after': '2' }, 'UNAVAILABLE'));
      const unavailable = await httpProbe(`${base}/blobs/${v2.layers[0]!.digest}`);
      expect(unavailable.status).toBe(503);
      expect(errorCode(unavailable)).toBeDefined();
      const downSince = Date.now();
      expect(await metric(r, 'regcache_upstream_up', { upstream: 'rl.example' })).toBe(0);

      // While down: fail fast without reaching the upstream; cached tags still served.
      hostile.handle(healthy);
      const seen = hostile.requests.length;
      const t0 = performance.now();
      const fast = await httpProbe(`${base}/manifests/v2`);
      const fastMs = performance.now() - t0;
      expect(fast.status).toBe(503);
      expect(errorCode(fast)).toBe('UNAVAILABLE');
      expect(fastMs).toBeLessThan(500);
      const staleWhileDown = await httpProbe(`${base}/manifests/v1`);
      expect(staleWhileDown.status).toBe(200);
      expect(hostile.requests.length).toBe(seen);

      // After failTimeout (2 s) one probe goes through; the upstream is healthy again, so v2 flows.
      await waitUntil(async () => (await httpProbe(`${base}/manifests/v2`)).status === 200, {
        timeoutMs: 8_000, intervalMs: 100, message: 'upstream not retried after failTimeout',
      });
      const firstRetry = hostile.requests[seen];
      expect(firstRetry).toBeDefined();
      expect(firstRetry!.at - downSince).toBeGreaterThanOrEqual(2_000 - 500);
      expect(firstRetry!.at - downSince).toBeLessThan(2_000 + 3_000);
      expect(await metric(r, 'regcache_upstream_up', { upstream: 'rl.example' })).toBe(1);
    } finally {
      await r.stop();
    }
  });
});

describe('regcache SIGKILLed during 10 concurrent fills', () => {
  it('after restart only verified content is in the store, fsck is clean, and every image pulls', async () => {
    const images: Image[] = Array.from({ length: 10 }, (_, i) => makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 20 * MiB, seed: `kill-${i}` })] }));
    await Promise.all(images.map((img, i) => pushImage(upstream.url, `kill/img${i}`, 'v1', img)));
    const slow = await startForwarder(upstream);
    const r = await startRegcache({ config: { upstreams: { 'k.example': { url: slow.url } } } });
    try {
      // Manifests and configs arrive at full speed (and are committed), then the layers crawl.
      for (const [i, img] of images.entries()) {
        expect((await httpProbe(`${r.url}/v2/k.example/kill/img${i}/manifests/v1`)).status).toBe(200);
        expect((await httpProbe(`${r.url}/v2/k.example/kill/img${i}/blobs/${img.config.digest}`)).status).toBe(200);
      }
      slow.setFault({ trickleBytesPerSec: 2 * MiB });
      const clients = images.map((img, i) => fetchOutcome(`${r.url}/v2/k.example/kill/img${i}/blobs/${img.layers[0]!.digest}`, { timeoutMs: 60_000 }));
      const partSizes = (): number[] => tmpEntries(r.dataDir).map((f) => {
        try {
          return statSync(join(r.dataDir, 'tmp', f)).size;
        } catch {
          return 0;
        }
      });
      await waitFor(() => partSizes().filter((s) => s >= MiB).length === 10, 20_000, () => `fills did not all get going: ${partSizes().join(', ')}`);
      await r.kill9();
      for (const o of await Promise.all(clients)) expect(o.complete).toBe(false);

      // The crash left the fills behind (fsck without --repair reports them and exits 3).
      const crashed = await fsck(r);
      expect(crashed.code, crashed.out).toBe(3);
      expect(crashed.out).toMatch(/temp files left by an earlier run\s+found: 10/);

      slow.setFault({});
      await r.restart();
      expect(tmpEntries(r.dataDir)).toEqual([]);
      for (const [named, actual] of storeFiles(r.dataDir)) expect(actual, `store file ${named}`).toBe(named);
      const clean = await fsck(r);
      expect(clean.code, clean.out).toBe(0);
      expect(clean.out).not.toMatch(/: [1-9]\d*\s*$/m);

      // Every image pulls, blobs verified.
      const pulls = await Promise.all(images.map(async (img, i) => {
        const m = await httpProbe(`${r.url}/v2/k.example/kill/img${i}/manifests/v1`);
        const layer = await fetchOutcome(`${r.url}/v2/k.example/kill/img${i}/blobs/${img.layers[0]!.digest}`, { timeoutMs: 60_000 });
        return { m, layer, img };
      }));
      for (const { m, layer, img } of pulls) {
        expect(m.status).toBe(200);
        expect(m.headers['docker-content-digest']).toBe(img.digest);
        expect(layer.complete).toBe(true);
        expect(layer.digest).toBe(img.layers[0]!.digest);
      }
      const one = await skopeoPullDigests(`docker://${r.host}/k.example/kill/img3:v1`);
      expect(one.code, one.stderr).toBe(0);
      expect(one.manifestDigest).toBe(images[3]!.digest);
      const files = storeFiles(r.dataDir);
      expect(files).toHaveLength(20);
      for (const [named, actual] of files) expect(actual).toBe(named);
      const after = await fsck(r);
      expect(after.code, after.out).toBe(0);
    } finally {
      await r.stop();
      await slow.close();
    }
  });
});

describe('disk full (tmpfs store)', () => {
  const mountDir = tmpDir('regcache-tmpfs-');
  let mounted = false;
  const mount = async (args: string[]): Promise<void> => {
    const res = await runCommand('mount', args);
    if (res.code !== 0) throw new Error(`mount ${args.join(' ')} failed (code ${res.code}): ${res.stderr.trim()} — these tests need root and tmpfs`);
  };
  let rd: Regcache | undefined;
  let diskImage: Image;

  afterAll(async () => {
    await rd?.stop();
    if (mounted) {
      const res = await runCommand('umount', [mountDir]);
      if (res.code !== 0) await runCommand('umount', ['-l', mountDir]);
    }
  });

  it('a 30 MB store: a 50 MB blob streams through verified and uncached, nothing partial is left; with room again it is cached', async () => {
    await mount(['-t', 'tmpfs', '-o', 'size=30m', 'tmpfs', mountDir]);
    mounted = true;
    const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 50 * MiB, seed: 'disk-full' })] });
    diskImage = img;
    await pushImage(upstream.url, 'team/huge', 'v1', img);
    const l = img.layers[0]!;
    rd = await startRegcache({ config: { dataDir: mountDir, upstreams: { 'd.example': { url: upstream.url }, 'df.example': { url: fwd.url } } } });
    const url = `${rd.url}/v2/d.example/team/huge/blobs/${l.digest}`;

    const first = await fetchOutcome(url, { timeoutMs: 30_000, keep: false });
    if (first.status === 200) {
      expect(first.complete, `${first.error}`).toBe(true);
      expect(first.digest).toBe(l.digest);
    } else {
      // Or a clear error, never a hang or a short 200.
      expect(first.status).toBeGreaterThanOrEqual(500);
    }
    await expectNothingStored(rd.dataDir, l.digest);
    expect(await metric(rd, 'regcache_cache_results_total', { kind: 'blob', result: 'passthrough' })).toBeGreaterThanOrEqual(1);

    // Streamed through, the bytes are still verified: a flipped byte aborts the client and is counted.
    const small = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 2 * MiB, seed: 'disk-full-flip' })] });
    await pushImage(upstream.url, 'team/hugeflip', 'v1', small);
    fwd.setFault({ flipByteAfter: 1000 });
    try {
      const flipped = await fetchOutcome(`${rd.url}/v2/df.example/team/hugeflip/blobs/${small.layers[0]!.digest}`);
      expect(flipped.complete).toBe(false);
      expect(flipped.bytes).toBeLessThan(small.layers[0]!.size);
    } finally {
      fwd.setFault({});
    }
    expect(await metric(rd, 'regcache_digest_mismatches_total', { upstream: 'df.example' })).toBe(1);

    // Space comes back (without restarting regcache): the blob is cached.
    await mount(['-o', 'remount,size=1g', mountDir]);
    const second = await fetchOutcome(url, { timeoutMs: 30_000 });
    expect(second.complete).toBe(true);
    expect(second.digest).toBe(l.digest);
    await waitUntil(() => existsSync(blobFile(rd!.dataDir, l.digest)), { timeoutMs: 5_000, message: 'blob not cached after space returned' });
    expect(sha256(readFileSync(blobFile(rd.dataDir, l.digest)))).toBe(l.digest);
    const hits = await metric(rd, 'regcache_cache_results_total', { kind: 'blob', result: 'hit' });
    const third = await fetchOutcome(url, { timeoutMs: 30_000 });
    expect(third.digest).toBe(l.digest);
    expect(await metric(rd, 'regcache_cache_results_total', { kind: 'blob', result: 'hit' })).toBe((Number.isNaN(hits) ? 0 : hits) + 1);
    expect(tmpEntries(rd.dataDir)).toEqual([]);
    // The manifest too (the next test serves it from the index with the disk full).
    expect((await httpProbe(`${rd.url}/v2/d.example/team/huge/manifests/v1`)).status).toBe(200);
  });

  /** Shrinks the tmpfs to what is used plus a little, then fills every last block with a file outside blobs/ and tmp/. */
  const fillUp = async (): Promise<string> => {
    const st = statfsSync(mountDir);
    const usedMiB = Math.ceil(((st.blocks - st.bfree) * st.bsize) / MiB);
    await mount(['-o', `remount,size=${usedMiB + 8}m`, mountDir]);
    const filler = join(mountDir, 'filler');
    const fd = openSync(filler, 'w');
    try {
      for (;;) writeSync(fd, Buffer.alloc(MiB, 1));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      closeSync(fd);
    }
    try {
      for (;;) appendFileSync(filler, Buffer.alloc(4096, 1));
    } catch {
      /* full to the last page */
    }
    expect(statfsSync(mountDir).bavail).toBe(0);
    return filler;
  };

  /** Restarts regcache if an earlier failure left it dead or dying (so one bug does not fail the next test). */
  const ensureUp = async (): Promise<void> => {
    const up = await httpProbe(`${rd!.url}/v2/`, { timeoutMs: 1_000 }).then(() => rd!.running, () => false);
    if (!up) await rd!.restart();
  };

  it('a store with no space left at all: cached content is still served and regcache stays up', async () => {
    expect(mounted).toBe(true);
    const l = diskImage.layers[0]!;
    // Cached by the previous test.
    expect(existsSync(blobFile(rd!.dataDir, l.digest))).toBe(true);
    const filler = await fillUp();
    try {
      let failure: unknown;
      try {
        for (let i = 0; i < 3; i++) {
          const hit = await fetchOutcome(`${rd!.url}/v2/d.example/team/huge/blobs/${l.digest}`);
          expect(hit.complete, `${hit.error}`).toBe(true);
          expect(hit.digest).toBe(l.digest);
          expect((await httpProbe(`${rd!.url}/v2/d.example/team/huge/manifests/${diskImage.digest}`)).status).toBe(200);
        }
        // Pulls are recorded in the index in batches (about once a second): give two batches the chance to run
        // against the full disk, then regcache must still be there and answering.
        await new Promise((r) => setTimeout(r, 2_500));
      } catch (err) {
        failure = err;
        await waitUntil(() => !rd!.running, { timeoutMs: 2_000 }).catch(() => undefined);
      }
      expect(rd!.running, `regcache exited with the store full:\n${rd!.stderr({ currentRunOnly: true }).slice(0, 800)}`).toBe(true);
      if (failure !== undefined) throw failure;
      const after = await fetchOutcome(`${rd!.url}/v2/d.example/team/huge/blobs/${l.digest}`);
      expect(after.complete).toBe(true);
    } finally {
      rmSync(filler, { force: true });
      await ensureUp();
    }
  });

  it('a store with no space left at all: a new image still pulls (manifest and blobs streamed through), nothing partial is left', async () => {
    expect(mounted).toBe(true);
    const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 512 * 1024, seed: 'disk-zero' })] });
    await pushImage(upstream.url, 'team/nospace', 'v1', img);
    const filler = await fillUp();
    try {
      const base = `${rd!.url}/v2/d.example/team/nospace`;
      const m = await httpProbe(`${base}/manifests/v1`);
      expect(m.status, m.body.toString('utf8')).toBe(200);
      expect(sha256(m.body)).toBe(img.digest);
      for (const b of [img.config, ...img.layers]) {
        const o = await fetchOutcome(`${base}/blobs/${b.digest}`);
        expect(o.status).toBe(200);
        expect(o.complete, `${o.error}`).toBe(true);
        expect(o.digest).toBe(b.digest);
        expect(existsSync(blobFile(rd!.dataDir, b.digest))).toBe(false);
      }
      expect(tmpEntries(rd!.dataDir)).toEqual([]);
      expect(rd!.logs().filter((l) => l.msg === 'internal error')).toEqual([]);
    } finally {
      rmSync(filler, { force: true });
      await ensureUp();
    }
  });

  // A blob of unknown size cannot be checked against the free space before it arrives. The
  // first attempt may fail with an aborted response (the issue allows "fails with a clear
  // error"); regcache then remembers the digest and the retry — what containerd does on its
  // own — streams through without caching. Nothing partial is ever left.
  it('a chunked blob bigger than the free space: aborted cleanly at worst, the retry streams through, nothing partial is left', async () => {
    expect(mounted).toBe(true);
    // ~300 MiB free: more than the 256 MiB reserve, so a fill of unknown size is admitted, but less than the blob.
    const st = statfsSync(mountDir);
    const usedMiB = Math.ceil(((st.blocks - st.bfree) * st.bsize) / MiB);
    await mount(['-o', `remount,size=${usedMiB + 300}m`, mountDir]);
    const CHUNK = 64 * 1024;
    const TOTAL = 320 * MiB;
    const piece = Buffer.alloc(CHUNK, 0x5a);
    const h = createHash('sha256');
    for (let i = 0; i < TOTAL / CHUNK; i++) h.update(piece);
    const digest = `sha256:${h.digest('hex')}`;
    hostile.reset();
    hostile.handle(async (req, res) => {
      if ((req.url ?? '').split('?')[0] !== `/v2/team/chunky/blobs/${digest}`) return sendStatus(res, 404);
      await hostile.stream(res, TOTAL, { contentLength: false, chunk: CHUNK, fill: 0x5a, headers: { 'content-type': 'application/octet-stream' } });
    });
    await rd!.stop();
    rd = await startRegcache({ config: { dataDir: mountDir, upstreams: { 'hd.example': { url: hostile.url } } } });
    const first = await fetchOutcome(`${rd.url}/v2/hd.example/team/chunky/blobs/${digest}`, { timeoutMs: 60_000 });
    await expectNothingStored(rd.dataDir, digest);
    if (!first.complete) {
      expect(first.bytes).toBeLessThan(TOTAL);
      await rd.waitForLog((x) => x.msg === 'blob fill failed; nothing stored' && x.digest === digest && x.reason === 'disk', 5_000);
    }
    const o = await fetchOutcome(`${rd.url}/v2/hd.example/team/chunky/blobs/${digest}`, { timeoutMs: 60_000 });
    await expectNothingStored(rd.dataDir, digest);
    expect(o.status).toBe(200);
    expect(o.complete, `client got ${o.bytes} of ${TOTAL} bytes: ${o.error}`).toBe(true);
    expect(o.digest).toBe(digest);
  });
});
