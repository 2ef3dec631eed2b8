/**
 * The sync jobs' admin API (/api/v1/sync) and `regcache sync` against an in-process server:
 * answers, errors, the admin permission when auth is configured, and the CLI's output and
 * its error when no server runs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sync as syncCommand } from '../../src/cli/sync.js';
import { imageParts } from '../contract/repository.contract.js';
import { HOST, startProxy, type ProxyHarness } from './proxy-harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function seed(h: ProxyHarness, tag: string): void {
  const p = imageParts(tag);
  h.up.putBlob('lib/app', p.config);
  h.up.putBlob('lib/app', p.layer);
  h.up.putManifest('lib/app', p.manifest, OCI_MANIFEST, tag);
}

async function api(h: ProxyHarness, method: string, path: string, auth?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
  const res = await fetch(`http://127.0.0.1:${h.app.mainPort}${path}`, { method, headers });
  return { status: res.status, body: await res.json() };
}

const dir = mkdtempSync(join(tmpdir(), 'regcache-sync-api-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(argv: string[], port: number): Promise<{ code: number; out: string }> {
  const file = join(dir, `c-${port}.yaml`);
  writeFileSync(file, `listen: 127.0.0.1:${port}\n`);
  let out = '';
  const code = await syncCommand([...argv, '--config', file], { stdout: (s) => { out += s; }, stderr: (s) => { out += s; }, env: {} });
  return { code, out };
}

describe('sync API without auth', () => {
  let h: ProxyHarness;
  beforeAll(async () => {
    h = await startProxy({ sync: { app: { source: `${HOST}/lib/app`, enabled: false } } });
    seed(h, 'v1');
  });
  afterAll(async () => h?.close());

  it('lists jobs, runs one now and shows its status', async () => {
    const list = await api(h, 'GET', '/api/v1/sync');
    expect(list).toMatchObject({ status: 200, body: { jobs: [{ name: 'app', kind: 'sync', state: 'NEVER_RUN', enabled: false }] } });
    const now = await api(h, 'POST', '/api/v1/sync/app/now?wait=1');
    expect(now).toMatchObject({ status: 200, body: { job: 'app', run: { result: 'SUCCESS', counts: { synced: 1 } } } });
    const d = await api(h, 'GET', '/api/v1/sync/app');
    expect(d.body).toMatchObject({ name: 'app', state: 'SUCCESS', config: { source: `${HOST}/lib/app` }, history: [{ result: 'SUCCESS' }] });
    const started = await api(h, 'POST', '/api/v1/sync/app/now');
    expect(started.status).toBe(202);
    expect(started.body.run.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers OCI errors for unknown jobs, wrong methods and paths', async () => {
    expect(await api(h, 'GET', '/api/v1/sync/nope')).toMatchObject({ status: 404, body: { errors: [{ code: 'NOT_FOUND', message: 'no sync or copy job "nope" in the config' }] } });
    expect(await api(h, 'POST', '/api/v1/sync/nope/now')).toMatchObject({ status: 404 });
    expect((await api(h, 'GET', '/api/v1/sync/app/now')).status).toBe(405);
    expect((await api(h, 'POST', '/api/v1/sync')).status).toBe(405);
    expect((await api(h, 'GET', '/api/v1/sync/a/b/c')).status).toBe(404);
    expect(await api(h, 'POST', '/api/v1/sync/app/cancel')).toMatchObject({ status: 200, body: { cancelled: false } });
  });

  it('regcache sync list | status | now --wait | cancel', async () => {
    const port = h.app.mainPort!;
    const list = await cli(['list'], port);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^NAME +STATE +LAST END +NEXT RUN +LAST RUN\napp +\S+ \(disabled\)/);
    const now = await cli(['now', 'app', '--wait'], port);
    expect(now.code).toBe(0);
    // Progress (stderr, plain lines without a terminal), then the result (stdout).
    expect(now.out).toMatch(/sync: app: tags \(1\)\nsync: app: tags: 1 done\napp: SUCCESS \(0 synced, 1 unchanged, 0 failed, 0 bytes\)\n$/);
    const status = await cli(['status', 'app'], port);
    expect(status.out).toMatch(/^app: SUCCESS \(disabled\)\n {2}source +fake\.test\/lib\/app/);
    expect(status.out).toMatch(/history:\n {4}\S+ SUCCESS +now/);
    expect(await cli(['cancel', 'app'], port)).toEqual({ code: 1, out: 'app: not running, nothing to cancel\n' });
    await expect(cli(['status', 'nope'], port)).rejects.toThrow('status nope: 404: no sync or copy job "nope" in the config');
    await expect(cli(['now'], port)).rejects.toThrow('sync now needs a job name');
  });

  it('now --wait without a terminal: plain progress lines while the run lists and syncs its tags, no cursor codes', async () => {
    seed(h, 'v2');
    seed(h, 'v3');
    // A slow tag list: the first poll finds the run before it knows its tags.
    h.up.script = async (r) => {
      if (r.kind === 'tags') await new Promise((res) => setTimeout(res, 1500));
      return false;
    };
    try {
      let out = '';
      let err = '';
      const file = join(dir, 'wait.yaml');
      writeFileSync(file, `listen: 127.0.0.1:${h.app.mainPort}\n`);
      const code = await syncCommand(['now', 'app', '--wait', '--config', file], { stdout: (t) => void (out += t), stderr: (t) => void (err += t), env: {} });
      expect(code).toBe(0);
      expect(out).toMatch(/^app: SUCCESS \(2 synced, 1 unchanged, 0 failed, [1-9]\d* bytes\)\n$/);
      expect(err).toMatch(/^sync: app: (waiting to start|listing tags)\n/);
      expect(err).toMatch(/sync: app: tags \(3\)\nsync: app: tags: 3 done\n$/);
      expect(err).not.toContain('\x1b');
    } finally {
      h.up.script = undefined;
    }
  });

  it('says so when no server is running', async () => {
    // A port that was just free: bound, then closed again.
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const free = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    await expect(cli(['list'], free)).rejects.toThrow(`regcache is not running at http://127.0.0.1:${free} (connection refused)`);
  });
});

describe('sync API with auth', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());

  it('needs a user even when anonymous pulls are allowed', async () => {
    const htpasswd = join(dir, 'htpasswd');
    writeFileSync(htpasswd, `admin:${bcrypt.hashSync('s3cret', 4)}\n`);
    h = await startProxy({ sync: { app: { source: `${HOST}/lib/app`, enabled: false } }, auth: { htpasswd, anonymousPull: true } });
    expect((await api(h, 'GET', '/api/v1/sync')).status).toBe(401);
    expect((await api(h, 'POST', '/api/v1/sync/app/now')).status).toBe(401);
    expect((await api(h, 'GET', '/api/v1/sync', 'admin:wrong')).status).toBe(401);
    expect((await api(h, 'GET', '/api/v1/sync', 'admin:s3cret')).status).toBe(200);
    // Pulls stay anonymous.
    expect((await fetch(`http://127.0.0.1:${h.app.mainPort}/v2/`)).status).toBe(200);
    await expect(cli(['list'], h.app.mainPort!)).rejects.toThrow(/needs credentials for the sync API/);
    const pw = join(dir, 'pw');
    writeFileSync(pw, 's3cret\n');
    expect((await cli(['list', '--username', 'admin', '--password-file', pw], h.app.mainPort!)).code).toBe(0);
  });
});
