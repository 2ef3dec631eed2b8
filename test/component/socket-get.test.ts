/**
 * The blob GET transport (src/upstream/socket-get.ts) against scripted servers: framing,
 * keep-alive reuse, the retry of a request on a connection the server closed while idle,
 * timeouts, aborts, premature ends, and TLS. No system tools (the TLS certificate is a
 * test-only fixture for 127.0.0.1).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamError } from '../../src/upstream/errors.js';
import { UpstreamClient } from '../../src/upstream/client.js';
import { SocketBody } from '../../src/upstream/socket-body.js';
import { SocketGetPool } from '../../src/upstream/socket-get.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const CERT = readFileSync(join(FIXTURES, 'test-only-127.0.0.1.crt'), 'utf8');
const KEY = readFileSync(join(FIXTURES, 'test-only-127.0.0.1.key'), 'utf8');

const TIMEOUTS = { connect: 2_000, headers: 500, idle: 400 };

/** What the scripted server does with one request: write these pieces (ms apart), then maybe close. */
type Script = (req: string, sock: Socket) => void;

interface Scripted {
  url: string;
  connections: number;
  requests: string[];
  server: Server;
  sockets: Set<Socket>;
}

const servers: Scripted[] = [];
const pools: SocketGetPool[] = [];

afterEach(async () => {
  for (const p of pools.splice(0)) p.destroy();
  for (const s of servers.splice(0)) {
    for (const c of s.sockets) c.destroy();
    await new Promise<void>((resolve) => s.server.close(() => resolve()));
  }
});

async function scripted(script: Script, tls = false): Promise<Scripted> {
  const state: Scripted = { url: '', connections: 0, requests: [], server: undefined as unknown as Server, sockets: new Set() };
  const onConnection = (sock: Socket): void => {
    state.connections++;
    state.sockets.add(sock);
    sock.on('close', () => state.sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        const req = buf.slice(0, i);
        buf = buf.slice(i + 4);
        state.requests.push(req);
        script(req, sock);
      }
    });
  };
  const server = tls ? createTlsServer({ cert: CERT, key: KEY }, onConnection) : createNetServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.server = server;
  state.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  servers.push(state);
  return state;
}

function pool(opts: { ca?: string[]; rejectUnauthorized?: boolean } = {}): SocketGetPool {
  const p = new SocketGetPool({ timeouts: TIMEOUTS, tls: { rejectUnauthorized: opts.rejectUnauthorized ?? true, ...(opts.ca ? { ca: opts.ca } : {}) } });
  pools.push(p);
  return p;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Reads a body as a stream. */
async function readStream(body: SocketBody): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Reads a body lent: copies each view (as the fill does), optionally pausing for `pauseMs` after the first piece. */
function readLent(body: SocketBody, pauseMs = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let first = true;
    body.once('end', () => resolve(Buffer.concat(parts)));
    body.once('error', reject);
    const flow = body.lend({
      data(buf, start, end) {
        parts.push(Buffer.from(buf.subarray(start, end)));
        if (first && pauseMs > 0) {
          first = false;
          flow.pause();
          setTimeout(() => flow.resume(), pauseMs);
        }
      },
    });
  });
}

const ok = (body: Buffer, extra = ''): Buffer => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n`), body]);

describe('socket-get: blob GETs with one reused read buffer', () => {
  it('a Content-Length body, lent and as a stream; the connection is reused for the next GET', async () => {
    const blob = randomBytes(3 * 1024 * 1024 + 7);
    const srv = await scripted((_req, sock) => {
      sock.write(ok(blob));
    });
    const p = pool();
    const a = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/x`), headers: { 'user-agent': 't' } });
    expect(a.status).toBe(200);
    expect(a.headers['content-length']).toBe(String(blob.length));
    expect(sha(await readLent(a.body))).toBe(sha(blob));
    const b = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/y`), headers: {} });
    expect(sha(await readStream(b.body))).toBe(sha(blob));
    expect(srv.connections).toBe(1);
    expect(srv.requests[0]).toMatch(/^GET \/v2\/a\/blobs\/x HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nuser-agent: t$/);
  });

  it('chunked and close-delimited bodies; a close-delimited answer is not reused', async () => {
    const blob = randomBytes(200_000);
    const srv = await scripted((req, sock) => {
      if (req.includes('/chunked')) {
        sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        for (let at = 0; at < blob.length; at += 30_000) {
          const piece = blob.subarray(at, at + 30_000);
          sock.write(`${piece.length.toString(16)}\r\n`);
          sock.write(piece);
          sock.write('\r\n');
        }
        sock.write('0\r\n\r\n');
      } else {
        sock.write('HTTP/1.1 200 OK\r\n\r\n');
        sock.end(blob);
      }
    });
    const p = pool();
    const c = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/chunked`), headers: {} });
    expect(c.headers['content-length']).toBeUndefined();
    expect(sha(await readLent(c.body))).toBe(sha(blob));
    const d = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/close`), headers: {} });
    expect(sha(await readStream(d.body))).toBe(sha(blob));
    await p.get({ url: new URL(`${srv.url}/v2/a/blobs/chunked`), headers: {} }).then((r) => readLent(r.body));
    // chunked, then close-delimited on the same connection; the third needed a new one.
    expect(srv.connections).toBe(2);
  });

  it('a request on an idle connection the server has closed is sent again on a new connection', async () => {
    const blob = randomBytes(1000);
    const srv = await scripted((_req, sock) => {
      sock.write(ok(blob));
    });
    const p = pool();
    await p.get({ url: new URL(`${srv.url}/v2/a/blobs/1`), headers: {} }).then((r) => readLent(r.body));
    // The server drops its side without a word (as an idle timeout on its side does).
    for (const s of srv.sockets) s.destroy();
    const again = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/2`), headers: {} });
    expect(sha(await readLent(again.body))).toBe(sha(blob));
    expect(srv.connections).toBe(2);
  });

  it('bytes after the end of a body: the connection is not reused', async () => {
    const blob = randomBytes(5000);
    const srv = await scripted((_req, sock) => {
      sock.write(Buffer.concat([ok(blob), Buffer.from('garbage')]));
    });
    const p = pool();
    expect(sha(await readLent((await p.get({ url: new URL(`${srv.url}/v2/a/blobs/1`), headers: {} })).body))).toBe(sha(blob));
    expect(sha(await readLent((await p.get({ url: new URL(`${srv.url}/v2/a/blobs/2`), headers: {} })).body))).toBe(sha(blob));
    expect(srv.connections).toBe(2);
  });

  it('no headers in time: a timeout error; a body that stalls while read: the body errors with a timeout; a paused reader is not timed out', async () => {
    const blob = randomBytes(100_000);
    const srv = await scripted((req, sock) => {
      if (req.includes('/silent')) return;
      if (req.includes('/stall')) {
        sock.write(ok(blob).subarray(0, 50_000));
        return;
      }
      sock.write(ok(blob));
    });
    const p = pool();
    const t0 = Date.now();
    const err = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/silent`), headers: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).reason).toBe('timeout');
    expect((err as Error).message).toMatch(/headers timeout/);
    expect(Date.now() - t0).toBeLessThan(3_000);
    const stalled = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/stall`), headers: {} });
    const bodyErr = await readLent(stalled.body).catch((e: unknown) => e);
    expect((bodyErr as UpstreamError).reason).toBe('timeout');
    expect((bodyErr as Error).message).toMatch(/idle timeout/);
    // A reader that pauses longer than the idle timeout still gets every byte.
    const slow = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/ok`), headers: {} });
    expect(sha(await readLent(slow.body, TIMEOUTS.idle * 2))).toBe(sha(blob));
  });

  it('the server closing mid-body: the body errors (never a clean end); an abort signal cuts a body and its connection', async () => {
    const blob = randomBytes(300_000);
    const srv = await scripted((req, sock) => {
      if (req.includes('/cut')) {
        sock.end(ok(blob).subarray(0, 100_000));
        return;
      }
      sock.write(ok(blob).subarray(0, 100_000)); // and nothing more
    });
    const p = pool();
    const cut = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/cut`), headers: {} });
    await expect(readLent(cut.body)).rejects.toThrow(/closed before the end/);
    const ac = new AbortController();
    const aborted = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/abort`), headers: {}, signal: ac.signal });
    const reading = readStream(aborted.body).catch((e: unknown) => e);
    setTimeout(() => ac.abort(), 50);
    expect(await reading).toBeInstanceOf(Error);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(srv.sockets.size).toBe(0);
    // A signal already aborted: nothing is sent.
    const before = srv.requests.length;
    await expect(p.get({ url: new URL(`${srv.url}/v2/a/blobs/x`), headers: {}, signal: AbortSignal.abort() })).rejects.toThrow();
    expect(srv.requests.length).toBe(before);
  });

  it('malformed answers are protocol errors: a bad status line, a head over 64 KiB, two different lengths', async () => {
    const srv = await scripted((req, sock) => {
      if (req.includes('/status')) sock.write('HTTP/1.1 OK\r\n\r\n');
      else if (req.includes('/big')) sock.write(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}\r\n\r\n`);
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab');
    });
    const p = pool();
    for (const path of ['status', 'big', 'lengths']) {
      const err = await p.get({ url: new URL(`${srv.url}/v2/a/blobs/${path}`), headers: {} }).catch((e: unknown) => e);
      expect(err, path).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).reason, path).toBe('protocol');
    }
  });

  it('TLS: verified against the configured CA; without it the certificate is refused; insecure skips the check', async () => {
    const blob = randomBytes(2 * 1024 * 1024);
    const srv = await scripted((_req, sock) => {
      sock.write(ok(blob));
    }, true);
    const url = new URL(`${srv.url}/v2/a/blobs/x`);
    const trusted = await pool({ ca: [CERT] }).get({ url, headers: {} });
    expect(sha(await readLent(trusted.body))).toBe(sha(blob));
    const refused = await pool().get({ url, headers: {} }).catch((e: unknown) => e);
    expect((refused as NodeJS.ErrnoException).code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
    const insecure = await pool({ rejectUnauthorized: false }).get({ url, headers: {} });
    expect(sha(await readStream(insecure.body))).toBe(sha(blob));
  });

  it('the upstream client reads a blob GET whose body is taken lent this way (blobReader: socket, the default); with undici when told, and every other request with undici', async () => {
    const blob = randomBytes(10_000);
    const srv = await scripted((req, sock) => {
      if (req.includes('/manifests/')) sock.write(ok(Buffer.from('{}'), 'Content-Type: application/json\r\n'));
      else sock.write(ok(blob));
    });
    const client = (blobReader: 'socket' | 'undici'): UpstreamClient => new UpstreamClient(
      { host: 'up.test', url: srv.url, insecureSkipVerify: false, immutableTags: [], allowedHosts: [], blobReader },
      { timeouts: { connect: 2_000, headers: 2_000, idle: 2_000 }, health: { maxFails: 100, failTimeout: 1_000 }, userAgent: 'regcache-test' },
    );
    const socket = client('socket');
    const undici = client('undici');
    try {
      const a = await socket.request({ method: 'GET', path: `/v2/a/blobs/sha256:${sha(blob)}`, repo: 'a', lendBody: true });
      expect(a.body).toBeInstanceOf(SocketBody);
      expect(sha(await readLent(a.body as SocketBody))).toBe(sha(blob));
      // A copy streams the blob on: undici's body.
      const streamed = await socket.request({ method: 'GET', path: `/v2/a/blobs/sha256:${sha(blob)}`, repo: 'a' });
      expect(streamed.body).not.toBeInstanceOf(SocketBody);
      streamed.body.resume();
      const m = await socket.request({ method: 'GET', path: '/v2/a/manifests/v1', repo: 'a' });
      expect(m.body).not.toBeInstanceOf(SocketBody);
      m.body.resume();
      const u = await undici.request({ method: 'GET', path: `/v2/a/blobs/sha256:${sha(blob)}`, repo: 'a', lendBody: true });
      expect(u.body).not.toBeInstanceOf(SocketBody);
      const parts: Buffer[] = [];
      for await (const c of u.body) parts.push(c as Buffer);
      expect(sha(Buffer.concat(parts))).toBe(sha(blob));
      expect(srv.requests.filter((r) => r.includes('/blobs/')).every((r) => /\r\nvia: 1\.1 regcache/i.test(r) || !r.includes('host:'))).toBe(true);
    } finally {
      await socket.destroy();
      await undici.destroy();
    }
  });

  it('a lent body paused again after its answer ended does not pause the next answer on that connection', async () => {
    const srv = await scripted((req, sock) => {
      // One write: two chunks and the end, so the reader's pauses come after the exchange is over.
      if (req.includes('/a')) sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n');
      else {
        sock.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n');
        setTimeout(() => sock.write('BBBB'), 100);
      }
    });
    const p = pool();
    const a = await p.get({ url: new URL(`${srv.url}/v2/x/blobs/a`), headers: {} });
    let gotA = '';
    const aEnded = new Promise<void>((resolve) => a.body.once('end', () => resolve()));
    const flow = a.body.lend({
      data(buf, start, end) {
        gotA += buf.toString('latin1', start, end);
        flow.pause();
        setTimeout(() => flow.resume(), 50);
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    const b = await p.get({ url: new URL(`${srv.url}/v2/x/blobs/b`), headers: {} });
    expect((await readStream(b.body)).toString()).toBe('BBBB');
    await aEnded;
    expect(gotA).toBe('helloworld');
    expect(srv.connections).toBe(1);
  });

  it('interim 1xx answers (103 Early Hints) are skipped; the final answer is the one read', async () => {
    const blob = randomBytes(5000);
    const srv = await scripted((_req, sock) => {
      sock.write('HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n');
      sock.write(ok(blob));
    });
    const a = await pool().get({ url: new URL(`${srv.url}/v2/x/blobs/a`), headers: {} });
    expect(a.status).toBe(200);
    expect(sha(await readLent(a.body))).toBe(sha(blob));
  });

  it('at most maxPerOrigin connections per origin; more GETs wait their turn and all complete', async () => {
    const blob = randomBytes(20_000);
    let open = 0;
    let most = 0;
    const srv = await scripted((_req, sock) => {
      // Answer slowly, so the GETs overlap.
      setTimeout(() => sock.write(ok(blob)), 30);
    });
    srv.server.on('connection', (sock: Socket) => {
      open++;
      most = Math.max(most, open);
      sock.on('close', () => open--);
    });
    const p = new SocketGetPool({ timeouts: TIMEOUTS, tls: { rejectUnauthorized: true }, maxPerOrigin: 3 });
    pools.push(p);
    const bodies = await Promise.all(Array.from({ length: 10 }, (_, i) => p.get({ url: new URL(`${srv.url}/v2/x/blobs/${i}`), headers: {} })
      .then((r) => readLent(r.body))));
    for (const b of bodies) expect(sha(b)).toBe(sha(blob));
    expect(most).toBeLessThanOrEqual(3);
    expect(srv.requests.length).toBe(10);
  });
});
