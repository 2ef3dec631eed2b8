/**
 * Operating a running regcache process: metrics after known traffic, health endpoints,
 * SIGTERM draining an in-flight pull, and crash recovery after kill -9 in the middle of a fill.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  cleanupAll, CLI_PATH, httpProbe, makeImage, makeLayer, pushImage, runCommand, sha256, startForwarder, startRegcache,
  startRegistry, stopAllChildren, waitUntil, type Forwarder, type Image, type Registry,
} from '../helpers/index.js';

let upstream: Registry;
let fwd: Forwarder;
let small: Image;
let large: Image;

beforeAll(async () => {
  upstream = await startRegistry();
  fwd = await startForwarder(upstream);
  small = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 100_000, seed: 'ops-small' })] });
  large = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 30 * 1024 * 1024, seed: 'ops-large' })] });
  await pushImage(upstream.url, 'ops/small', 'v1', small);
  await pushImage(upstream.url, 'ops/large', 'v1', large);
});

afterAll(async () => {
  await fwd?.close();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = Object.fromEntries((m[2] ?? '').split(',').filter(Boolean).map((kv) => {
      const [k, v] = kv.split('=');
      return [k, v!.replace(/^"|"$/g, '')];
    }));
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) {
      sum += Number(m[3]);
      found = true;
    }
  }
  return found ? sum : NaN;
}

function openSlow(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
}

describe('metrics and health', () => {
  it('counts known traffic with low-cardinality labels', async () => {
    const rc = await startRegcache({ config: { defaultUpstream: 'docker.io', upstreams: { 'docker.io': { url: upstream.url } } } });
    try {
      const layer = small.layers[0]!;
      expect((await httpProbe(`${rc.url}/v2/ops/small/manifests/v1`)).status).toBe(200); // miss
      expect((await httpProbe(`${rc.url}/v2/ops/small/manifests/v1`)).status).toBe(200); // hit
      expect((await httpProbe(`${rc.url}/v2/ops/small/blobs/${layer.digest}`)).status).toBe(200); // miss
      expect((await httpProbe(`${rc.url}/v2/ops/small/blobs/${layer.digest}`)).status).toBe(200); // hit
      expect((await httpProbe(`${rc.url}/v2/Bad/manifests/v1`)).status).toBe(400);
      const scrape = async (): Promise<string> => (await httpProbe(`${rc.url}/metrics`)).body.toString();
      // The blob's commit follows its last byte.
      await waitUntil(async () => metric(await scrape(), 'regcache_store_blobs') === 1, { timeoutMs: 5000 });
      const m = await scrape();
      expect(metric(m, 'regcache_cache_results_total', { upstream: 'docker.io', kind: 'manifest', result: 'miss' })).toBe(1);
      expect(metric(m, 'regcache_cache_results_total', { upstream: 'docker.io', kind: 'manifest', result: 'hit' })).toBe(1);
      expect(metric(m, 'regcache_cache_results_total', { upstream: 'docker.io', kind: 'blob', result: 'miss' })).toBe(1);
      expect(metric(m, 'regcache_cache_results_total', { upstream: 'docker.io', kind: 'blob', result: 'hit' })).toBe(1);
      expect(metric(m, 'regcache_requests_total', { upstream: 'docker.io', kind: 'blob', method: 'GET', status: '200' })).toBe(2);
      expect(metric(m, 'regcache_requests_total', { kind: 'manifest', status: '400' })).toBe(1);
      expect(metric(m, 'regcache_bytes_served_total', { source: 'cache' })).toBe(layer.size + small.size);
      expect(metric(m, 'regcache_bytes_served_total', { source: 'upstream' })).toBe(layer.size + small.size);
      expect(metric(m, 'regcache_upstream_bytes_total', { upstream: 'docker.io' })).toBe(layer.size);
      expect(metric(m, 'regcache_upstream_requests_total', { upstream: 'docker.io', method: 'GET', status: '200' })).toBe(2);
      expect(metric(m, 'regcache_store_blobs')).toBe(1);
      expect(metric(m, 'regcache_store_manifests')).toBe(1);
      expect(metric(m, 'regcache_store_bytes')).toBe(layer.size + small.size);
      expect(metric(m, 'regcache_fills_in_flight')).toBe(0);
      expect(metric(m, 'process_resident_memory_bytes')).toBeGreaterThan(0);
      expect(m).not.toContain('ops/small');
      expect(m).not.toContain('sha256:');
      const health = await httpProbe(`${rc.url}/healthz`);
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body.toString())).toEqual({ status: 'ok' });
      const ready = await httpProbe(`${rc.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body.toString())).toMatchObject({ status: 'ready', checks: { store: 'writable', index: 'open' } });
    } finally {
      await rc.stop();
    }
  });
});

describe('lifecycle', () => {
  it('SIGTERM stops accepting, lets an in-flight pull finish, and exits 0', async () => {
    const rc = await startRegcache({ config: { defaultUpstream: 'docker.io', upstreams: { 'docker.io': { url: upstream.url } } } });
    const layer = large.layers[0]!;
    await httpProbe(`${rc.url}/v2/ops/large/manifests/v1`);
    const res = await openSlow(`${rc.url}/v2/ops/large/blobs/${layer.digest}`);
    expect(res.statusCode).toBe(200);
    res.pause();
    const exited = rc.stop('SIGTERM', 30_000);
    await new Promise((r) => setTimeout(r, 300));
    // New connections are refused while draining.
    await expect(httpProbe(`${rc.url}/v2/`, { timeoutMs: 1000 })).rejects.toThrow();
    const hash = createHash('sha256');
    for await (const c of res) hash.update(c as Buffer);
    expect(`sha256:${hash.digest('hex')}`).toBe(layer.digest);
    const r = await exited;
    expect(r.code).toBe(0);
    expect(rc.logs().some((l) => l.msg === 'stopped')).toBe(true);
  });

  it('kill -9 during a fill: after restart only verified content is served and the index matches the disk', async () => {
    const rc = await startRegcache({ config: { defaultUpstream: 'docker.io', upstreams: { 'docker.io': { url: fwd.url } } } });
    const layer = large.layers[0]!;
    fwd.setFault({ trickleBytesPerSec: 4 * 1024 * 1024 });
    const res = await openSlow(`${rc.url}/v2/ops/large/blobs/${layer.digest}`);
    res.on('error', () => undefined);
    res.resume();
    await new Promise((r) => setTimeout(r, 1500));
    expect(readdirSync(join(rc.dataDir, 'tmp')).length).toBe(1);
    await rc.kill9();
    fwd.setFault({});
    await rc.restart();
    expect(readdirSync(join(rc.dataDir, 'tmp'))).toEqual([]);
    expect(rc.logs({ currentRunOnly: true }).find((l) => l.msg === 'regcache started')?.recovery).toMatchObject({ tempFilesRemoved: 1 });
    const again = await httpProbe(`${rc.url}/v2/ops/large/blobs/${layer.digest}`, { timeoutMs: 30_000 });
    expect(again.status).toBe(200);
    expect(sha256(again.body)).toBe(layer.digest);
    // The blob is committed after the client has its last byte (fsync, rename): wait for it, then
    // every file in the store is named by its content.
    const dir = join(rc.dataDir, 'blobs', 'sha256');
    const hex = layer.digest.slice('sha256:'.length);
    await vi.waitFor(() => expect(existsSync(join(dir, hex.slice(0, 2), hex))).toBe(true), { timeout: 15_000, interval: 50 });
    for (const p of readdirSync(dir)) for (const f of readdirSync(join(dir, p))) expect(sha256(readFileSync(join(dir, p, f)))).toBe(`sha256:${f}`);
    await rc.stop();
    const fsck = await runCommand(process.execPath, [CLI_PATH, 'fsck', '--config', rc.configPath]);
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
    expect(fsck.stdout).not.toMatch(/found: [1-9]/);
  });
});
