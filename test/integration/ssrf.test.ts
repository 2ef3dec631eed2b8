/**
 * Outbound request safety (issue 10 items 8, 9, 16): an upstream cannot make regcache talk to
 * loopback (or other refused addresses) through a redirect or a token realm, a manifest redirect
 * stays on the registry's host, Basic credentials never go in cleartext to a realm of an https
 * upstream, and a trickled manifest or token answer ends at `upstreamTimeouts.manifestTotal`.
 *
 * The "trap" is a second scripted server on 127.0.0.1 that counts every connection: a refused
 * redirect or realm must leave it at zero.
 */
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  cleanupAll, httpProbe, makeImage, makeLayer, runChecked, stopAllChildren, tmpDir,
  type Image, type ProbeResponse, type Regcache,
} from '../helpers/index.js';
import { startRegcache } from '../helpers/regcache.js';
import { sendStatus, serveImages, startHostileUpstream, type HostileUpstream } from '../helpers/hostile-upstream.js';

const SECRET = 's3cret-upstream-password';
const TOTAL_MS = 3_000;

let hostile: HostileUpstream;
let tlsHostile: HostileUpstream;
let trap: HostileUpstream;
let rc: Regcache;
let trapImg: Image;

beforeAll(async () => {
  const dir = tmpDir('regcache-ssrf-tls-');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await runChecked('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  hostile = await startHostileUpstream();
  tlsHostile = await startHostileUpstream({ tls: { cert, key } });
  trap = await startHostileUpstream();
  trapImg = makeImage({ format: 'oci', layers: [makeLayer({ 'trap.txt': 'served by the trap' })] });
  rc = await startRegcache({
    config: {
      cache: { tagTTL: '1h' },
      upstreams: {
        // Each name is its own client (its own learnt token realm), all on the hostile server.
        'ssrf.example': { url: hostile.url },
        'allowed.example': { url: hostile.url, allowedHosts: ['127.0.0.1', 'localhost'] },
        'realm.example': { url: hostile.url, username: 'robot', password: SECRET },
        'realm-localhost.example': { url: hostile.url, username: 'robot', password: SECRET },
        'realm-allowed.example': { url: hostile.url, allowedHosts: ['127.0.0.0/8'] },
        'basic-http.example': { url: hostile.url, username: 'robot', password: SECRET, allowedHosts: ['127.0.0.1'] },
        'slowtoken.example': { url: hostile.url },
        'tls.example': { url: tlsHostile.url, ca: cert, username: 'robot', password: SECRET, allowedHosts: ['127.0.0.1'] },
      },
      upstreamTimeouts: { manifestTotal: `${TOTAL_MS / 1000}s` },
      // Failures here are about single answers, not about the health detector.
      upstreamHealth: { maxFails: 1000, failTimeout: '1s' },
    },
  });
});

afterAll(async () => {
  await rc?.stop();
  await hostile?.close();
  await tlsHostile?.close();
  await trap?.close();
  await stopAllChildren();
  await cleanupAll();
});

beforeEach(() => {
  for (const s of [hostile, tlsHostile, trap]) {
    s.reset();
    s.handle((_req, res) => sendStatus(res, 404, {}, 'NAME_UNKNOWN'));
  }
  trap.handle(serveImages([{ repo: 'trap', tag: 'v1', image: trapImg }]));
});

const get = (path: string, opts: Parameters<typeof httpProbe>[1] = {}): Promise<ProbeResponse> => httpProbe(`${rc.url}${path}`, { timeoutMs: 15_000, ...opts });
const pathOf = (req: IncomingMessage): string => (req.url ?? '/').split('?')[0]!;
const ociError = (r: ProbeResponse): { code?: string; message?: string } => {
  try {
    return (JSON.parse(r.body.toString('utf8')) as { errors: Array<{ code: string; message: string }> }).errors[0] ?? {};
  } catch {
    return {};
  }
};

/** Answers /v2/app/<kind>/<ref> with a 307 to the same kind of object on the trap, under `origin`. */
const redirectTo = (origin: string) => (req: IncomingMessage, res: ServerResponse): void => {
  const m = /^\/v2\/app\/(manifests|blobs|referrers)\/([^/]+)$|^\/v2\/app\/(tags)\/list$/.exec(pathOf(req));
  if (!m) return sendStatus(res, 404);
  const where = m[3] ? '/v2/trap/tags/list' : `/v2/trap/${m[1]}/${m[2]}`;
  res.writeHead(307, { location: `${origin}${where}`, 'content-length': 0 });
  res.end();
};

describe('redirects', () => {
  it.each([
    ['127.0.0.1'], ['localhost'], ['[::1]'], ['2130706433'], ['0x7f.1'], ['[::ffff:127.0.0.1]'], ['0.0.0.0'],
  ])('to %s: manifest, blob, referrers and tag-list redirects are refused with 502 and the trap is never contacted', async (host) => {
    const origin = `http://${host}:${trap.port}`;
    hostile.handle(redirectTo(origin));
    const shownHost = new URL(origin).host; // what the error names: 2130706433 is 127.0.0.1 by then
    for (const path of [
      '/v2/ssrf.example/app/manifests/v1',
      `/v2/ssrf.example/app/blobs/${trapImg.layers[0]!.digest}`,
      `/v2/ssrf.example/app/referrers/${trapImg.digest}`,
      '/v2/ssrf.example/app/tags/list',
    ]) {
      const r = await get(path);
      const e = ociError(r);
      expect(r.status, `${path}: ${r.body.toString('utf8')}`).toBe(502);
      expect(e.code, path).toBe('UPSTREAM_ERROR');
      expect(e.message, path).toContain(shownHost);
      expect(e.message, path).toMatch(/ which is refused: /);
    }
    expect(hostile.count('GET', /^\/v2\/app\//)).toBe(4);
    expect(trap.requests).toEqual([]);
    expect(trap.connections).toBe(0);
  });

  it('the trap manifest is neither served nor stored: once the upstream answers honestly, its own content is served', async () => {
    hostile.handle(redirectTo(`http://127.0.0.1:${trap.port}`));
    expect((await get('/v2/ssrf.example/app/manifests/stored')).status).toBe(502);
    const own = makeImage({ format: 'oci', layers: [makeLayer({ 'own.txt': 'the upstream itself' })] });
    hostile.handle(serveImages([{ repo: 'app', tag: 'stored', image: own }]));
    const r = await get('/v2/ssrf.example/app/manifests/stored');
    expect(r.status).toBe(200);
    expect(r.headers['docker-content-digest']).toBe(own.digest);
    // By digest, the trap's manifest is not in the cache either.
    hostile.handle((_req, res) => sendStatus(res, 404, {}, 'MANIFEST_UNKNOWN'));
    expect((await get(`/v2/ssrf.example/app/manifests/${trapImg.digest}`)).status).toBe(404);
    expect(trap.connections).toBe(0);
  });

  it('with allowedHosts: a blob redirect to an allowed loopback host is followed; manifests still stay on the upstream host', async () => {
    const layer = trapImg.layers[0]!;
    hostile.handle(redirectTo(`http://localhost:${trap.port}`));
    const blob = await get(`/v2/allowed.example/app/blobs/${layer.digest}`);
    expect(blob.status).toBe(200);
    expect(blob.body.equals(layer.bytes)).toBe(true);
    expect(trap.count('GET', `/v2/trap/blobs/${layer.digest}`)).toBe(1);

    // localhost is allowed as an address, but it is not the upstream's host (127.0.0.1).
    for (const path of ['/v2/allowed.example/app/manifests/v1', '/v2/allowed.example/app/tags/list']) {
      const r = await get(path);
      expect(r.status, path).toBe(502);
      expect(ociError(r).message, path).toContain(`redirects are only followed on 127.0.0.1`);
    }
    expect(trap.count('*', /manifests|tags/)).toBe(0);

    // Same host, another port, allow-listed: followed.
    hostile.handle(redirectTo(`http://127.0.0.1:${trap.port}`));
    const m = await get('/v2/allowed.example/app/manifests/v1');
    expect(m.status, m.body.toString('utf8')).toBe(200);
    expect(m.headers['docker-content-digest']).toBe(trapImg.digest);
    expect(trap.count('GET', '/v2/trap/manifests/v1')).toBe(1);
  });
});

describe('token realms', () => {
  /** 401 with a Bearer challenge naming `realm` until a request carries `Bearer <token>`; then serves trapImg as app:v1. */
  const challenge = (realm: string, token = 'good-token') => (req: IncomingMessage, res: ServerResponse): void => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      return sendStatus(res, 401, { 'www-authenticate': `Bearer realm="${realm}",service="hostile"` }, 'UNAUTHORIZED');
    }
    serveImages([{ repo: 'app', tag: 'v1', image: trapImg }])(req, res);
  };
  const tokenAnswer = (token = 'good-token') => (req: IncomingMessage, res: ServerResponse): void => {
    if (pathOf(req) !== '/token') return sendStatus(res, 404);
    const body = JSON.stringify({ token, expires_in: 300 });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  it('a realm on loopback is refused (502 naming the realm, never the credentials) and never contacted', async () => {
    trap.handle(tokenAnswer());
    // One upstream per realm: a client remembers the realm it learnt and asks it first next time.
    for (const [upstream, realm] of [['realm.example', `http://127.0.0.1:${trap.port}/token`], ['realm-localhost.example', `http://localhost:${trap.port}/token`]] as const) {
      hostile.handle(challenge(realm));
      const r = await get(`/v2/${upstream}/app/manifests/v1`);
      expect(r.status, r.body.toString('utf8')).toBe(502);
      expect(ociError(r).code).toBe('UPSTREAM_ERROR');
      expect(ociError(r).message).toContain(`token realm ${new URL(realm).host} is refused`);
      expect(r.body.toString('utf8')).not.toContain(SECRET);
      expect(r.body.toString('utf8')).not.toContain(Buffer.from(`robot:${SECRET}`).toString('base64'));
    }
    expect(trap.connections).toBe(0);
    expect(rc.stdout()).not.toContain(SECRET);
  });

  it('allow-listed, the same loopback realm is used', async () => {
    trap.handle(tokenAnswer());
    hostile.handle(challenge(`http://127.0.0.1:${trap.port}/token`));
    const r = await get('/v2/realm-allowed.example/app/manifests/v1');
    expect(r.status, r.body.toString('utf8')).toBe(200);
    expect(r.headers['docker-content-digest']).toBe(trapImg.digest);
    expect(trap.count('GET', /^\/token\?/)).toBe(1);
  });

  it('an https upstream: Basic credentials are not sent to an http realm, even on the same host', async () => {
    trap.handle(tokenAnswer());
    tlsHostile.handle(challenge(`http://127.0.0.1:${trap.port}/token`));
    const r = await get('/v2/tls.example/app/manifests/v1');
    expect(r.status, r.body.toString('utf8')).toBe(200);
    const asked = trap.requests.filter((q) => q.path.startsWith('/token'));
    expect(asked).toHaveLength(1);
    expect(asked[0]!.headers.authorization).toBeUndefined();
  });

  it('a plain-http upstream: its http realm on the same host does get the credentials (nothing to downgrade)', async () => {
    trap.handle(tokenAnswer());
    hostile.handle(challenge(`http://127.0.0.1:${trap.port}/token`));
    const r = await get('/v2/basic-http.example/app/manifests/v1');
    expect(r.status, r.body.toString('utf8')).toBe(200);
    const asked = trap.requests.filter((q) => q.path.startsWith('/token'));
    expect(asked).toHaveLength(1);
    expect(asked[0]!.headers.authorization).toBe(`Basic ${Buffer.from(`robot:${SECRET}`).toString('base64')}`);
  });
});

describe('total deadline for manifests and tokens', () => {
  it(`a manifest trickled at 1 byte a second ends with 504 after upstreamTimeouts.manifestTotal (${TOTAL_MS / 1000} s), and the upstream is cut`, async () => {
    hostile.handle(async (req, res) => {
      if (!pathOf(req).startsWith('/v2/slow/')) return sendStatus(res, 404);
      await hostile.stream(res, 200, { chunk: 1, paceMs: 1_000, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    });
    const started = Date.now();
    const r = await get('/v2/ssrf.example/slow/app/manifests/v1', { timeoutMs: 20_000 });
    const ms = Date.now() - started;
    expect(r.status, r.body.toString('utf8')).toBe(504);
    expect(ociError(r).code).toBe('UPSTREAM_TIMEOUT');
    expect(ms).toBeGreaterThanOrEqual(TOTAL_MS - 200);
    expect(ms).toBeLessThan(TOTAL_MS + 3_000);
    expect(hostile.streams).toHaveLength(1);
    const s = hostile.streams[0]!;
    await new Promise((r2) => setTimeout(r2, 1_500));
    expect(s.closedEarly).toBe(true);
    expect(s.written).toBeLessThan(10);
  });

  it('a token answer trickled at 1 byte a second fails within the deadline instead of holding the client', async () => {
    hostile.handle(async (req, res) => {
      if (pathOf(req) === '/slowtoken') {
        await hostile.stream(res, 200, { chunk: 1, paceMs: 1_000, headers: { 'content-type': 'application/json' } });
        return;
      }
      sendStatus(res, 401, { 'www-authenticate': `Bearer realm="${hostile.url}/slowtoken",service="hostile"` }, 'UNAUTHORIZED');
    });
    const started = Date.now();
    const r = await get('/v2/slowtoken.example/app/manifests/v1', { timeoutMs: 20_000 });
    const ms = Date.now() - started;
    expect(r.status, r.body.toString('utf8')).toBe(504);
    expect(ociError(r).code).toBe('UPSTREAM_TIMEOUT');
    expect(ms).toBeLessThan(TOTAL_MS + 3_000);
  });
});
