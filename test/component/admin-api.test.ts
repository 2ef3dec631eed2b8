/**
 * The admin API (/api/v1/) in-process in front of the fake upstream: what it reports, what
 * refresh and forget cost upstream (counted there), jobs through a JobControl double,
 * events and their live stream, the cross-site check, and who may call it under `auth`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterEach, describe, expect, it } from 'vitest';
import { imageParts, pushImage } from '../contract/repository.contract.js';
import { jobControlDouble } from './job-control-double.js';
import { HOST, startProxy, type ProxyHarness } from './proxy-harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CSRF = { 'x-regcache-request': '1' };

function seed(h: ProxyHarness, repo: string, tag: string): string {
  const p = imageParts(`${repo}:${tag}`);
  h.up.putBlob(repo, p.config);
  h.up.putBlob(repo, p.layer);
  return h.up.putManifest(repo, p.manifest, OCI_MANIFEST, tag);
}

describe('admin API', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());
  const base = (): string => `http://127.0.0.1:${h.app.mainPort}`;
  const api = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`${base()}/api/v1/${path}`, init);
  const body = async <T = Record<string, any>>(r: Response): Promise<T> => (await r.json()) as T;
  const pull = (repo: string, ref: string): Promise<Response> => fetch(`${base()}/v2/${HOST}/${repo}/manifests/${ref}`);

  it('status: upstream health, store use against maxSize, hit ratio and bytes served from the metrics', async () => {
    h = await startProxy({ retention: { interval: 0, maxSize: '1MiB' } });
    const before = await body(await api('status'));
    expect(before.upstreams).toEqual([expect.objectContaining({ host: HOST, state: 'up', requests: { total: 0, failed: 0 } })]);
    expect(before.hitRatio).toEqual({ blob: null, manifest: null });
    expect(before.store).toMatchObject({ bytes: 0, maxSize: 1024 * 1024, fill: 0 });
    seed(h, 'lib/app', 'v1');
    expect((await pull('lib/app', 'v1')).status).toBe(200);
    expect((await pull('lib/app', 'v1')).status).toBe(200);
    const after = await body(await api('status'));
    expect(after.hitRatio.manifest).toBe(0.5);
    expect(after.store.bytes).toBeGreaterThan(0);
    expect(after.store.fill).toBeCloseTo(after.store.bytes / (1024 * 1024));
    expect(after.bytesServed.cache).toBeGreaterThan(0);
    expect(after.upstreams[0].requests.total).toBe(1);
    expect(after.fills).toEqual([]);
    expect(JSON.stringify(after)).not.toMatch(/password/i);
  });

  it('repositories: searched, paged, one in detail with its tags; unknown ones are 404', async () => {
    h = await startProxy();
    const d = seed(h, 'lib/app', 'v1');
    seed(h, 'other/tool', 'latest');
    await pull('lib/app', 'v1');
    await pull('other/tool', 'latest');
    const all = await body(await api('repositories'));
    expect(all.repositories.map((r: { name: string }) => r.name)).toEqual([`${HOST}/lib/app`, `${HOST}/other/tool`]);
    expect(all.next).toBeUndefined();
    expect((await body(await api('repositories?q=TOOL'))).repositories.map((r: { repo: string }) => r.repo)).toEqual(['other/tool']);
    const first = await body(await api('repositories?n=1'));
    expect(first.repositories).toHaveLength(1);
    expect(first.next).toBe(`${HOST}/lib/app`);
    const second = await body(await api(`repositories?n=1&last=${encodeURIComponent(first.next)}`));
    expect(second.repositories.map((r: { repo: string }) => r.repo)).toEqual(['other/tool']);
    const detail = await body(await api(`repositories/${HOST}/lib/app`));
    expect(detail).toMatchObject({ name: `${HOST}/lib/app`, hosted: false, tags: [{ tag: 'v1', digest: d, mediaType: OCI_MANIFEST }] });
    expect(detail.tags[0].bytes).toBeGreaterThan(0);
    const unknown = await api(`repositories/${HOST}/no/such`);
    expect(unknown.status).toBe(404);
    expect((await body(unknown)).errors[0].code).toBe('NAME_UNKNOWN');
    expect((await api('repositories?n=0')).status).toBe(400);
  });

  it('hosted repositories show their last push, in the list and per tag; cached ones have none', async () => {
    h = await startProxy({ hostedRepositories: { 'team/**': {} } });
    const t0 = h.clock.now;
    const hosted = h.app.namespace.resolve({}, undefined, 'team/app');
    await pushImage(hosted, 'v1');
    h.clock.now = t0 + 3_600_000;
    await pushImage(hosted, 'v2');
    // v1 pushed again (a new image): its tag and the repository move on; v2's stays.
    h.clock.now = t0 + 7_200_000;
    await pushImage(hosted, 'v1');
    h.clock.now = t0 + 9_000_000;
    seed(h, 'lib/app', 'v1');
    await pull('lib/app', 'v1');
    const list = await body(await api('repositories'));
    expect(list.repositories).toEqual([
      expect.objectContaining({ name: `${HOST}/lib/app`, hosted: false, lastPush: null }),
      expect.objectContaining({ name: 'hosted/team/app', hosted: true, lastPush: new Date(t0 + 7_200_000).toISOString() }),
    ]);
    const detail = await body(await api('repositories/hosted/team/app'));
    expect(detail.lastPush).toBe(new Date(t0 + 7_200_000).toISOString());
    expect(detail.tags.map((t: { tag: string; lastPush: string; pinned: boolean }) => [t.tag, t.lastPush, t.pinned])).toEqual([
      ['v1', new Date(t0 + 7_200_000).toISOString(), false],
      ['v2', new Date(t0 + 3_600_000).toISOString(), false],
    ]);
    const cached = await body(await api(`repositories/${HOST}/lib/app`));
    expect(cached.lastPush).toBeNull();
    expect(cached.tags[0].lastPush).toBeNull();
  });

  it('a tag whose image a sync job holds is pinned; one pulled but not in the job is not', async () => {
    h = await startProxy({ sync: { app: { source: `${HOST}/lib/app`, tags: 'v1', enabled: false } } });
    const held = seed(h, 'lib/app', 'v1');
    seed(h, 'lib/app', 'v2');
    const run = await api('sync/app/now?wait=1', { method: 'POST', headers: CSRF });
    expect((await body(run)).run).toMatchObject({ result: 'SUCCESS', counts: { synced: 1 } });
    expect((await pull('lib/app', 'v2')).status).toBe(200);
    const detail = await body(await api(`repositories/${HOST}/lib/app`));
    expect(detail.tags.map((t: { tag: string; digest: string; pinned: boolean }) => [t.tag, t.digest === held, t.pinned])).toEqual([
      ['v1', true, true],
      ['v2', false, false],
    ]);
  });

  it('refresh costs exactly one upstream HEAD; without the cross-site header it is refused and costs nothing', async () => {
    h = await startProxy();
    const d = seed(h, 'lib/app', 'v1');
    await pull('lib/app', 'v1');
    const counted = h.up.requests.length;
    const refused = await api(`repositories/${HOST}/lib/app/-/tags/v1/refresh`, { method: 'POST' });
    expect(refused.status).toBe(403);
    expect((await body(refused)).errors[0].code).toBe('DENIED');
    const crossSite = await api(`repositories/${HOST}/lib/app/-/tags/v1/refresh`, { method: 'POST', headers: { ...CSRF, origin: 'https://evil.example' } });
    expect(crossSite.status).toBe(403);
    expect(h.up.requests.length).toBe(counted);
    const r = await api(`repositories/${HOST}/lib/app/-/tags/v1/refresh`, { method: 'POST', headers: { ...CSRF, origin: base() } });
    expect(r.status).toBe(200);
    expect(await body(r)).toEqual({ digest: d, changed: false });
    expect(h.up.requests.slice(counted).map((q) => `${q.method} ${q.kind}`)).toEqual(['HEAD manifest']);
    const missing = await api(`repositories/${HOST}/lib/app/-/tags/nope/refresh`, { method: 'POST', headers: CSRF });
    expect(missing.status).toBe(404);
    expect(h.up.requests.length).toBe(counted + 1);
  });

  it('forget drops the cached tag but keeps its content: the digest is still a hit, the tag goes upstream again', async () => {
    h = await startProxy();
    const d = seed(h, 'lib/app', 'v1');
    await pull('lib/app', 'v1');
    expect((await api(`repositories/${HOST}/lib/app/-/tags/v1`, { method: 'DELETE' })).status).toBe(403);
    expect((await api(`repositories/${HOST}/lib/app/-/tags/v1`, { method: 'DELETE', headers: CSRF })).status).toBe(200);
    expect((await body(await api(`repositories/${HOST}/lib/app`))).tags).toEqual([]);
    expect((await api(`repositories/${HOST}/lib/app/-/tags/v1`, { method: 'DELETE', headers: CSRF })).status).toBe(404);
    const gets = h.up.count('GET', 'manifest');
    expect((await pull('lib/app', d)).status).toBe(200);
    expect(h.up.count('GET', 'manifest')).toBe(gets);
    expect((await pull('lib/app', 'v1')).status).toBe(200);
    expect(h.up.count('GET', 'manifest')).toBe(gets + 1);
  });

  it('jobs through JobControl: list, detail, run now, cancel (409 when not running), unknown 404', async () => {
    const jobs = jobControlDouble(['nightly']);
    h = await startProxy({}, { jobs });
    jobs.events = h.app.events;
    expect((await body(await api('jobs'))).jobs).toEqual([expect.objectContaining({ name: 'nightly', state: 'NEVER_RUN' })]);
    expect((await api('jobs/nightly/run', { method: 'POST' })).status).toBe(403);
    expect(jobs.runNowCalls).toEqual([]);
    const run = await api('jobs/nightly/run', { method: 'POST', headers: CSRF });
    expect(run.status).toBe(202);
    expect((await body(run)).job.state).toBe('SYNC_NOW');
    jobs.step('nightly');
    expect((await body(await api('jobs/nightly'))).state).toBe('SYNCING');
    expect((await api('jobs/nightly/cancel', { method: 'POST', headers: CSRF })).status).toBe(200);
    const again = await api('jobs/nightly/cancel', { method: 'POST', headers: CSRF });
    expect(again.status).toBe(409);
    const detail = await body(await api('jobs/nightly'));
    expect(detail).toMatchObject({ state: 'CANCEL', history: [{ trigger: 'now', result: 'CANCEL' }] });
    expect((await api('jobs/other')).status).toBe(404);
    expect((await body(await api('events?type=sync'))).events.map((e: { type: string }) => e.type)).toEqual(['sync.started', 'sync.cancelled']);
  });

  it('without a jobs service the list is empty and a job is 404', async () => {
    h = await startProxy();
    expect(await body(await api('jobs'))).toEqual({ jobs: [] });
    expect((await api('jobs/x/run', { method: 'POST', headers: CSRF })).status).toBe(404);
  });

  it('an upstream marked down is an event, in the recent list and live on the stream, and shows in status with its cause', async () => {
    h = await startProxy({ upstreamHealth: { maxFails: 1, failTimeout: '1m' } });
    const ac = new AbortController();
    const stream = await fetch(`${base()}/api/v1/events/stream`, { signal: ac.signal });
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = stream.body!.getReader();
    h.up.script = (_req, res) => {
      res.statusCode = 503;
      res.end();
      return true;
    };
    expect((await pull('lib/app', 'v1')).status).toBeGreaterThanOrEqual(500);
    let text = '';
    for (let i = 0; i < 20 && !text.includes('upstream.down'); i++) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    expect(text).toMatch(/id: 1\nevent: upstream\.down\ndata: .*"upstream":"fake\.test"/);
    const recent = (await body(await api('events'))).events;
    expect(recent).toEqual([expect.objectContaining({ id: '1', type: 'upstream.down', subject: HOST, data: expect.objectContaining({ cause: expect.stringContaining('503') }) })]);
    const st = await body(await api('status'));
    expect(st.upstreams[0]).toMatchObject({ state: 'down', lastError: { cause: expect.stringContaining('503') }, requests: { total: 1, failed: 1 } });
    h.up.script = undefined;
    h.clock.now += 2 * 60_000; // past failTimeout: the next request is the probe
    seed(h, 'lib/app', 'v1');
    expect((await pull('lib/app', 'v1')).status).toBe(200);
    expect((await body(await api('events?after=1'))).events.map((e: { type: string }) => e.type)).toEqual(['upstream.up']);
    expect((await body(await api('status'))).upstreams[0].state).toBe('up');
  });

  it('the stream replays what came after Last-Event-ID, and sends status snapshots with status=1', async () => {
    h = await startProxy();
    h.app.events.emit('upstream.down', { upstream: 'a' }, 'a');
    h.app.events.emit('upstream.up', { upstream: 'a' }, 'a');
    const ac = new AbortController();
    const r = await fetch(`${base()}/api/v1/events/stream?status=1`, { signal: ac.signal, headers: { 'last-event-id': '1' } });
    const reader = r.body!.getReader();
    let text = '';
    for (let i = 0; i < 20 && !text.includes('event: status'); i++) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    expect(text).toContain('id: 2\nevent: upstream.up');
    expect(text).not.toContain('id: 1\n');
    expect(text).toMatch(/event: status\ndata: \{"version"/);
  });

  it('a first connection replays what came after `after` (the events a page fetched before it opened the stream)', async () => {
    h = await startProxy();
    h.app.events.emit('upstream.up', { upstream: 'a' }, 'a');
    // Emitted after the page fetched event 1 and before its stream was open: without `after`, lost.
    h.app.events.emit('upstream.down', { upstream: 'a' }, 'a');
    const ac = new AbortController();
    const r = await fetch(`${base()}/api/v1/events/stream?status=1&after=1`, { signal: ac.signal });
    const reader = r.body!.getReader();
    let text = '';
    for (let i = 0; i < 20 && !text.includes('event: status'); i++) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    expect(text).toContain('id: 2\nevent: upstream.down');
    expect(text).not.toContain('id: 1\n');
    expect((await api('events/stream?after=x')).status).toBe(400);
  });

  it('metrics of known label sets exist at zero from the start', async () => {
    h = await startProxy();
    const text = await (await fetch(`${base()}/metrics`)).text();
    expect(text).toContain(`regcache_cache_results_total{upstream="${HOST}",kind="blob",result="hit"} 0`);
    expect(text).toContain(`regcache_cache_results_total{upstream="${HOST}",kind="manifest",result="stale"} 0`);
    expect(text).toContain(`regcache_digest_mismatches_total{upstream="${HOST}"} 0`);
    expect(text).toContain('regcache_evictions_total{reason="size"} 0');
    expect(text).toContain('regcache_bytes_served_total{source="cache"} 0');
  });

  it('the page is served by regcache with a policy that allows nothing from elsewhere and no inline code', async () => {
    h = await startProxy();
    const redirect = await fetch(`${base()}/ui`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/ui/');
    const html = await fetch(`${base()}/ui/`);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    expect(html.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
    const texts = [await html.text(), await (await fetch(`${base()}/ui/app.js`)).text(), await (await fetch(`${base()}/ui/app.css`)).text()];
    for (const t of texts) expect(t).not.toMatch(/https?:\/\//);
    expect(texts[0]).not.toMatch(/<script>|<style>| on[a-z]+=/);
    expect((await fetch(`${base()}/ui/other.js`)).status).toBe(404);
  });

  it('the OpenAPI description is served', async () => {
    h = await startProxy();
    const doc = await body(await api('openapi.json'));
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/repositories/{upstream}/{repo}/-/tags/{tag}/refresh');
  });

  describe('under auth', () => {
    const withAuth = async (auth: Record<string, unknown>): Promise<void> => {
      const dir = (await import('node:os')).tmpdir();
      const file = join(dir, `regcache-admin-htpasswd-${process.pid}-${Math.random()}`);
      writeFileSync(file, `admin:${bcrypt.hashSync('s3cret', 4)}\n`);
      h = await startProxy({ auth: { htpasswd: file, ...auth } });
    };
    const login = { authorization: `Basic ${Buffer.from('admin:s3cret').toString('base64')}` };

    it('anonymousPull opens pulls, never the admin API', async () => {
      await withAuth({ anonymousPull: true });
      expect((await fetch(`${base()}/v2/`)).status).toBe(200);
      const denied = await api('status');
      expect(denied.status).toBe(401);
      expect(denied.headers.get('www-authenticate')).toMatch(/^Basic/);
      expect((await api('repositories')).status).toBe(401);
      expect((await api('status', { headers: login })).status).toBe(200);
    });

    it('publicStatus opens status only', async () => {
      await withAuth({ publicStatus: true });
      expect((await api('status')).status).toBe(200);
      expect((await api('repositories')).status).toBe(401);
      expect((await api('events')).status).toBe(401);
      expect((await api('repositories', { headers: login })).status).toBe(200);
    });
  });
});
