/**
 * Retention with a real store and a real upstream, in-process so the clock can be moved:
 * age counts from the last pull, eviction goes by image, a shared layer survives, nothing
 * is deleted under a reader, and `gc --dry-run` changes nothing.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { validateConfig } from '../../src/config/validate.js';
import { layout } from '../../src/store/fs/layout.js';
import {
  cleanupAll, CLI_PATH, httpProbe, makeImage, makeIndex, makeLayer, pushImage, pushIndex, runCommand, startRegistry, stopAllChildren, tmpDir,
  type Image, type Registry,
} from '../helpers/index.js';
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

const MIN = 60_000;
let upstream: Registry;
const shared = makeLayer({ randomBytes: 300 * 1024, seed: 'shared' });
const imgA = makeImage({ format: 'oci', layers: [shared, makeLayer({ randomBytes: 200 * 1024, seed: 'a' })] });
const imgB = makeImage({ format: 'oci', layers: [shared, makeLayer({ randomBytes: 200 * 1024, seed: 'b' })] });
const imgC = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 200 * 1024, seed: 'c' })] });
// Two indexes sharing the amd64 child.
const sharedChild = makeImage({ format: 'oci', arch: 'amd64', layers: [makeLayer({ randomBytes: 100 * 1024, seed: 'child-x' })] });
const only1 = makeImage({ format: 'oci', arch: 'arm64', layers: [makeLayer({ randomBytes: 100 * 1024, seed: 'child-y1' })] });
const only2 = makeImage({ format: 'oci', arch: 'arm64', layers: [makeLayer({ randomBytes: 100 * 1024, seed: 'child-y2' })] });
const index1 = makeIndex('oci', [sharedChild, only1]);
const index2 = makeIndex('oci', [sharedChild, only2]);
// Larger than what the kernel's socket buffers take at once, so the server is still reading it while the client pauses.
const imgD = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 32 * 1024 * 1024, seed: 'd' })] });

beforeAll(async () => {
  upstream = await startRegistry();
  await pushImage(upstream.url, 'r/a', 'v1', imgA);
  await pushImage(upstream.url, 'r/b', 'v1', imgB);
  await pushImage(upstream.url, 'r/c', 'v1', imgC);
  await pushImage(upstream.url, 'r/d', 'v1', imgD);
  await pushIndex(upstream.url, 'r/multi', 'one', index1);
  await pushIndex(upstream.url, 'r/multi', 'two', index2);
});

afterAll(async () => {
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

interface Running { app: App; url: string; clock: { now: number }; dataDir: string; configFile: string }

async function startApp(retention: Record<string, unknown>): Promise<Running> {
  const dataDir = tmpDir('regcache-ret-');
  const raw = { listen: '127.0.0.1:0', dataDir, logLevel: 'silent', retention: { interval: 0, ...retention }, upstreams: { 'docker.io': { url: upstream.url } }, defaultUpstream: 'docker.io' };
  const configFile = join(tmpDir('regcache-ret-cfg-'), 'regcache.yaml');
  writeFileSync(configFile, stringify(raw));
  const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
  const app = new App(validateConfig(raw), { log: pino({ level: 'silent' }), now: () => clock.now, defaultMetrics: false });
  await app.start();
  return { app, url: `http://127.0.0.1:${app.mainPort}`, clock, dataDir, configFile };
}

async function pullImage(r: Running, repo: string, img: Image): Promise<void> {
  const url = r.url;
  const m = await httpProbe(`${url}/v2/${repo}/manifests/v1`);
  expect(m.status).toBe(200);
  for (const b of [img.config, ...img.layers]) {
    const res = await httpProbe(`${url}/v2/${repo}/blobs/${b.digest}`);
    expect(res.status).toBe(200);
  }
  // Commits (fsync, rename) follow the last byte; sweeps in these tests must see them.
  await r.app.proxy.blobs.idle();
}

const blobOnDisk = (dataDir: string, digest: string): boolean => existsSync(layout(dataDir).blobPath(digest));

describe('retention', () => {
  it('by age: counts from the last pull, evicts whole images, keeps a layer shared with a retained image', async () => {
    const r = await startApp({ maxAge: '1h' });
    try {
      await pullImage(r, 'r/a', imgA);
      await pullImage(r, 'r/b', imgB);
      await pullImage(r, 'r/c', imgC);
      r.clock.now += 30 * MIN;
      await pullImage(r, 'r/a', imgA); // refreshes A's last pull
      r.clock.now += 40 * MIN; // B and C: 70 min since last pull; A: 40 min
      const plan = await r.app.sweep();
      expect(plan.units.map((u) => u.digest).sort()).toEqual([imgB.digest, imgC.digest].sort());
      expect(plan.units.every((u) => u.reason === 'age')).toBe(true);
      expect(blobOnDisk(r.dataDir, shared.digest)).toBe(true);
      expect(blobOnDisk(r.dataDir, imgA.layers[1]!.digest)).toBe(true);
      expect(blobOnDisk(r.dataDir, imgB.layers[1]!.digest)).toBe(false);
      expect(blobOnDisk(r.dataDir, imgC.layers[0]!.digest)).toBe(false);
      expect(await r.app.meta.getManifest(imgB.digest)).toBeUndefined();
      expect(await r.app.meta.getManifest(imgA.digest)).toBeDefined();
      // The evicted image pulls again (refetched from upstream).
      await pullImage(r, 'r/b', imgB);
      expect(blobOnDisk(r.dataDir, imgB.layers[1]!.digest)).toBe(true);
    } finally {
      await r.app.stop(1000);
    }
  });

  it('by size: least recently pulled image goes first, the shared layer stays', async () => {
    const r = await startApp({});
    try {
      await pullImage(r, 'r/a', imgA);
      r.clock.now += MIN;
      await pullImage(r, 'r/b', imgB);
      const total = r.app.meta.totals().blobBytes + r.app.meta.totals().manifestBytes;
      // Room for everything but A's own layer: A (least recent) must go, B and the shared layer stay.
      const plan = await r.app.sweep({ targetSize: total - 1 });
      expect(plan.units.map((u) => u.digest)).toEqual([imgA.digest]);
      expect(plan.units[0]!.reason).toBe('size');
      expect(blobOnDisk(r.dataDir, shared.digest)).toBe(true);
      expect(blobOnDisk(r.dataDir, imgA.layers[1]!.digest)).toBe(false);
      expect(blobOnDisk(r.dataDir, imgB.layers[1]!.digest)).toBe(true);
    } finally {
      await r.app.stop(1000);
    }
  });

  it('maxSize is enforced when a fill would cross it: older images are evicted first', async () => {
    const r = await startApp({ maxSize: '1MiB' });
    try {
      await pullImage(r, 'r/a', imgA); // ~500 KiB
      r.clock.now += MIN;
      await pullImage(r, 'r/c', imgC); // ~200 KiB, fits
      r.clock.now += MIN;
      await pullImage(r, 'r/b', imgB); // B's own layer would cross 1 MiB? shared is cached; A is least recent
      const st = r.app.meta.totals();
      expect(st.blobBytes + st.manifestBytes).toBeLessThanOrEqual(1024 * 1024);
    } finally {
      await r.app.stop(1000);
    }
  });

  it('by size: an index child shared with a retained index stays', async () => {
    const r = await startApp({});
    try {
      const get = async (path: string): Promise<void> => expect((await httpProbe(`${r.url}/v2/r/multi/${path}`)).status).toBe(200);
      await get('manifests/one');
      for (const img of [sharedChild, only1]) {
        await get(`manifests/${img.digest}`);
        for (const b of [img.config, ...img.layers]) await get(`blobs/${b.digest}`);
      }
      r.clock.now += MIN;
      await get('manifests/two');
      await get(`manifests/${only2.digest}`);
      for (const b of [only2.config, ...only2.layers]) await get(`blobs/${b.digest}`);
      await r.app.proxy.blobs.idle();
      const st = r.app.meta.totals();
      // Evict exactly one unit: the least recent, index1.
      const plan = await r.app.sweep({ targetSize: st.blobBytes + st.manifestBytes - 1 });
      expect(plan.units.map((u) => u.digest)).toEqual([index1.digest]);
      expect(await r.app.meta.getManifest(index1.digest)).toBeUndefined();
      expect(await r.app.meta.getManifest(only1.digest)).toBeUndefined();
      expect(await r.app.meta.getManifest(sharedChild.digest)).toBeDefined();
      expect(await r.app.meta.getManifest(index2.digest)).toBeDefined();
      expect(blobOnDisk(r.dataDir, sharedChild.layers[0]!.digest)).toBe(true);
      expect(blobOnDisk(r.dataDir, only1.layers[0]!.digest)).toBe(false);
    } finally {
      await r.app.stop(1000);
    }
  });

  it('never deletes a blob that is being served', async () => {
    const r = await startApp({ maxAge: '1h' });
    try {
      await pullImage(r, 'r/d', imgD);
      const layer = imgD.layers[0]!;
      // A slow reader: open the response and do not read it yet.
      const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
        const req = request(`${r.url}/v2/r/d/blobs/${layer.digest}`, { agent: false }, resolve);
        req.on('error', reject);
        req.end();
      });
      res.pause();
      r.clock.now += 2 * 60 * MIN;
      await r.app.sweep();
      expect(blobOnDisk(r.dataDir, layer.digest)).toBe(true);
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(layer.bytes)).toBe(true);
      await new Promise((res2) => setTimeout(res2, 50));
      await r.app.sweep();
      expect(blobOnDisk(r.dataDir, layer.digest)).toBe(false);
    } finally {
      await r.app.stop(1000);
    }
  });

  it('gc --dry-run lists what would go and changes nothing; gc removes it', async () => {
    const r = await startApp({ maxAge: '1h' });
    await pullImage(r, 'r/c', imgC);
    await r.app.stop(1000);
    // Real time is far beyond the fake clock's 2026-01-01 pull + 1h.
    const listing = (): string[] => readdirSync(join(r.dataDir, 'blobs'), { recursive: true }).map(String).sort();
    const before = listing();
    const dry = await runCommand(process.execPath, [CLI_PATH, 'gc', '--dry-run', '--config', r.configFile]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`would remove image ${imgC.digest}`);
    // Named by its tag, not only its digest (issue 15 item 20).
    expect(dry.stdout).toContain(`would remove image ${imgC.digest} [docker.io/r/c:v1]`);
    expect(dry.stdout).toMatch(/1 image\(s\), 0 unreferenced blob\(s\)/);
    expect(listing()).toEqual(before);
    const real = await runCommand(process.execPath, [CLI_PATH, 'gc', '--config', r.configFile]);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(/freed .* \(\d+ bytes\)/);
    expect(blobOnDisk(r.dataDir, imgC.layers[0]!.digest)).toBe(false);
  });
});
