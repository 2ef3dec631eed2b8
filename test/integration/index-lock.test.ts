/**
 * The index never freezes the server (issue 10, item 6) and no commit is dropped at
 * shutdown (item 7). Another process holds `BEGIN EXCLUSIVE` on index.db (better-sqlite3
 * in a child node process): /healthz answers, /readyz says the index is unavailable,
 * cached pulls and cold pulls complete, and once the lock goes away everything pulled
 * meanwhile is indexed (served again without asking the upstream, fsck clean). SIGTERM
 * while fills finish: every blob is indexed after the restart.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, REPO_ROOT, cleanupAll, httpProbe, makeImage, makeLayer, pushImage, runCommand, sha256, spawnManaged, startForwarder,
  startRegcache, startRegistry, stopAllChildren, waitUntil, type Forwarder, type Image, type ManagedProcess, type Registry,
} from '../helpers/index.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

let upstream: Registry;
let fwd: Forwarder;
const images = new Map<string, Image>();

function image(label: string, layers = 2, bytes = 200_000): Image {
  return makeImage({
    format: 'oci',
    layers: Array.from({ length: layers }, (_, i) => makeLayer({ randomBytes: bytes, seed: `index-lock-${label}-${i}` })),
    labels: { t: label },
  });
}

beforeAll(async () => {
  upstream = await startRegistry();
  fwd = await startForwarder(upstream);
  const specs: Array<[string, Image]> = [['lock/warm', image('warm')]];
  for (let i = 0; i < 3; i++) specs.push([`lock/cold-${i}`, image(`cold-${i}`)]);
  for (let i = 0; i < 6; i++) specs.push([`term/img-${i}`, image(`term-${i}`, 2, 2_000_000)]);
  for (const [repo, img] of specs) {
    images.set(repo, img);
    await pushImage(upstream.url, repo, 'v1', img);
  }
}, 120_000);

afterAll(async () => {
  await fwd?.close();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

/** Pulls repo:v1 through regcache (manifest by tag, then every blob), checking every digest. */
async function pull(base: string, repo: string): Promise<void> {
  const img = images.get(repo)!;
  const m = await httpProbe(`${base}/v2/${repo}/manifests/v1`, { headers: { accept: ACCEPT }, timeoutMs: 30_000 });
  expect(m.status, m.body.toString()).toBe(200);
  expect(sha256(m.body)).toBe(img.digest);
  await Promise.all([img.config, ...img.layers].map(async (b) => {
    const r = await httpProbe(`${base}/v2/${repo}/blobs/${b.digest}`, { timeoutMs: 30_000 });
    expect(r.status, r.body.toString()).toBe(200);
    expect(sha256(r.body)).toBe(b.digest);
  }));
}

/** A second process holding the write lock of `file` until it is stopped (at most 60 s). */
async function lockIndex(file: string): Promise<ManagedProcess> {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(${JSON.stringify(file)});
    db.exec('BEGIN EXCLUSIVE');
    process.stdout.write('locked\\n');
    const release = () => { db.exec('COMMIT'); db.close(); process.exit(0); };
    process.on('SIGTERM', release);
    setTimeout(release, 60000);
  `;
  const p = spawnManaged(process.execPath, ['-e', script], { cwd: REPO_ROOT });
  await waitUntil(() => p.stdout().includes('locked') || !p.running, { timeoutMs: 15_000, message: 'locker did not start' });
  expect(p.running, p.stderr()).toBe(true);
  return p;
}

describe('a locked index', () => {
  it('never freezes the server; what is pulled meanwhile is indexed once the lock goes away', async () => {
    const rc = await startRegcache({ config: { defaultUpstream: 'up', upstreams: { up: { url: fwd.url } }, logLevel: 'info' } });
    try {
      await pull(rc.url, 'lock/warm');
      const locker = await lockIndex(join(rc.dataDir, 'index.db'));
      let healthMaxMs = 0;
      try {
        for (let i = 0; i < 10; i++) {
          const t0 = performance.now();
          const h = await httpProbe(`${rc.url}/healthz`, { timeoutMs: 10_000 });
          healthMaxMs = Math.max(healthMaxMs, performance.now() - t0);
          expect(h.status).toBe(200);
        }
        const ready = await httpProbe(`${rc.url}/readyz`, { timeoutMs: 10_000 });
        expect(ready.status).toBe(503);
        expect(JSON.parse(ready.body.toString()).checks.index).toBe('unavailable');
        // Cached content is served; cold pulls fetch, serve and queue their index rows.
        await pull(rc.url, 'lock/warm');
        await Promise.all([0, 1, 2].map((i) => pull(rc.url, `lock/cold-${i}`)));
        // Still locked: pulled again, they are hits from what is known (no upstream GET).
        fwd.reset();
        await Promise.all([0, 1, 2].map((i) => pull(rc.url, `lock/cold-${i}`)));
        expect(fwd.count('GET', /\/blobs\//)).toBe(0);
        for (let i = 0; i < 5; i++) expect((await httpProbe(`${rc.url}/healthz`, { timeoutMs: 10_000 })).status).toBe(200);
      } finally {
        await locker.stop('SIGTERM', 5_000);
      }
      console.log(`index locked: slowest /healthz ${healthMaxMs.toFixed(1)} ms`);
      await waitUntil(async () => (await httpProbe(`${rc.url}/readyz`)).status === 200, { timeoutMs: 15_000, message: '/readyz did not recover' });
      fwd.reset();
      await Promise.all([0, 1, 2].map((i) => pull(rc.url, `lock/cold-${i}`)));
      expect(fwd.count('GET', /\/blobs\//)).toBe(0);
      expect(rc.logs().some((l) => /dropped|not stored/.test(String(l.msg) + String(l.err)))).toBe(false);
      expect((await rc.stop()).code).toBe(0);
      // Every row landed before the exit: nothing for recovery to adopt or drop.
      const fsck = await runCommand(process.execPath, [CLI_PATH, 'fsck', '--config', rc.configPath]);
      expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
      expect(fsck.stdout).not.toMatch(/found: [1-9]/);
      await rc.restart();
      fwd.reset();
      await Promise.all([0, 1, 2].map((i) => pull(rc.url, `lock/cold-${i}`)));
      expect(fwd.count('GET', /\/blobs\//)).toBe(0);
    } finally {
      await rc.stop();
    }
  }, 120_000);
});

describe('shutdown', () => {
  it('SIGTERM during pulls: every fill that finishes is committed and indexed before the exit', async () => {
    const rc = await startRegcache({ config: { defaultUpstream: 'up', upstreams: { up: { url: fwd.url } } } });
    try {
      const repos = [...images.keys()].filter((r) => r.startsWith('term/'));
      const blobs = repos.flatMap((r) => images.get(r)!.layers.map((l) => ({ repo: r, digest: l.digest })));
      // Slow upstream: the fills are in flight when SIGTERM arrives; each ends (last byte to
      // its client, then fsync, rename, index row) while the server is stopping.
      fwd.setFault({ trickleBytesPerSec: 2 * 1024 * 1024 });
      const gets = blobs.map((b) => httpProbe(`${rc.url}/v2/${b.repo}/blobs/${b.digest}`, { timeoutMs: 60_000 }));
      await waitUntil(() => fwd.count('GET', /\/blobs\//) === blobs.length, { timeoutMs: 15_000 });
      const exited = rc.stop('SIGTERM', 60_000);
      for (const [i, r] of (await Promise.all(gets)).entries()) {
        expect(r.status).toBe(200);
        expect(sha256(r.body)).toBe(blobs[i]!.digest);
      }
      expect((await exited).code).toBe(0);
      fwd.setFault({});
      const fsck = await runCommand(process.execPath, [CLI_PATH, 'fsck', '--config', rc.configPath]);
      expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
      expect(fsck.stdout).not.toMatch(/found: [1-9]/);
      await rc.restart();
      expect(rc.logs({ currentRunOnly: true }).find((l) => l.msg === 'regcache started')?.recovery).toMatchObject({ orphansAdopted: 0, missingBlobRowsDropped: 0 });
      fwd.reset();
      await Promise.all(blobs.map(async (b) => expect((await httpProbe(`${rc.url}/v2/${b.repo}/blobs/${b.digest}`, { timeoutMs: 30_000 })).status).toBe(200)));
      expect(fwd.count('GET', /\/blobs\//)).toBe(0);
    } finally {
      fwd.setFault({});
      await rc.stop();
    }
  }, 120_000);
});
