/**
 * Sync jobs with a hosted target (`target: hosted:<repository>`), in-process in front of the
 * fake upstream: the mirror holds exactly the matching tags (removed upstream or no longer
 * matching: gone), rollback keeps the previous tag set on a run that fails half-way (a
 * corrupt blob upstream), best effort keeps what synced, client writes are refused naming
 * the job, and pulls through the hosted name are served with no upstream request.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { imageParts } from '../contract/repository.contract.js';
import { HOSTED } from '../../src/store/metadata-store.js';
import { corruptBlob, type FakeUpstream } from './fake-upstream.js';
import { HOST, startProxy, type ProxyHarness } from './proxy-harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const MIRROR = { upstream: HOSTED, repo: 'mirror/app' };

function seed(up: FakeUpstream, repo: string, tag: string, salt = ''): { digest: string; blobs: string[]; manifest: Buffer } {
  const p = imageParts(`${repo}:${tag}${salt}`);
  const blobs = [up.putBlob(repo, p.config), up.putBlob(repo, p.layer)];
  return { digest: up.putManifest(repo, p.manifest, OCI_MANIFEST, tag), blobs, manifest: p.manifest };
}

let dir: string;
let htpasswd: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'regcache-sync-hosted-'));
  htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, '');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A mirror job into mirror/app, with anonymous push allowed there (so only the mirror rule refuses). */
const config = (extra: Record<string, unknown> = {}, pattern: Record<string, unknown> = { deleteTags: true, deleteManifests: true, deleteBlobs: true }): Record<string, unknown> => ({
  hostedRepositories: { 'mirror/**': pattern },
  auth: { htpasswd, anonymousPull: true, rules: [{ users: ['anonymous'], repositories: ['mirror/**'], actions: ['pull', 'push', 'delete'] }] },
  sync: { app: { source: `${HOST}/lib/app`, target: 'hosted:mirror/app', enabled: false, retries: 0, ...extra } },
});

async function mirrorTags(h: ProxyHarness): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of await h.app.meta.listTags(MIRROR, '', 1000)) out[t] = (await h.app.meta.getTag(MIRROR, t))!.digest;
  return out;
}

describe('sync jobs with a hosted target', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());

  it('holds exactly the matching tags: removed upstream or no longer matching, gone; pulls served with no upstream request', async () => {
    h = await startProxy(config({ tags: 'v1*' }));
    const base = `http://127.0.0.1:${h.app.mainPort}`;
    const v1 = seed(h.up, 'lib/app', 'v1');
    const v10 = seed(h.up, 'lib/app', 'v1.0');
    const v11 = seed(h.up, 'lib/app', 'v1.1');
    seed(h.up, 'lib/app', 'v2');
    expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS', counts: { synced: 3, failed: 0 } });
    expect(await mirrorTags(h)).toEqual({ v1: v1.digest, 'v1.0': v10.digest, 'v1.1': v11.digest });

    // Pulls through the hosted name: the upstream's bytes and digests, no upstream request.
    h.up.requests.length = 0;
    const m = await fetch(`${base}/v2/mirror/app/manifests/v1.1`, { headers: { accept: OCI_MANIFEST } });
    expect(m.status).toBe(200);
    expect(m.headers.get('docker-content-digest')).toBe(v11.digest);
    expect(Buffer.from(await m.arrayBuffer()).equals(v11.manifest)).toBe(true);
    for (const b of v11.blobs) {
      const r = await fetch(`${base}/v2/mirror/app/blobs/${b}`);
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    expect(h.up.requests).toEqual([]);
    // The proxy name's cache is untouched by the mirror's tags (they are the job's, in HOSTED).
    expect(await h.app.meta.getTag({ upstream: HOST, repo: 'lib/app' }, 'v1.1')).toBeUndefined();

    // v1.0 removed upstream; then the patterns change so that v1 no longer matches.
    h.up.deleteTag('lib/app', 'v1.0');
    expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS', counts: { synced: 0, unchanged: 2, removed: 1 } });
    expect(await mirrorTags(h)).toEqual({ v1: v1.digest, 'v1.1': v11.digest });
    const cur = h.app.currentConfig;
    await h.app.reload({ ...cur, sync: [{ ...cur.sync[0]!, tags: 'v1.*' }] });
    expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS', counts: { unchanged: 1, removed: 1 } });
    expect(await mirrorTags(h)).toEqual({ 'v1.1': v11.digest });
    expect((await fetch(`${base}/v2/mirror/app/manifests/v1`, { headers: { accept: OCI_MANIFEST } })).status).toBe(404);
  });

  it('client pushes and deletes are refused with 405 naming the job', async () => {
    h = await startProxy(config());
    const base = `http://127.0.0.1:${h.app.mainPort}`;
    const v1 = seed(h.up, 'lib/app', 'v1');
    expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS' });
    const refused = async (r: Response): Promise<void> => {
      expect(r.status).toBe(405);
      const e = ((await r.json()) as { errors: Array<{ code: string; message: string }> }).errors[0]!;
      expect(e.code).toBe('UNSUPPORTED');
      expect(e.message).toMatch(/mirror kept by sync job app \(sync\.app\.target\)/);
    };
    await refused(await fetch(`${base}/v2/mirror/app/blobs/uploads/`, { method: 'POST' }));
    const p = imageParts('other');
    await refused(await fetch(`${base}/v2/mirror/app/manifests/v1`, { method: 'PUT', body: new Uint8Array(p.manifest), headers: { 'content-type': OCI_MANIFEST } }));
    await refused(await fetch(`${base}/v2/mirror/app/manifests/v1`, { method: 'DELETE' }));
    await refused(await fetch(`${base}/v2/mirror/app/manifests/${v1.digest}`, { method: 'DELETE' }));
    await refused(await fetch(`${base}/v2/mirror/app/blobs/${v1.blobs[0]}`, { method: 'DELETE' }));
    expect(await mirrorTags(h)).toEqual({ v1: v1.digest });
    // Another repository under the same pattern still takes pushes (the rule is the job's, not the pattern's).
    const ok = await fetch(`${base}/v2/mirror/other/blobs/uploads/`, { method: 'POST' });
    expect(ok.status).toBe(202);
  });

  it('with rollback a run that fails half-way (one blob corrupt upstream) keeps the previous tag set; without, what synced stays', async () => {
    for (const rollback of [true, false]) {
      h = await startProxy(config({ rollback }));
      const old1 = seed(h.up, 'lib/app', 'v1');
      const old2 = seed(h.up, 'lib/app', 'v2');
      const gone = seed(h.up, 'lib/app', 'v3');
      expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS', counts: { synced: 3 } });
      const new1 = seed(h.up, 'lib/app', 'v1', '-new');
      const new2 = seed(h.up, 'lib/app', 'v2', '-new');
      h.up.deleteTag('lib/app', 'v3');
      // v2's new layer is corrupt at the upstream: its digest never matches.
      h.up.script = corruptBlob(new2.blobs[1]!);
      const run = await h.app.sync.runNow('app', { wait: true });
      expect(run).toMatchObject({ result: 'FAIL', counts: { synced: 1, failed: 1 } });
      if (rollback) {
        // All or nothing: the tag set is exactly the one before the run (v3 too).
        expect(await mirrorTags(h)).toEqual({ v1: old1.digest, v2: old2.digest, v3: gone.digest });
      } else {
        // Best effort: v1 moved, v2 kept its old digest, v3 (gone upstream) removed.
        expect(await mirrorTags(h)).toEqual({ v1: new1.digest, v2: old2.digest });
      }
      // Once the upstream is fixed the next run completes the switch.
      h.up.script = undefined;
      expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS' });
      expect(await mirrorTags(h)).toEqual({ v1: new1.digest, v2: new2.digest });
      await h.close();
    }
    h = undefined as unknown as ProxyHarness;
  });

  it('a platform filter keeps the index byte for byte in the mirror, with only the chosen children', async () => {
    h = await startProxy(config({ platforms: 'linux/arm64' }, { sparseIndex: true }));
    const child = (arch: string): { digest: string; size: number; blobs: string[] } => {
      const p = imageParts(`lib/app:multi:${arch}`);
      const blobs = [h.up.putBlob('lib/app', p.config), h.up.putBlob('lib/app', p.layer)];
      return { digest: h.up.putManifest('lib/app', p.manifest, OCI_MANIFEST), size: p.manifest.length, blobs };
    };
    const a = child('amd64');
    const b = child('arm64');
    const body = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_INDEX, manifests: [
        { mediaType: OCI_MANIFEST, digest: a.digest, size: a.size, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: b.digest, size: b.size, platform: { os: 'linux', architecture: 'arm64' } },
      ],
    }));
    const index = h.up.putManifest('lib/app', body, OCI_INDEX, 'multi');
    expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS', counts: { synced: 1 } });
    expect(await mirrorTags(h)).toEqual({ multi: index });
    expect((await h.app.meta.getManifest(index))!.body.equals(body)).toBe(true);
    expect(await h.app.meta.isLinked(MIRROR, b.digest)).toBe(true);
    for (const d of b.blobs) expect(await h.app.meta.isLinked(MIRROR, d)).toBe(true);
    expect(await h.app.meta.isLinked(MIRROR, a.digest)).toBe(false);
    // Nothing changed upstream: unchanged, no GET.
    h.up.requests.length = 0;
    expect(await h.app.sync.runNow('app', { wait: true })).toMatchObject({ result: 'SUCCESS', counts: { unchanged: 1 } });
    expect(h.up.count('GET', 'blob') + h.up.count('GET', 'manifest')).toBe(0);
  });
});
