/**
 * Hosted repositories over HTTP, in-process in front of a fake upstream: every API rule of
 * the push, discovery and management side with its status, headers and error code; the
 * overlay ("skip mirroring") counted at the upstream; writes to proxy repositories; regcache's
 * own registry names; per-user permissions and the catalog they filter.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { imageParts } from '../contract/repository.contract.js';
import { HOST, startProxy, type ProxyHarness } from './proxy-harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const sha512 = (b: Buffer): string => `sha512:${createHash('sha512').update(b).digest('hex')}`;

let dir: string;
let htpasswd: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'regcache-hosted-http-'));
  htpasswd = join(dir, 'htpasswd');
  const line = (u: string): string => `${u}:${bcrypt.hashSync(`${u}-pw`, 4)}`;
  writeFileSync(htpasswd, ['pusher', 'deleter', 'reader'].map(line).join('\n') + '\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const basic = (u: string): string => `Basic ${Buffer.from(`${u}:${u}-pw`).toString('base64')}`;

function authConfig(extra: Record<string, unknown> = {}, anonymousPull = false): Record<string, unknown> {
  return {
    hostedRepositories: { 'team/**': { deleteManifests: true, deleteTags: true, deleteBlobs: true }, [`${HOST}/myorg/**`]: {} },
    auth: {
      htpasswd, anonymousPull,
      rules: [
        { users: ['pusher'], repositories: ['team/**', `${HOST}/myorg/**`], actions: ['push'] },
        { users: ['deleter'], repositories: ['team/**'], actions: ['push', 'delete'] },
        { users: ['anonymous'], repositories: ['team/public/**'], actions: ['pull', 'push'] },
      ],
    },
    ...extra,
  };
}

describe('hosted over HTTP', () => {
  let h: ProxyHarness;
  let base: string;
  afterEach(async () => h?.close());
  const start = async (extra: Record<string, unknown> = {}, anonymousPull = false): Promise<void> => {
    h = await startProxy(authConfig(extra, anonymousPull));
    base = `http://127.0.0.1:${h.app.mainPort}`;
  };
  const req = (path: string, init: Omit<RequestInit, 'body'> & { user?: string; body?: Buffer | string } = {}): Promise<Response> => {
    const headers = new Headers(init.headers);
    if (init.user) headers.set('authorization', basic(init.user));
    const body = typeof init.body === 'string' || init.body === undefined ? init.body : new Uint8Array(init.body);
    return fetch(base + path, { ...init, body, headers, redirect: 'manual' });
  };
  const code = async (r: Response): Promise<string> => `${r.status} ${((await r.json()) as { errors: Array<{ code: string }> }).errors[0]!.code}`;

  /** Pushes a blob monolithically as `user`. */
  const blob = async (name: string, bytes: Buffer, user = 'pusher'): Promise<string> => {
    const r = await req(`/v2/${name}/blobs/uploads/?digest=${sha(bytes)}`, { method: 'POST', body: bytes, user, headers: { 'content-type': 'application/octet-stream' } });
    expect(r.status).toBe(201);
    return sha(bytes);
  };
  const image = async (name: string, tag: string, user = 'pusher'): Promise<{ digest: string; manifest: Buffer }> => {
    const p = imageParts(`${name}:${tag}`);
    await blob(name, p.config, user);
    await blob(name, p.layer, user);
    const r = await req(`/v2/${name}/manifests/${tag}`, { method: 'PUT', body: p.manifest, user, headers: { 'content-type': OCI_MANIFEST } });
    expect(r.status).toBe(201);
    return { digest: sha(p.manifest), manifest: p.manifest };
  };

  it('the chunked push flow with its headers, then the pull', async () => {
    await start({}, true);
    const bytes = randomBytes(40_000);
    const post = await req('/v2/team/app/blobs/uploads/', { method: 'POST', user: 'pusher' });
    expect(post.status).toBe(202);
    const location = post.headers.get('location')!;
    expect(location).toMatch(/^\/v2\/team\/app\/blobs\/uploads\/[0-9a-f]{32}$/);
    expect(post.headers.get('range')).toBe('0-0');
    expect(post.headers.get('docker-upload-uuid')).toBe(location.split('/').pop());
    const p1 = await req(location, { method: 'PATCH', body: bytes.subarray(0, 15_000), user: 'pusher', headers: { 'content-range': '0-14999', 'content-type': 'application/octet-stream' } });
    expect(p1.status).toBe(202);
    expect(p1.headers.get('range')).toBe('0-14999');
    expect(p1.headers.get('location')).toBe(location);
    const ooo = await req(location, { method: 'PATCH', body: bytes.subarray(20_000), user: 'pusher', headers: { 'content-range': '20000-39999' } });
    expect(await code(ooo)).toBe('416 RANGE_INVALID');
    const status = await req(location, { user: 'pusher' });
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe('0-14999');
    await req(location, { method: 'PATCH', body: bytes.subarray(15_000, 30_000), user: 'pusher', headers: { 'content-range': '15000-29999' } });
    const put = await req(`${location}?digest=${sha512(bytes)}`, { method: 'PUT', body: bytes.subarray(30_000), user: 'pusher' });
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(sha512(bytes));
    expect(put.headers.get('location')).toBe(`/v2/team/app/blobs/${sha512(bytes)}`);
    const got = await req(`/v2/team/app/blobs/${sha512(bytes)}`);
    expect(got.status).toBe(200);
    expect(got.headers.get('docker-content-digest')).toBe(sha512(bytes));
    expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);
    const ranged = await req(`/v2/team/app/blobs/${sha512(bytes)}`, { headers: { range: 'bytes=10-19' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(10, 20))).toBe(true);
    const del = await req(location, { method: 'DELETE', user: 'pusher' });
    expect(await code(del)).toBe('404 BLOB_UPLOAD_UNKNOWN');
    expect(h.up.requests).toEqual([]);
  });

  it('manifests: 201 with Location and Docker-Content-Digest, OCI-Subject, GET and HEAD; the error paths', async () => {
    await start({}, true);
    const img = await image('team/app', 'v1');
    const head = await req('/v2/team/app/manifests/v1', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(img.digest);
    expect(head.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(head.headers.get('content-length')).toBe(String(img.manifest.length));
    const empty = Buffer.from('{}');
    await blob('team/app', empty);
    const sig = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example.sig',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(empty), size: 2 }, layers: [],
      subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length },
    }));
    const put = await req(`/v2/team/app/manifests/${sha(sig)}`, { method: 'PUT', body: sig, user: 'pusher', headers: { 'content-type': OCI_MANIFEST } });
    expect(put.status).toBe(201);
    expect(put.headers.get('location')).toBe(`/v2/team/app/manifests/${sha(sig)}`);
    expect(put.headers.get('docker-content-digest')).toBe(sha(sig));
    expect(put.headers.get('oci-subject')).toBe(img.digest);
    const refs = await req(`/v2/team/app/referrers/${img.digest}?artifactType=application/vnd.example.sig`);
    expect(refs.status).toBe(200);
    expect(refs.headers.get('content-type')).toBe(OCI_INDEX);
    expect(refs.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(((await refs.json()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest)).toEqual([sha(sig)]);
    const none = await req(`/v2/team/app/referrers/${sha(Buffer.from('nothing'))}`);
    expect(none.status).toBe(200);
    expect(((await none.json()) as { manifests: unknown[] }).manifests).toEqual([]);
    // Error paths: never a 500.
    expect(await code(await req('/v2/team/app/manifests/nope'))).toBe('404 MANIFEST_UNKNOWN');
    expect(await code(await req('/v2/team/app/manifests/sha256:abc'))).toBe('400 DIGEST_INVALID');
    expect(await code(await req('/v2/team/app/blobs/sha256:abc'))).toBe('400 DIGEST_INVALID');
    expect(await code(await req(`/v2/team/app/manifests/${sha(Buffer.from('x'))}`, { method: 'PUT', body: img.manifest, user: 'pusher', headers: { 'content-type': OCI_MANIFEST } }))).toBe('400 DIGEST_INVALID');
    expect(await code(await req('/v2/team/app/manifests/v2', { method: 'PUT', body: img.manifest, user: 'pusher', headers: { 'content-type': OCI_INDEX } }))).toBe('400 MANIFEST_INVALID');
    const big = Buffer.alloc(5 * 1024 * 1024, 0x20);
    expect(await code(await req('/v2/team/app/manifests/big', { method: 'PUT', body: big, user: 'pusher', headers: { 'content-type': OCI_MANIFEST } }))).toBe('413 MANIFEST_INVALID');
    expect(await code(await req(`/v2/team/app/blobs/uploads/?digest=sha256:zz`, { method: 'POST', body: Buffer.from('x'), user: 'pusher' }))).toBe('400 DIGEST_INVALID');
  });

  it('tags list pages with n, last and Link; the catalog lists hosted and cached repositories, paged', async () => {
    await start({ auth: { htpasswd, anonymousPull: true, rules: [{ users: ['pusher'], repositories: ['team/**'], actions: ['push'] }] } });
    for (const t of ['c', 'a', 'b']) await image('team/app', t);
    await image('team/zed', 'v1');
    const p1 = await req('/v2/team/app/tags/list?n=2');
    expect(await p1.json()).toEqual({ name: 'team/app', tags: ['a', 'b'] });
    expect(p1.headers.get('link')).toBe('</v2/team/app/tags/list?n=2&last=b>; rel="next"');
    expect(await (await req('/v2/team/app/tags/list?n=2&last=b')).json()).toEqual({ name: 'team/app', tags: ['c'] });
    // A cached repository next to the hosted ones.
    const p = imageParts('cached');
    h.up.putBlob('lib/x', p.config);
    h.up.putBlob('lib/x', p.layer);
    h.up.putManifest('lib/x', p.manifest, OCI_MANIFEST, 'v1');
    expect((await req(`/v2/lib/x/manifests/v1?ns=${HOST}`)).status).toBe(200);
    expect(await (await req('/v2/_catalog')).json()).toEqual({ repositories: [`${HOST}/lib/x`, 'team/app', 'team/zed'] });
    const c1 = await req('/v2/_catalog?n=2');
    expect(await c1.json()).toEqual({ repositories: [`${HOST}/lib/x`, 'team/app'] });
    expect(c1.headers.get('link')).toBe('</v2/_catalog?n=2&last=team%2Fapp>; rel="next"');
    expect(await (await req('/v2/_catalog?n=2&last=team/app')).json()).toEqual({ repositories: ['team/zed'] });
  });

  it('a proxy repository answers writes 405 UNSUPPORTED naming the config key; nothing goes upstream', async () => {
    await start();
    for (const [method, path] of [['POST', '/v2/lib/x/blobs/uploads/'], ['PUT', '/v2/lib/x/manifests/v1'], ['DELETE', `/v2/lib/x/blobs/${sha(Buffer.from('x'))}`]] as const) {
      const r = await req(`${path}?ns=${HOST}`, { method, body: '{}', user: 'pusher' });
      expect(r.status).toBe(405);
      const body = (await r.json()) as { errors: Array<{ code: string; message: string }> };
      expect(body.errors[0]!.code).toBe('UNSUPPORTED');
      expect(body.errors[0]!.message).toContain('hostedRepositories');
    }
    expect(h.up.requests).toEqual([]);
  });

  it('overlay: what was pushed under an upstream name is answered with no upstream request; the rest is proxied', async () => {
    await start({ auth: { htpasswd, anonymousPull: true, rules: [{ users: ['pusher'], repositories: [`${HOST}/myorg/**`], actions: ['push'] }] } });
    // Pushed by path prefix, pulled as containerd does (?ns=).
    const pushed = await image(`${HOST}/myorg/app`, 'sha-1');
    const upstreamOnly = imageParts('upstream');
    h.up.putBlob('myorg/app', upstreamOnly.config);
    h.up.putBlob('myorg/app', upstreamOnly.layer);
    h.up.putManifest('myorg/app', upstreamOnly.manifest, OCI_MANIFEST, '1.0');
    // The upstream also has a sha-1 tag, naming something else: the pushed one wins.
    h.up.putManifest('myorg/app', upstreamOnly.manifest, OCI_MANIFEST, 'sha-1');
    const mine = await req(`/v2/myorg/app/manifests/sha-1?ns=${HOST}`);
    expect(mine.headers.get('docker-content-digest')).toBe(pushed.digest);
    expect(mine.headers.get('oci-namespace')).toBe(HOST);
    const layer = (JSON.parse(pushed.manifest.toString()) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
    expect((await req(`/v2/myorg/app/blobs/${layer}?ns=${HOST}`)).status).toBe(200);
    expect(h.up.requests).toEqual([]);
    const theirs = await req(`/v2/myorg/app/manifests/1.0?ns=${HOST}`);
    expect(theirs.headers.get('docker-content-digest')).toBe(sha(upstreamOnly.manifest));
    expect(h.up.count('GET', 'manifest')).toBe(1);
    const tags = (await (await req(`/v2/myorg/app/tags/list?ns=${HOST}`)).json()) as { tags: string[] };
    expect(tags.tags).toEqual(['1.0', 'sha-1']);
  });

  it('regcache\'s own registry names address hosted repositories (?ns= and path prefix)', async () => {
    await start({ hosted: { names: ['regcache.local:5000'] } }, true);
    const img = await image('regcache.local:5000/team/app', 'v1');
    expect((await req('/v2/team/app/manifests/v1?ns=regcache.local:5000')).headers.get('docker-content-digest')).toBe(img.digest);
    expect((await req('/v2/team/app/manifests/v1')).headers.get('docker-content-digest')).toBe(img.digest);
    expect(await code(await req('/v2/other/app/manifests/v1?ns=regcache.local:5000'))).toBe('404 NAME_UNKNOWN');
    expect(h.up.requests).toEqual([]);
  });

  it('permissions: anonymous is asked to log in (401 Basic), a known user without the right gets 403 DENIED', async () => {
    await start();
    const anon = await req('/v2/team/app/blobs/uploads/', { method: 'POST' });
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toBe('Basic realm="regcache"');
    expect(await code(await req('/v2/team/app/blobs/uploads/', { method: 'POST', user: 'reader' }))).toBe('403 DENIED');
    const wrong = await req('/v2/team/app/blobs/uploads/', { method: 'POST', headers: { authorization: `Basic ${Buffer.from('pusher:bad').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    // Pushes by the push user, pulls by the pull-only user.
    const img = await image('team/app', 'v1');
    expect((await req('/v2/team/app/manifests/v1', { user: 'reader' })).status).toBe(200);
    expect((await req('/v2/team/app/manifests/v1')).status).toBe(401);
    // Delete needs delete.
    expect(await code(await req(`/v2/team/app/manifests/${img.digest}`, { method: 'DELETE', user: 'pusher' }))).toBe('403 DENIED');
    expect((await req(`/v2/team/app/manifests/${img.digest}`, { method: 'DELETE', user: 'deleter' })).status).toBe(202);
    // Anonymous push only where a rule says so.
    const pub = imageParts('public');
    expect((await req(`/v2/team/public/app/blobs/uploads/?digest=${sha(pub.layer)}`, { method: 'POST', body: pub.layer })).status).toBe(201);
    expect((await req(`/v2/team/public/app/blobs/${sha(pub.layer)}`)).status).toBe(200);
    // Mount from a repository the caller may not pull: a new upload instead (202), not a 201.
    await blob('team/secret', Buffer.from('secret layer'));
    const mount = await req(`/v2/team/public/app/blobs/uploads/?mount=${sha(Buffer.from('secret layer'))}&from=team/secret`, { method: 'POST' });
    expect(mount.status).toBe(202);
    const mounted = await req(`/v2/team/other/blobs/uploads/?mount=${sha(Buffer.from('secret layer'))}&from=team/secret`, { method: 'POST', user: 'pusher' });
    expect(mounted.status).toBe(201);
  });

  it('the catalog lists only what the caller may pull; catalog.anonymous: false needs a login', async () => {
    await start();
    await image('team/app', 'v1');
    await image('team/public/app', 'v1');
    expect(await (await req('/v2/_catalog', { user: 'reader' })).json()).toEqual({ repositories: ['team/app', 'team/public/app'] });
    expect(await (await req('/v2/_catalog')).json()).toEqual({ repositories: ['team/public/app'] });
    // An empty Basic pair (containers/image after a challenge, without credentials) is anonymous, not a bad login.
    expect(await (await req('/v2/_catalog', { headers: { authorization: 'Basic Og==' } })).json()).toEqual({ repositories: ['team/public/app'] });
    await h.close();
    await start({ catalog: { anonymous: false } });
    expect((await req('/v2/_catalog')).status).toBe(401);
  });

  it('the dev namespace of docs/hosted.md: an empty htpasswd, anonymous push by rule; /v2/ is open, other names 403', async () => {
    const empty = join(dir, 'empty-htpasswd');
    writeFileSync(empty, '');
    h = await startProxy({ hostedRepositories: { 'dev/**': {}, 'team/**': {} }, auth: { htpasswd: empty, anonymousPull: true, rules: [{ users: ['anonymous'], repositories: ['dev/**'], actions: ['push'] }] } });
    base = `http://127.0.0.1:${h.app.mainPort}`;
    expect((await req('/v2/')).status).toBe(200);
    const bytes = Buffer.from('dev layer');
    expect((await req(`/v2/dev/app/blobs/uploads/?digest=${sha(bytes)}`, { method: 'POST', body: bytes })).status).toBe(201);
    expect(await code(await req(`/v2/team/app/blobs/uploads/?digest=${sha(bytes)}`, { method: 'POST', body: bytes }))).toBe('403 DENIED');
  });

  it('without auth nobody may write: 403 DENIED naming auth.rules', async () => {
    h = await startProxy({ hostedRepositories: { 'team/**': {} } });
    base = `http://127.0.0.1:${h.app.mainPort}`;
    const r = await req('/v2/team/app/blobs/uploads/', { method: 'POST' });
    expect(r.status).toBe(403);
    // Credentials sent to a regcache without users change nothing: pulls still work (no 401).
    expect((await req('/v2/team/app/tags/list', { user: 'someone' })).status).toBe(200);
    expect(((await r.json()) as { errors: Array<{ message: string }> }).errors[0]!.message).toContain('auth.rules');
  });
});
