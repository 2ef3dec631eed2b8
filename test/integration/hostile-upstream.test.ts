/**
 * Hostile or broken upstreams (a scripted node:http server, test/helpers/hostile-upstream.ts) and requests that
 * try to make regcache talk to hosts it is not configured for: oversized manifests are cut off without being
 * buffered, redirect loops and redirects to other schemes are refused, a foreign tags/list Link is never passed
 * on, manifests that do not match their digest are refused and not stored, and `ns` / path prefixes naming an
 * unconfigured host, an IP address or localhost get 404 without any outbound connection.
 */
import { existsSync, readdirSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  cleanupAll, httpProbe, makeImage, makeLayer, sha256, startConnectionCounter, startRegcache, stopAllChildren, waitUntil,
  type ConnectionCounter, type Image, type ProbeResponse, type Regcache,
} from '../helpers/index.js';
import { sendStatus, serveImages, startHostileUpstream, type HostileUpstream, type StreamOutcome } from '../helpers/hostile-upstream.js';

const H = 'hostile.example';
const MAX_MANIFEST = 64 * 1024;
const TEN_MB = 10 * 1024 * 1024;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let hostile: HostileUpstream;
let sentinel: ConnectionCounter;
let rc: Regcache;
let good: Image;
let other: Image;
let wanted: Image;

beforeAll(async () => {
  hostile = await startHostileUpstream();
  sentinel = await startConnectionCounter();
  good = makeImage({ format: 'oci', layers: [makeLayer({ 'good.txt': 'good image' })] });
  other = makeImage({ format: 'oci', layers: [makeLayer({ 'other.txt': 'another image' })] });
  // Only ever asked for by digest, never served honestly: nothing can make it a cache hit.
  wanted = makeImage({ format: 'oci', layers: [makeLayer({ 'wanted.txt': 'the image the client asks for' })] });
  rc = await startRegcache({
    config: {
      cache: { tagTTL: '1h', maxManifestSize: '64KiB' },
      // No defaultUpstream: a name must route through ns or a configured prefix.
      upstreams: {
        [H]: { url: hostile.url },
        // The same server under other names, so a learnt token realm or a bad answer stays with one client.
        'token.example': { url: hostile.url },
        'drain.example': { url: hostile.url },
        // localhost may be a redirect target here (the address policy refuses loopback by default).
        'loop.example': { url: hostile.url, allowedHosts: ['localhost'] },
        // Configured, never named by any request below: it must see no connection at all.
        'sentinel.example': { url: sentinel.url },
      },
      // Failures here are about single answers, not about the health detector.
      upstreamHealth: { maxFails: 1000, failTimeout: '1s' },
    },
  });
});

afterAll(async () => {
  await rc?.stop();
  await hostile?.close();
  await sentinel?.close();
  await stopAllChildren();
  await cleanupAll();
});

beforeEach(() => {
  hostile.reset();
  hostile.handle((_req, res) => sendStatus(res, 404, {}, 'NAME_UNKNOWN'));
});

const errorCode = (r: ProbeResponse): string | undefined => {
  try {
    return (JSON.parse(r.body.toString('utf8')) as { errors: Array<{ code: string }> }).errors[0]?.code;
  } catch {
    return undefined;
  }
};
const get = (path: string, opts: Parameters<typeof httpProbe>[1] = {}): Promise<ProbeResponse> => httpProbe(`${rc.url}${path}`, opts);
const pathOf = (req: IncomingMessage): string => (req.url ?? '/').split('?')[0]!;
/** One GET that reports whether the body ended cleanly and completely (an aborted response is not an error here). */
interface Outcome { status: number; headers: IncomingMessage['headers']; body: Buffer; complete: boolean; error?: string }
const fetchOutcome = (path: string, timeoutMs = 15_000): Promise<Outcome> => new Promise((resolve) => {
  const req = httpRequest(`${rc.url}${path}`, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
    const chunks: Buffer[] = [];
    let ended = false;
    res.on('data', (c: Buffer) => chunks.push(c));
    res.once('end', () => { ended = true; });
    const finish = (error?: string): void => {
      const body = Buffer.concat(chunks);
      const len = res.headers['content-length'];
      const complete = ended && !res.aborted && error === undefined && (len === undefined || Number(len) === body.length);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body, complete, ...(error ? { error } : {}) });
    };
    res.once('error', (e) => finish(e.message));
    res.once('close', () => finish());
  });
  req.once('timeout', () => req.destroy(new Error('client timeout')));
  req.once('error', (e) => resolve({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false, error: e.message }));
  req.end();
});
/** Waits until a hostile stream ended or was cut, or `ms` passed; the caller asserts on its fields. */
const settled = async (o: StreamOutcome, ms: number): Promise<StreamOutcome> => {
  await waitUntil(() => o.closedEarly || o.completed, { timeoutMs: ms }).catch(() => undefined);
  return o;
};
const metric = async (name: string): Promise<number> => {
  const text = (await get('/metrics')).body.toString('utf8');
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').pop());
  return sum;
};

describe('oversized manifests', () => {
  it.each([
    ['with Content-Length', true],
    ['chunked, without Content-Length', false],
  ])('a 10 MB manifest %s is refused with 502 MANIFEST_INVALID without being read to the end', async (_label, withLength) => {
    hostile.handle(async (req, res) => {
      if (!pathOf(req).startsWith('/v2/big/app/manifests/')) return sendStatus(res, 404);
      await hostile.stream(res, TEN_MB, {
        contentLength: withLength,
        headers: { 'content-type': OCI_MANIFEST },
        // A JSON-ish body of spaces: only its size is wrong.
        fill: 0x20,
      });
    });
    const r = await get(`/v2/${H}/big/app/manifests/${withLength ? 'cl' : 'chunked'}`, { timeoutMs: 15_000 });
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('MANIFEST_INVALID');
    expect(hostile.streams).toHaveLength(1);
    const s = await settled(hostile.streams[0]!, 10_000);
    // regcache hung up long before the end: it did not buffer 10 MB to find out it was too big.
    expect(s.completed).toBe(false);
    expect(s.closedEarly).toBe(true);
    expect(s.written).toBeLessThan(TEN_MB / 2);
    // Nothing was cached: a second request goes upstream again.
    const again = await get(`/v2/${H}/big/app/manifests/${withLength ? 'cl' : 'chunked'}`, { timeoutMs: 15_000 });
    expect(again.status).toBe(502);
    expect(hostile.count('GET', /^\/v2\/big\/app\/manifests\//)).toBe(2);
  });

  it('a manifest just under the limit is still accepted (the limit is not off by a lot)', async () => {
    const padding = 'x'.repeat(MAX_MANIFEST - 1024);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: good.manifest.config, layers: good.manifest.layers, annotations: { pad: padding } }));
    expect(body.length).toBeLessThanOrEqual(MAX_MANIFEST);
    hostile.handle((req, res) => {
      if (pathOf(req) !== '/v2/big/ok/manifests/v1') return sendStatus(res, 404);
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': body.length, 'docker-content-digest': sha256(body) });
      res.end(body);
    });
    const r = await get(`/v2/${H}/big/ok/manifests/v1`);
    expect(r.status).toBe(200);
    expect(r.headers['docker-content-digest']).toBe(sha256(body));
    expect(r.body.equals(body)).toBe(true);
  });
});

describe('redirects', () => {
  /** Answers every request under `prefix` with a redirect to the same path plus one more hop. */
  const loop = (prefix: string, location: (hop: number, req: IncomingMessage) => string, status = 302) => (req: IncomingMessage, res: ServerResponse): void => {
    if (!pathOf(req).startsWith(prefix)) return sendStatus(res, 404);
    const hop = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('hop') ?? '0');
    res.writeHead(status, { location: location(hop + 1, req), 'content-length': 0 });
    res.end();
  };

  it.each([
    ['manifest', '/v2/loop/app/manifests/latest'],
    ['blob', `/v2/loop/app/blobs/${'sha256:' + 'a'.repeat(64)}`],
  ])('a same-origin redirect loop on a %s is cut after a few hops with a 5xx OCI error', async (_kind, path) => {
    hostile.handle(loop('/v2/loop/', (hop, req) => `${pathOf(req)}?hop=${hop}`));
    const r = await get(path.replace('/v2/', `/v2/${H}/`), { timeoutMs: 15_000 });
    expect(r.status).toBeGreaterThanOrEqual(500);
    expect(r.status).toBeLessThan(600);
    expect(errorCode(r)).toMatch(/^(UPSTREAM_ERROR|UNAVAILABLE)$/);
    const hops = hostile.count('*', /^\/v2\/loop\//);
    expect(hops).toBeGreaterThanOrEqual(2);
    expect(hops).toBeLessThanOrEqual(6);
  });

  it('a blob loop that alternates between two origins (127.0.0.1 and an allow-listed localhost) is cut too', async () => {
    hostile.handle(loop('/v2/loop/', (hop, req) => {
      const host = hop % 2 === 0 ? '127.0.0.1' : 'localhost';
      return `http://${host}:${hostile.port}${pathOf(req)}?hop=${hop}`;
    }, 307));
    const r = await get(`/v2/loop.example/loop/app/blobs/sha256:${'c'.repeat(64)}`, { timeoutMs: 15_000 });
    expect(r.status).toBeGreaterThanOrEqual(500);
    expect(r.status).toBeLessThan(600);
    const hops = hostile.count('*', /^\/v2\/loop\//);
    expect(hops).toBeGreaterThanOrEqual(2);
    expect(hops).toBeLessThanOrEqual(6);
    expect(hostile.requests.some((q) => q.headers.host === `localhost:${hostile.port}`)).toBe(true);
  });

  it('a manifest redirect to another host name is refused at the first hop, allow-listed or not', async () => {
    hostile.handle(loop('/v2/loop/', (hop, req) => `http://localhost:${hostile.port}${pathOf(req)}?hop=${hop}`, 307));
    for (const upstream of [H, 'loop.example']) {
      hostile.reset();
      const r = await get(`/v2/${upstream}/loop/app/manifests/latest`, { timeoutMs: 15_000 });
      expect(r.status, upstream).toBe(502);
      expect(errorCode(r), upstream).toBe('UPSTREAM_ERROR');
      expect(hostile.count('*', /^\/v2\/loop\//), upstream).toBe(1);
    }
  });

  it.each([
    ['file:', () => 'file:///etc/passwd'],
    ['ftp: (to the sentinel)', () => `ftp://127.0.0.1:${sentinel.port}/x`],
    ['data:', () => 'data:application/json,{"schemaVersion":2}'],
    ['gopher:', () => `gopher://127.0.0.1:${sentinel.port}/_GET`],
    ['credentials in the URL', () => `http://user:pw@127.0.0.1:${hostile.port}/v2/elsewhere/manifests/latest`],
  ])('a redirect to %s is refused with a 5xx OCI error and not followed', async (_label, target) => {
    const before = sentinel.connections;
    hostile.handle((req, res) => {
      if (pathOf(req).startsWith('/v2/elsewhere/')) {
        // Only reached if the redirect with credentials was followed.
        res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': good.bytes.length, 'docker-content-digest': good.digest });
        res.end(good.bytes);
        return;
      }
      if (!pathOf(req).startsWith('/v2/scheme/')) return sendStatus(res, 404);
      res.writeHead(302, { location: target(), 'content-length': 0 });
      res.end();
    });
    for (const path of ['/v2/scheme/app/manifests/latest', `/v2/scheme/app/blobs/sha256:${'b'.repeat(64)}`]) {
      const r = await get(path.replace('/v2/', `/v2/${H}/`));
      expect(r.status, path).toBeGreaterThanOrEqual(500);
      expect(r.status, path).toBeLessThan(600);
      expect(errorCode(r), path).toBe('UPSTREAM_ERROR');
      expect(r.body.toString('utf8')).not.toContain('root:');
    }
    expect(hostile.count('*', /^\/v2\/elsewhere\//)).toBe(0);
    expect(sentinel.connections).toBe(before);
  });
});

describe('tags/list Link header', () => {
  const tagsWithLink = (link: string) => (req: IncomingMessage, res: ServerResponse): void => {
    if (pathOf(req) !== '/v2/team/app/tags/list') return sendStatus(res, 404);
    const body = JSON.stringify({ name: 'team/app', tags: ['a', 'b'] });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), link });
    res.end(body);
  };

  it('a Link to another host is rewritten to point at regcache, keeping only n and last (path prefix)', async () => {
    hostile.handle(tagsWithLink('<http://evil.example.com:6666/v2/other/repo/tags/list?n=2&last=b&token=secret>; rel="next"'));
    const r = await get(`/v2/${H}/team/app/tags/list?n=2`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString('utf8'))).toEqual({ name: `${H}/team/app`, tags: ['a', 'b'] });
    expect(r.headers.link).toBe(`</v2/${H}/team/app/tags/list?n=2&last=b>; rel="next"`);
    // The query regcache sent upstream carried the client's n.
    expect(hostile.requests.some((q) => q.path === '/v2/team/app/tags/list?n=2')).toBe(true);
  });

  it('with ?ns= the rewritten Link keeps ns so the next page routes the same way', async () => {
    hostile.handle(tagsWithLink('<https://evil.example.com/v2/team/app/tags/list?last=b&n=2>; rel="next"'));
    const r = await get(`/v2/team/app/tags/list?n=2&ns=${H}`);
    expect(r.status).toBe(200);
    expect(r.headers['oci-namespace']).toBe(H);
    expect(r.headers.link).toBe(`</v2/team/app/tags/list?n=2&last=b&ns=${H}>; rel="next"`);
  });

  it('a hostile `last` cannot smuggle a second link or a foreign URL into the header', async () => {
    const evilLast = encodeURIComponent('b>; rel="next", <http://evil.example.com/x');
    hostile.handle(tagsWithLink(`</v2/team/app/tags/list?n=2&last=${evilLast}>; rel="next"`));
    const r = await get(`/v2/${H}/team/app/tags/list?n=2`);
    expect(r.status).toBe(200);
    const link = String(r.headers.link ?? '');
    if (link !== '') {
      expect(link).toMatch(/^<\/v2\/[^<>]*>; rel="next"$/);
      expect(link).not.toContain('://');
      expect(link.split('<').length).toBe(2);
    }
  });

  it('a Link without rel="next" is not passed on', async () => {
    hostile.handle(tagsWithLink('<http://evil.example.com/v2/team/app/tags/list?n=2&last=b>; rel="prev"'));
    const r = await get(`/v2/${H}/team/app/tags/list?n=2`);
    expect(r.status).toBe(200);
    expect(r.headers.link).toBeUndefined();
  });
});

describe('manifests that do not match their digest', () => {
  it('sanity: an honest manifest by tag is cached (a later GET by digest does not go upstream)', async () => {
    hostile.handle(serveImages([{ repo: 'honest/app', tag: 'v1', image: good }]));
    const r = await get(`/v2/${H}/honest/app/manifests/v1`);
    expect(r.status).toBe(200);
    expect(r.headers['docker-content-digest']).toBe(good.digest);
    const before = hostile.requests.length;
    const byDigest = await get(`/v2/${H}/honest/app/manifests/${good.digest}`);
    expect(byDigest.status).toBe(200);
    expect(sha256(byDigest.body)).toBe(good.digest);
    expect(hostile.requests.length).toBe(before);
  });

  it('by digest: other bytes than asked for are refused (502 MANIFEST_INVALID), counted, and not stored', async () => {
    // Asked for `wanted`, the upstream sends `other` (a perfectly valid manifest, just not this one) and even
    // claims the right digest in its header.
    hostile.handle((req, res) => {
      if (pathOf(req) !== `/v2/liar/app/manifests/${wanted.digest}`) return sendStatus(res, 404, {}, 'MANIFEST_UNKNOWN');
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': other.bytes.length, 'docker-content-digest': wanted.digest });
      res.end(req.method === 'HEAD' ? undefined : other.bytes);
    });
    const mismatches = await metric('regcache_digest_mismatches_total');
    const r = await get(`/v2/${H}/liar/app/manifests/${wanted.digest}`);
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('MANIFEST_INVALID');
    expect(r.body.includes(other.bytes)).toBe(false);
    expect(await metric('regcache_digest_mismatches_total')).toBe(mismatches + 1);
    const again = await get(`/v2/${H}/liar/app/manifests/${wanted.digest}`);
    expect(again.status).toBe(502);
    expect(hostile.count('GET', `/v2/liar/app/manifests/${wanted.digest}`)).toBe(2);
    // The wrong bytes were not stored under their own digest either: asking for them goes upstream (which
    // now says it has no such manifest).
    const viaOther = await get(`/v2/${H}/liar/app/manifests/${other.digest}`);
    expect(viaOther.status).toBe(404);
    expect(hostile.count('GET', `/v2/liar/app/manifests/${other.digest}`)).toBe(1);
  });

  it('by tag: a body that does not match the Docker-Content-Digest the upstream announced is refused and not stored', async () => {
    hostile.handle((req, res) => {
      if (pathOf(req) !== '/v2/liar2/app/manifests/v1') return sendStatus(res, 404);
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': other.bytes.length, 'docker-content-digest': good.digest });
      res.end(req.method === 'HEAD' ? undefined : other.bytes);
    });
    const r = await get(`/v2/${H}/liar2/app/manifests/v1`);
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('MANIFEST_INVALID');
    const again = await get(`/v2/${H}/liar2/app/manifests/v1`);
    expect(again.status).toBe(502);
    expect(hostile.count('GET', '/v2/liar2/app/manifests/v1')).toBe(2);
  });
});

describe('requests naming hosts that are not configured upstreams', () => {
  const name = 'team/app';
  const digest = `sha256:${'c'.repeat(64)}`;
  const cases: Array<[string, () => string]> = [
    ['ns=evil.example.com', () => `/v2/${name}/manifests/latest?ns=evil.example.com`],
    ['ns=localhost', () => `/v2/${name}/manifests/latest?ns=localhost`],
    ['ns=127.0.0.1', () => `/v2/${name}/manifests/latest?ns=127.0.0.1`],
    ['ns=<sentinel ip:port>', () => `/v2/${name}/manifests/latest?ns=127.0.0.1:${sentinel.port}`],
    ['ns=localhost:<sentinel port>', () => `/v2/${name}/manifests/latest?ns=localhost:${sentinel.port}`],
    ['ns=[::1]', () => `/v2/${name}/manifests/latest?ns=${encodeURIComponent('[::1]')}`],
    ['ns=localhost (blob)', () => `/v2/${name}/blobs/${digest}?ns=localhost`],
    ['ns=127.0.0.1 (tags/list)', () => `/v2/${name}/tags/list?ns=127.0.0.1`],
    ['prefix evil.example.com', () => `/v2/evil.example.com/${name}/manifests/latest`],
    ['prefix localhost', () => `/v2/localhost/${name}/manifests/latest`],
    ['prefix 127.0.0.1', () => `/v2/127.0.0.1/${name}/manifests/latest`],
    ['prefix <sentinel ip:port>', () => `/v2/127.0.0.1:${sentinel.port}/${name}/manifests/latest`],
    ['prefix localhost:<sentinel port> (blob)', () => `/v2/localhost:${sentinel.port}/${name}/blobs/${digest}`],
    ['prefix 127.0.0.1 (tags/list)', () => `/v2/127.0.0.1/${name}/tags/list`],
  ];
  it.each(cases)('%s -> 404 NAME_UNKNOWN, no outbound connection', async (label, path) => {
    const hostileBefore = hostile.connections;
    // `host:port/...` is not a valid repository name, and regcache checks the grammar before routing:
    // 400 NAME_INVALID is as good an answer there, as long as nothing is contacted.
    const grammarFirst = label.startsWith('prefix') && path().includes(':');
    for (const method of ['GET', 'HEAD']) {
      const r = await get(path(), { method });
      if (grammarFirst) expect([400, 404], `${method} ${path()}`).toContain(r.status);
      else expect(r.status, `${method} ${path()}`).toBe(404);
      if (method === 'GET') expect(errorCode(r)).toBe(r.status === 400 ? 'NAME_INVALID' : 'NAME_UNKNOWN');
    }
    expect(sentinel.connections).toBe(0);
    expect(hostile.connections).toBe(hostileBefore);
  });
});

describe('broken bodies and greedy answers', () => {
  it.each([
    ['manifest', '/v2/cut/app/manifests/v1'],
    ['tags/list', '/v2/cut/app/tags/list'],
    ['referrers', `/v2/cut/app/referrers/sha256:${'d'.repeat(64)}`],
  ])('an upstream that hangs up in the middle of a %s body gets a 502 UPSTREAM_ERROR (not a 500 INTERNAL)', async (_kind, path) => {
    hostile.handle((req, res) => {
      if (pathOf(req) !== path) return sendStatus(res, 404);
      const type = path.includes('/manifests/') ? OCI_MANIFEST : 'application/json';
      res.writeHead(200, { 'content-type': type, 'content-length': good.bytes.length, 'docker-content-digest': good.digest });
      res.write(good.bytes.subarray(0, Math.floor(good.bytes.length / 2)), () => res.socket?.destroy());
    });
    const before = rc.logs().filter((l) => l.msg === 'internal error').length;
    const r = await get(path.replace('/v2/', `/v2/${H}/`));
    expect(r.status, r.body.toString('utf8')).toBe(502);
    expect(errorCode(r)).toBe('UPSTREAM_ERROR');
    expect(rc.logs().filter((l) => l.msg === 'internal error').length).toBe(before);
    // Nothing half-read was kept: a second request goes upstream again.
    await get(path.replace('/v2/', `/v2/${H}/`));
    expect(hostile.count('GET', path)).toBe(2);
  });

  it('a chunked blob whose bytes do not match its digest: every client is aborted, nothing is stored, it is counted', async () => {
    const blob = makeLayer({ randomBytes: 2 * 1024 * 1024, seed: 'hostile-chunked' });
    const wrong = Buffer.from(blob.bytes);
    wrong[wrong.length - 10]! ^= 0xff;
    hostile.handle((req, res) => {
      if (pathOf(req) !== `/v2/chunky/app/blobs/${blob.digest}`) return sendStatus(res, 404);
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no Content-Length: chunked
      let off = 0;
      const step = (): void => {
        if (off >= wrong.length) return void res.end();
        const n = Math.min(256 * 1024, wrong.length - off);
        res.write(wrong.subarray(off, off + n));
        off += n;
        setTimeout(step, 5);
      };
      step();
    });
    const mismatches = await metric('regcache_digest_mismatches_total');
    const outcomes = await Promise.all(Array.from({ length: 4 }, () => fetchOutcome(`/v2/${H}/chunky/app/blobs/${blob.digest}`)));
    for (const o of outcomes) {
      // Chunked to the client too (no Content-Length to hold a byte back from): it may have seen every byte,
      // but never the terminating chunk, so it cannot take the blob for complete.
      expect(o.complete, `status ${o.status}, ${o.body.length} bytes, ${o.error ?? 'no error'}`).toBe(false);
    }
    expect(await metric('regcache_digest_mismatches_total')).toBeGreaterThanOrEqual(mismatches + 1);
    const hex = blob.digest.slice('sha256:'.length);
    expect(existsSync(join(rc.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex))).toBe(false);
    await waitUntil(() => readdirSync(join(rc.dataDir, 'tmp')).length === 0, { timeoutMs: 5_000, message: 'temp files left behind' });
  });

  it('a Range request on a chunked blob (size unknown) gets the whole blob with 200, not a hang', async () => {
    const blob = makeLayer({ randomBytes: 1024 * 1024, seed: 'hostile-chunked-range' });
    hostile.handle((req, res) => {
      if (pathOf(req) !== `/v2/chunky/range/blobs/${blob.digest}`) return sendStatus(res, 404);
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no Content-Length: chunked
      res.end(blob.bytes);
    });
    const r = await get(`/v2/${H}/chunky/range/blobs/${blob.digest}`, { headers: { range: 'bytes=1000-' }, timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    expect(r.body.equals(blob.bytes)).toBe(true);
  });

  it('a token endpoint that answers with an endless body is not buffered', async () => {
    const HUGE = 64 * 1024 * 1024;
    hostile.handle(async (req, res) => {
      if (pathOf(req) === '/token') {
        await hostile.stream(res, HUGE, { contentLength: false, headers: { 'content-type': 'application/json' }, paceMs: 1 });
        return;
      }
      if (!pathOf(req).startsWith('/v2/tok/')) return sendStatus(res, 404);
      sendStatus(res, 401, { 'www-authenticate': `Bearer realm="${hostile.url}/token",service="hostile"` }, 'UNAUTHORIZED');
    });
    const r = await get('/v2/token.example/tok/app/manifests/v1', { timeoutMs: 20_000 });
    expect(r.status).toBeGreaterThanOrEqual(500);
    expect(r.status).toBeLessThan(600);
    expect(hostile.streams).toHaveLength(1);
    const s = await settled(hostile.streams[0]!, 10_000);
    expect(s.completed, `regcache read the whole ${HUGE}-byte token answer`).toBe(false);
    expect(s.closedEarly).toBe(true);
    expect(s.written).toBeLessThan(16 * 1024 * 1024);
  });

  it('an error answer with an endless body: the client gets the error at once and the upstream body is not read forever', async () => {
    hostile.handle(async (req, res) => {
      if (!pathOf(req).startsWith('/v2/endless/')) return sendStatus(res, 404);
      await hostile.stream(res, 1024 * 1024 * 1024, { status: 503, contentLength: false, headers: { 'content-type': 'application/json', 'retry-after': '1' }, paceMs: 2 });
    });
    const started = Date.now();
    const r = await get('/v2/drain.example/endless/app/manifests/v1');
    expect(r.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(hostile.streams).toHaveLength(1);
    const s = await settled(hostile.streams[0]!, 5_000);
    expect(s.closedEarly, `regcache still reading the endless 503 body 5 s after answering (${s.written} bytes so far)`).toBe(true);
    expect(s.written).toBeLessThan(64 * 1024 * 1024);
  });
});
