/**
 * Sync jobs in-process in front of the fake upstream: what a run fetches is asserted as
 * upstream hit counts (patterns, unchanged tags cost one HEAD, platform filter), and the
 * control paths (cancel, retries, 429, rate-limit floor, interrupted runs, retention).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { validateConfig } from '../../src/config/validate.js';
import { bodyBytes, imageParts } from '../contract/repository.contract.js';
import { corruptBlob, startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { HOST, startProxy, type ProxyHarness } from './proxy-harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const get = { method: 'GET' as const, accepted: [], acceptHeader: undefined };

function seed(up: FakeUpstream, repo: string, tag: string): { digest: string; blobs: string[] } {
  const p = imageParts(`${repo}:${tag}`);
  const blobs = [up.putBlob(repo, p.config), up.putBlob(repo, p.layer)];
  return { digest: up.putManifest(repo, p.manifest, OCI_MANIFEST, tag), blobs };
}

/** A two-platform index; returns the digests of the index and each child's blobs. */
function seedIndex(up: FakeUpstream, repo: string, tag: string): { index: string; amd64: string; arm64: string; amd64Blobs: string[]; arm64Blobs: string[] } {
  const child = (arch: string): { digest: string; blobs: string[]; size: number } => {
    const p = imageParts(`${repo}:${tag}:${arch}`);
    const blobs = [up.putBlob(repo, p.config), up.putBlob(repo, p.layer)];
    return { digest: up.putManifest(repo, p.manifest, OCI_MANIFEST), blobs, size: p.manifest.length };
  };
  const a = child('amd64');
  const b = child('arm64');
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_INDEX, manifests: [
      { mediaType: OCI_MANIFEST, digest: a.digest, size: a.size, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: OCI_MANIFEST, digest: b.digest, size: b.size, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ],
  }));
  return { index: up.putManifest(repo, index, OCI_INDEX, tag), amd64: a.digest, arm64: b.digest, amd64Blobs: a.blobs, arm64Blobs: b.blobs };
}

const job = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ source: `${HOST}/lib/app`, enabled: false, ...extra });
const finished = (h: ProxyHarness): string[] => h.app.sync.get('app')!.history.filter((r) => r.result).map((r) => `${r.trigger} ${r.result}`);
const blobGets = (up: FakeUpstream): string[] => up.requests.filter((r) => r.method === 'GET' && r.kind === 'blob').map((r) => r.path.split('/').pop()!);

/** Blob requests wait at the upstream until the returned function is called. */
function holdBlobs(up: FakeUpstream): () => void {
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  up.script = async (req) => {
    if (req.kind === 'blob') await gate;
    return false;
  };
  return release;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('sync jobs', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());

  it('syncs the matching tags, then a second run costs one HEAD per tag and no GET', async () => {
    h = await startProxy({ sync: { app: job({ tags: 'v1.*', excludeTags: '*-rc' }) } });
    const v10 = seed(h.up, 'lib/app', 'v1.0');
    const v11 = seed(h.up, 'lib/app', 'v1.1');
    seed(h.up, 'lib/app', 'v1.2-rc');
    seed(h.up, 'lib/app', 'v2.0');
    const run = await h.app.sync.runNow('app', { wait: true });
    expect(run).toMatchObject({ result: 'SUCCESS', trigger: 'now', counts: { synced: 2, unchanged: 0, failed: 0, pending: 0 } });
    expect(blobGets(h.up).sort()).toEqual([...v10.blobs, ...v11.blobs].sort());
    expect(run!.bytes).toBeGreaterThan(600_000);
    // The tags are in the cache: a pull within the tag TTL does not ask the upstream.
    const before = h.up.requests.length;
    expect((await h.repo('lib/app').getManifest('v1.1', false, get)).digest).toBe(v11.digest);
    expect(h.up.requests.length).toBe(before);

    h.up.requests.length = 0;
    const again = await h.app.sync.runNow('app', { wait: true });
    expect(again).toMatchObject({ result: 'SUCCESS', counts: { synced: 0, unchanged: 2, failed: 0 }, bytes: 0 });
    expect(h.up.requests.map((r) => `${r.method} ${r.kind}`).sort()).toEqual(['GET tags', 'HEAD manifest', 'HEAD manifest']);
    const detail = h.app.sync.get('app')!;
    expect(detail.state).toBe('SUCCESS');
    expect(detail.history.map((r) => r.result)).toEqual(['SUCCESS', 'SUCCESS']);
  });

  it('pages through the tag list', async () => {
    h = await startProxy({ sync: { app: job({ tags: 't*' }) } });
    for (let i = 0; i < 25; i++) seed(h.up, 'lib/app', `t${String(i).padStart(2, '0')}`);
    const real = h.up.script;
    // Pages of 10 whatever n the client asks for.
    h.up.script = (req, res) => {
      if (req.kind !== 'tags') return real?.(req, res) ?? false;
      const q = new URLSearchParams(req.path.split('?')[1] ?? '');
      const last = q.get('last') ?? '';
      const all = Array.from({ length: 25 }, (_, i) => `t${String(i).padStart(2, '0')}`).filter((t) => t > last);
      const page = all.slice(0, 10);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (all.length > 10) headers.link = `</v2/lib/app/tags/list?n=10&last=${page[9]}>; rel="next"`;
      res.writeHead(200, headers);
      res.end(JSON.stringify({ name: 'lib/app', tags: page }));
      return true;
    };
    const run = await h.app.sync.runNow('app', { wait: true });
    expect(run).toMatchObject({ result: 'SUCCESS', counts: { synced: 25 } });
    expect(h.up.count('GET', 'tags')).toBe(3);
  });

  it('fetches only the chosen platforms and keeps the index digest', async () => {
    h = await startProxy({ sync: { app: job({ platforms: 'linux/arm64' }) } });
    const s = seedIndex(h.up, 'lib/app', 'multi');
    expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS', counts: { synced: 1 } });
    expect(blobGets(h.up).sort()).toEqual([...s.arm64Blobs].sort());
    const manifestGets = h.up.requests.filter((r) => r.method === 'GET' && r.kind === 'manifest').map((r) => r.path.split('/').pop());
    expect(manifestGets.sort()).toEqual([s.index, s.arm64].sort());
    expect((await h.repo('lib/app').getManifest('multi', false, get)).digest).toBe(s.index);
    // Another platform is still served on demand.
    expect((await h.repo('lib/app').getManifest(s.amd64, true, get)).source).toBe('miss');
    // Unchanged next time: the filter is part of "complete".
    h.up.requests.length = 0;
    expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ counts: { unchanged: 1 } });
    expect(h.up.count('GET', 'blob') + h.up.count('GET', 'manifest')).toBe(0);
  });

  it('a 429 stops the run as FAIL with the reason, without hammering', async () => {
    h = await startProxy({ sync: { app: job({ retries: 0 }) }, syncLimits: { [HOST]: { concurrency: 1 } } });
    for (let i = 0; i < 10; i++) seed(h.up, 'lib/app', `v${i}`);
    h.up.script = (req, res) => {
      if (req.method !== 'HEAD' || req.kind !== 'manifest') return false;
      res.writeHead(429, { 'retry-after': '120', 'content-length': '0' });
      res.end();
      return true;
    };
    const run = await h.app.sync.runNow('app', { wait: true });
    expect(run!.result).toBe('FAIL');
    expect(run!.error).toMatch(/429.*Retry-After: 120/);
    expect(h.up.count('HEAD', 'manifest')).toBe(1);
    expect(h.app.sync.get('app')).toMatchObject({ state: 'FAIL', lastError: run!.error });
  });

  it('ratelimit-remaining below the floor stops the run', async () => {
    h = await startProxy({ sync: { app: job({ retries: 0 }) }, syncLimits: { [HOST]: { concurrency: 1, rateLimitFloor: 10 } } });
    for (let i = 0; i < 5; i++) seed(h.up, 'lib/app', `v${i}`);
    h.up.script = (req, res) => {
      if (req.method !== 'HEAD' || req.kind !== 'manifest') return false;
      const tag = req.path.split('/').pop()!;
      res.writeHead(200, { 'ratelimit-remaining': '9;w=21600', 'docker-content-digest': 'sha256:' + 'a'.repeat(64), 'content-length': '10', 'x-tag': tag });
      res.end();
      return true;
    };
    const run = await h.app.sync.runNow('app', { wait: true });
    expect(run).toMatchObject({ result: 'FAIL', counts: { synced: 0 } });
    expect(run!.error).toMatch(/ratelimit-remaining 9 is below the floor 10/);
    expect(h.up.count('HEAD', 'manifest')).toBe(1);
    expect(h.up.count('GET', 'manifest') + h.up.count('GET', 'blob')).toBe(0);
  });

  it('cancel stops a run mid-way: CANCEL, never left SYNCING', async () => {
    h = await startProxy({ sync: { app: job() } });
    seed(h.up, 'lib/app', 'v1');
    const release = holdBlobs(h.up);
    await h.app.sync.runNow('app');
    await until(() => h.up.count('GET', 'blob') > 0, 'a blob request');
    expect(h.app.sync.get('app')!.state).toBe('SYNCING');
    expect(h.app.sync.cancel('app')).toBe(true);
    await until(() => h.app.sync.get('app')!.state !== 'SYNCING', 'the run to end');
    release();
    const d = h.app.sync.get('app')!;
    expect(d.state).toBe('CANCEL');
    expect(d.history.at(-1)).toMatchObject({ result: 'CANCEL', error: 'cancelled' });
    expect(h.app.sync.cancel('app')).toBe(false);
  });

  it('a failed run is retried after retryDelay until it succeeds', async () => {
    h = await startProxy({ sync: { app: job({ retries: 2, retryDelay: '20ms' }) } });
    const s = seed(h.up, 'lib/app', 'v1');
    let failures = 2;
    // Only the layer fails: the config blob succeeds, so the upstream is never marked down.
    h.up.script = (req, res) => {
      if (req.kind !== 'blob' || !req.path.endsWith(s.blobs[1]!) || failures === 0) return false;
      failures--;
      res.writeHead(500, { 'content-length': '0' });
      res.end();
      return true;
    };
    const first = await h.app.sync.runNow('app', { wait: true });
    expect(first).toMatchObject({ result: 'FAIL', counts: { failed: 1 } });
    expect(first!.error).toMatch(/1 of 1 tags failed; first: lib\/app:v1: /);
    await until(() => finished(h).length === 3, 'two retries');
    const d = h.app.sync.get('app')!;
    expect(finished(h)).toEqual(['now FAIL', 'retry FAIL', 'retry SUCCESS']);
    expect(d.state).toBe('SUCCESS');
    expect((await h.repo('lib/app').getManifest('v1', false, get)).digest).toBe(s.digest);
  });

  it('a run longer than its timeout stops as FAIL', async () => {
    h = await startProxy({ sync: { app: job({ timeout: '200ms', retries: 0 }) } });
    seed(h.up, 'lib/app', 'v1');
    const release = holdBlobs(h.up);
    const run = await h.app.sync.runNow('app', { wait: true });
    release();
    expect(run).toMatchObject({ result: 'FAIL', error: 'timed out after 200 ms (timeout)' });
    expect(h.app.sync.get('app')!.state).toBe('FAIL');
  });

  it('with rollback a run that fails half-way moves no tag; without, the synced tags move', async () => {
    for (const rollback of [true, false]) {
      h = await startProxy({ sync: { app: job({ rollback, retries: 0 }) } });
      const old1 = seed(h.up, 'lib/app', 'v1');
      const old2 = seed(h.up, 'lib/app', 'v2');
      expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS', counts: { synced: 2 } });
      const new1 = seed(h.up, 'lib/app', 'v1');
      const new2 = seed(h.up, 'lib/app', 'v2');
      // v2's new layer is corrupt at the upstream: its digest never matches.
      h.up.script = corruptBlob(new2.blobs[1]!);
      const run = await h.app.sync.runNow('app', { wait: true });
      expect(run).toMatchObject({ result: 'FAIL', counts: { synced: 1, failed: 1 } });
      const scope = { upstream: HOST, repo: 'lib/app' };
      expect((await h.app.meta.getTag(scope, 'v1'))!.digest).toBe(rollback ? old1.digest : new1.digest);
      expect((await h.app.meta.getTag(scope, 'v2'))!.digest).toBe(old2.digest);
      expect(h.app.sync.holds(old1.digest)).toBe(rollback);
      expect(h.app.sync.holds(new1.digest)).toBe(!rollback);
      expect(h.app.sync.holds(old2.digest)).toBe(true);
      await h.close();
    }
    h = undefined as unknown as ProxyHarness;
  });

  it('a namespace source syncs every repository the catalog lists under it', async () => {
    h = await startProxy({ sync: { org: { source: `${HOST}/org/*`, enabled: false, tags: 'v1' } } });
    seed(h.up, 'org/a', 'v1');
    seed(h.up, 'org/b', 'v1');
    seed(h.up, 'other/c', 'v1');
    h.up.script = (req, res) => {
      if (!req.path.startsWith('/v2/_catalog')) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ repositories: ['org/a', 'org/b', 'other/c'] }));
      return true;
    };
    const run = await h.app.sync.runNow('org', { wait: true });
    expect(run).toMatchObject({ result: 'SUCCESS', counts: { synced: 2 } });
    expect(run!.tags!.map((t) => t.ref).sort()).toEqual(['org/a:v1', 'org/b:v1']);
  });

  it('a node pulling a blob the job is fetching shares that one upstream fetch', async () => {
    h = await startProxy({ sync: { app: job() } });
    const s = seed(h.up, 'lib/app', 'v1');
    const release = holdBlobs(h.up);
    const run = h.app.sync.runNow('app', { wait: true });
    await until(() => h.up.count('GET', 'blob') === 2, 'the job to ask for both blobs');
    const pull = h.repo('lib/app').getBlob(s.blobs[1]!, { method: 'GET', range: undefined });
    release();
    const a = await pull;
    // A fill in progress answers with a body that writes itself (or a stream): read either way.
    expect((await bodyBytes(a)).length).toBe(300_000);
    expect(await run).toMatchObject({ result: 'SUCCESS' });
    expect(blobGets(h.up).filter((d) => d === s.blobs[1])).toHaveLength(1);
  });

  it('a blob the store has no room for fails its tag with the reason; nothing half-kept', async () => {
    h = await startProxy({ sync: { app: job({ retries: 0 }) }, retention: { interval: 0, maxSize: '100KiB' } });
    const s = seed(h.up, 'lib/app', 'v1');
    const run = await h.app.sync.runNow('app', { wait: true });
    expect(run).toMatchObject({ result: 'FAIL', counts: { synced: 0, failed: 1 } });
    expect(run!.tags![0]!.reason).toMatch(/was not cached: the store is full/);
    expect(await h.app.blobs.stat(s.blobs[1]!)).toBeUndefined();
    expect(h.app.sync.holds(s.digest)).toBe(false);
  });

  it('waits for startAt, then runs every interval', async () => {
    const startAt = new Date(Date.parse('2026-06-01T00:00:00Z') + 300).toISOString();
    h = await startProxy({ sync: { app: job({ enabled: true, startAt, interval: '24h' }) } });
    seed(h.up, 'lib/app', 'v1');
    expect(h.app.sync.get('app')).toMatchObject({ state: 'SCHEDULED', nextRun: startAt });
    expect(h.up.requests).toHaveLength(0);
    await until(() => h.app.sync.get('app')!.state === 'SUCCESS', 'the run at startAt');
    expect(h.app.sync.get('app')!.nextRun).toBe(new Date(Date.parse('2026-06-02T00:00:00Z')).toISOString());
  });

  it('runs on its interval', async () => {
    h = await startProxy({ sync: { app: job({ enabled: true, interval: '200ms' }) } });
    seed(h.up, 'lib/app', 'v1');
    await until(() => finished(h).length >= 3, 'three scheduled runs');
    expect(finished(h).slice(0, 3)).toEqual(['schedule SUCCESS', 'schedule SUCCESS', 'schedule SUCCESS']);
  });

  it('what a job holds survives a retention sweep that evicts everything else; pulls work with the upstream gone', async () => {
    h = await startProxy({ sync: { app: job({ tags: 'held' }) }, retention: { interval: 0, maxAge: '1h' } });
    const held = seed(h.up, 'lib/app', 'held');
    const other = seed(h.up, 'lib/app', 'other');
    expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS' });
    await h.repo('lib/app').getManifest('other', false, get);
    h.clock.now += 2 * 3_600_000;
    await h.app.meta.flush();
    const plan = await h.app.sweep();
    expect(plan.units.map((u) => u.digest)).toEqual([other.digest]);
    expect(await h.app.meta.getManifest(held.digest)).toBeDefined();
    for (const b of held.blobs) expect(await h.app.blobs.stat(b)).toBeDefined();
    await h.up.close();
    h.clock.now += 10 * 60_000; // tag TTL over: revalidation fails, the held tag is served stale
    const m = await h.repo('lib/app').getManifest('held', false, get);
    expect(m.digest).toBe(held.digest);
    for (const b of held.blobs) expect((await h.repo('lib/app').getBlob(b, { method: 'HEAD', range: undefined })).source).toBe('hit');
    // A job whose pattern no longer matches holds nothing: the next sweep may take it.
    expect(h.app.sync.holds(held.digest)).toBe(true);
    await h.app.reload(validateConfig({
      listen: '127.0.0.1:0', dataDir: h.app.currentConfig.dataDir, logLevel: 'silent', retention: { interval: 0, maxAge: '1h' },
      upstreams: { [HOST]: { url: h.up.url } }, cache: { tagTTL: '5m' }, sync: { app: job({ tags: 'nothing' }) },
    }));
    expect(h.app.sync.holds(held.digest)).toBe(false);
  });
});

describe('sync jobs across restarts', () => {
  it('a run cut short by a stop is recorded INTERRUPTED at the next start and runs again', async () => {
    const up = await startFakeUpstream();
    const dataDir = mkdtempSync(join(tmpdir(), 'regcache-sync-'));
    const config = validateConfig({
      listen: '127.0.0.1:0', dataDir, logLevel: 'silent', retention: { interval: 0 },
      upstreams: { [HOST]: { url: up.url } }, sync: { app: { source: `${HOST}/lib/app`, interval: '24h' } },
    });
    seed(up, 'lib/app', 'v1');
    const release = holdBlobs(up);
    const events: string[] = [];
    let app = new App(config, { log: pino({ level: 'silent' }), defaultMetrics: false });
    app.events.subscribe((e) => events.push(e.type));
    try {
      await app.start();
      await until(() => up.count('GET', 'blob') > 0, 'the first run to fetch');
      expect(app.sync.get('app')!.state).toBe('SYNCING');
      await app.stop(50);
      release();
      up.script = undefined;
      app = new App(config, { log: pino({ level: 'silent' }), defaultMetrics: false });
      app.events.subscribe((e) => events.push(e.type));
      await app.start();
      await until(() => app.sync.get('app')!.state === 'SUCCESS', 'the re-run');
      const d = app.sync.get('app')!;
      expect(d.history.map((r) => `${r.trigger} ${r.result}`)).toEqual(['schedule INTERRUPTED', 'start SUCCESS']);
      expect(d.state).toBe('SUCCESS');
      expect(events).toEqual(['sync.started', 'sync.failed', 'sync.started', 'sync.succeeded']);
    } finally {
      await app.stop(1000);
      await up.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});


describe('sync jobs on config reload', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());
  const reload = (sync: Record<string, unknown>): Promise<unknown> => h.app.reload(validateConfig({
    listen: '127.0.0.1:0', dataDir: h.app.currentConfig.dataDir, logLevel: 'silent', retention: { interval: 0 },
    upstreams: { [HOST]: { url: h.up.url } }, cache: { tagTTL: '5m' }, sync,
  }));

  it('adds, changes and removes jobs live; a removed job\'s running run is cancelled and its state dropped', async () => {
    h = await startProxy({});
    seed(h.up, 'lib/app', 'v1');
    expect(h.app.sync.list()).toEqual([]);
    await reload({ app: job({ enabled: true }) });
    // A new enabled job that never ran runs at once.
    await until(() => h.app.sync.get('app')?.state === 'SUCCESS', 'the new job to run');
    await reload({ app: job({ enabled: false, tags: 'v9' }) });
    expect(h.app.sync.get('app')).toMatchObject({ enabled: false, config: { tags: 'v9' } });
    expect(h.app.sync.get('app')!.nextRun).toBeUndefined();

    const release = holdBlobs(h.up);
    seed(h.up, 'lib/app', 'v9');
    const events: string[] = [];
    h.app.events.subscribe((e) => events.push(e.type));
    await h.app.sync.runNow('app');
    await until(() => h.up.count('GET', 'blob') > 0, 'the run to fetch');
    // Copy jobs keep their state in the same namespace: never touched by sync.
    await h.app.meta.putState('jobs', 'copy/nightly', { mine: true });
    await reload({});
    release();
    await until(() => events.length === 2, 'the end event');
    expect(events).toEqual(['sync.started', 'sync.cancelled']);
    expect(h.app.sync.list()).toEqual([]);
    expect(await h.app.meta.listState('jobs')).toEqual([{ key: 'copy/nightly', value: { mine: true } }]);
  });
});
