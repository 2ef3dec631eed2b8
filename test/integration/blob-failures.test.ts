/**
 * Blob answers when the upstream fails, from a review of the pull path (2026-12-03): a
 * failure before the first byte is an OCI error with its status, not a cut connection; a
 * Range of a blob streamed through (not cached) is never complete before the whole blob has
 * verified; an HTTP/1.0 client of a blob of unknown size can tell a failed body from a
 * complete one; a blob GET waiting for one of the 64 connections per origin gets an answer
 * within the headers timeout. The upstream is a scripted node:http server
 * (test/helpers/hostile-upstream.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupAll, startRegcache, stopAllChildren, waitUntil, type Regcache } from '../helpers/index.js';
import { sendStatus, startHostileUpstream, type HostileUpstream } from '../helpers/hostile-upstream.js';

const H = 'h.example';
let up: HostileUpstream;
let rc: Regcache;
const timers = new Set<NodeJS.Timeout>();

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blobPath = (repo: string, digest: string): string => `/v2/${H}/${repo}/blobs/${digest}`;

beforeAll(async () => {
  up = await startHostileUpstream();
  rc = await startRegcache({
    config: {
      upstreams: { [H]: { url: up.url } },
      // Blobs over 1 MiB are refused by admission: they stream through, verified, not kept.
      retention: { maxSize: '1MiB', interval: '0' },
      upstreamTimeouts: { connect: '2s', headers: '3s', idle: '2s', manifestTotal: '5s' },
      upstreamHealth: { maxFails: 1000, failTimeout: '1s' },
    },
  });
});

afterAll(async () => {
  for (const t of timers) clearInterval(t);
  await rc?.stop();
  await up?.close();
  await stopAllChildren();
  await cleanupAll();
});

beforeEach(() => {
  up.reset();
  up.handle((_req, res) => sendStatus(res, 404, {}, 'BLOB_UNKNOWN'));
});

interface Outcome { status: number; headers: IncomingMessage['headers']; body: Buffer; complete: boolean; error?: string; ms: number }

/** One GET on its own connection: status, body, and whether it ended complete (its whole Content-Length, no error). */
function fetchOutcome(path: string, headers: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const req = httpRequest(`${rc.url}${path}`, { agent: false, headers: { connection: 'close', ...headers }, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      let ended = false;
      let done = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => { ended = true; });
      const finish = (error?: string): void => {
        if (done) return;
        done = true;
        const body = Buffer.concat(chunks);
        const len = res.headers['content-length'];
        const complete = ended && !res.aborted && error === undefined && (len === undefined || Number(len) === body.length);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, complete, ms: Date.now() - t0, ...(error ? { error } : {}) });
      };
      res.once('error', (e) => finish(e.message));
      res.once('close', () => finish());
    });
    req.once('timeout', () => req.destroy(new Error('client timeout')));
    req.once('error', (e) => resolve({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false, error: e.message, ms: Date.now() - t0 }));
    req.end();
  });
}

const ociCode = (o: Outcome): string | undefined => (JSON.parse(o.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code;

describe('a Range of a blob streamed through (larger than maxSize)', () => {
  it('bytes that do not match the digest: 502 with an OCI error, never a complete 206 of them', async () => {
    const good = randomBytes(2 * 1024 * 1024);
    const digest = sha(good);
    const bad = Buffer.from(good);
    bad.fill(0x41, 0, 100);
    up.handle((req, res) => {
      if (!(req.url ?? '').includes(`/blobs/${digest}`)) return sendStatus(res, 404);
      res.writeHead(200, { 'content-length': bad.length, 'content-type': 'application/octet-stream' });
      res.end(bad);
    });
    const r = await fetchOutcome(blobPath('pt/a', digest), { range: 'bytes=0-99' });
    expect(r.status).toBe(502);
    expect(ociCode(r)).toBe('UPSTREAM_ERROR');
    const whole = await fetchOutcome(blobPath('pt/a', digest));
    expect(whole.complete).toBe(false);
  });

  it('an upstream that resets after 1 MiB of 2: a Range inside the first MiB is not answered as complete', async () => {
    const good = randomBytes(2 * 1024 * 1024);
    const digest = sha(good);
    up.handle((req, res) => {
      if (!(req.url ?? '').includes(`/blobs/${digest}`)) return sendStatus(res, 404);
      res.writeHead(200, { 'content-length': good.length });
      res.write(good.subarray(0, 1024 * 1024), () => setTimeout(() => res.socket?.resetAndDestroy(), 50));
    });
    const r = await fetchOutcome(blobPath('pt/trunc', digest), { range: 'bytes=0-4095' });
    expect(r.status).toBe(502);
    expect(ociCode(r)).toBe('UPSTREAM_ERROR');
  });

  it('an honest blob: the Range comes complete, with exactly its bytes', async () => {
    const good = randomBytes(2 * 1024 * 1024 + 123);
    const digest = sha(good);
    up.handle((req, res) => {
      if (!(req.url ?? '').includes(`/blobs/${digest}`)) return sendStatus(res, 404);
      res.writeHead(200, { 'content-length': good.length });
      res.end(good);
    });
    const r = await fetchOutcome(blobPath('pt/ok', digest), { range: 'bytes=1000-70000' });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 1000-70000/${good.length}`);
    expect(r.complete).toBe(true);
    expect(r.body.equals(good.subarray(1000, 70001))).toBe(true);
  });
});

describe('a failure before the first byte reached the client', () => {
  it('an upstream that sends its headers, then nothing: 504 UPSTREAM_TIMEOUT with an OCI body', async () => {
    const digest = sha(randomBytes(9));
    up.handle((req, res) => {
      if (!(req.url ?? '').includes(digest)) return sendStatus(res, 404);
      res.writeHead(200, { 'content-length': 5000 });
      res.flushHeaders();
    });
    const r = await fetchOutcome(blobPath('early/a', digest));
    expect(r.status).toBe(504);
    expect(ociCode(r)).toBe('UPSTREAM_TIMEOUT');
    expect(r.headers['docker-content-digest']).toBeUndefined();
  });

  it('an upstream that closes after its headers: 502 UPSTREAM_ERROR with an OCI body', async () => {
    const digest = sha(randomBytes(9));
    up.handle((req, res) => {
      if (!(req.url ?? '').includes(digest)) return sendStatus(res, 404);
      res.writeHead(200, { 'content-length': 5000 });
      res.flushHeaders();
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const r = await fetchOutcome(blobPath('early/b', digest));
    expect(r.status).toBe(502);
    expect(ociCode(r)).toBe('UPSTREAM_ERROR');
  });
});

describe('an HTTP/1.0 client of a blob of unknown size', () => {
  // Its body ends only with the connection: after a failure, regcache resets it (TCP RST)
  // instead of closing it. On loopback the client reads the reset as ECONNRESET in most runs
  // but not all (17 of 20 for a plain Node server doing the same): the kernel may report the
  // end of a reset connection whose data was all read as an EOF. So ten tries, at least one
  // reset; before the change none was (every one a clean close).
  it('a corrupt body whose first bytes went out is ended by a reset, not a close', async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      const good = randomBytes(200_000);
      const digest = sha(good);
      const bad = Buffer.from(good);
      bad[bad.length - 1]! ^= 0xff;
      up.handle((req, res) => {
        if (!(req.url ?? '').includes(`/blobs/${digest}`)) return sendStatus(res, 404);
        res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked: size unknown
        // The first half reaches the client before the digest can fail (otherwise it gets a 502).
        res.write(bad.subarray(0, 100_000));
        setTimeout(() => res.end(bad.subarray(100_000)), 100);
      });
      const got = await new Promise<{ head: string; how: string }>((resolve) => {
        const s = connect(rc.port, '127.0.0.1');
        const chunks: Buffer[] = [];
        const done = (how: string): void => {
          const all = Buffer.concat(chunks);
          resolve({ head: all.subarray(0, Math.max(0, all.indexOf('\r\n\r\n'))).toString('latin1'), how });
        };
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('error', (e) => done(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
        s.on('end', () => done('clean close'));
        s.write(`GET ${blobPath(`h10/x${i}`, digest)} HTTP/1.0\r\nHost: x\r\n\r\n`);
      });
      expect(got.head).toMatch(/^HTTP\/1\.1 200 /);
      expect(got.head).not.toMatch(/content-length/i);
      outcomes.push(got.how);
    }
    expect(outcomes.filter((o) => o === 'error ECONNRESET').length, outcomes.join(', ')).toBeGreaterThan(0);
    // And regcache knew each one failed: logged aborted, with the mismatch.
    const logged = (): Array<Record<string, unknown>> => rc.logs().filter((l) => l.msg === 'request' && String(l.path ?? '').includes('/h10/'));
    await waitUntil(() => logged().length >= 10, { timeoutMs: 5_000 });
    const lines = logged();
    expect(lines).toHaveLength(10);
    for (const l of lines) {
      expect(l.aborted).toBe(true);
      expect(String(l.error)).toMatch(/digest mismatch/);
    }
  });
});

describe('blob GETs beyond the 64 connections per origin', () => {
  it('with 64 fills trickling (each within the idle timeout), a 65th GET is answered within the headers timeout', async () => {
    const fast = randomBytes(1000);
    const fastDigest = sha(fast);
    up.handle((req, res) => {
      const url = req.url ?? '';
      if (url.includes(`/blobs/${fastDigest}`)) {
        res.writeHead(200, { 'content-length': fast.length });
        res.end(fast);
        return;
      }
      if (url.includes('/slow/')) {
        res.writeHead(200, { 'content-length': 10_000_000 });
        const t = setInterval(() => { if (res.destroyed) clearInterval(t); else res.write('x'); }, 500);
        timers.add(t);
        res.once('close', () => clearInterval(t));
        return;
      }
      sendStatus(res, 404);
    });
    const slow: ClientRequest[] = [];
    try {
      for (let i = 0; i < 64; i++) {
        const r = httpRequest(`${rc.url}/v2/${H}/slow/r${i}/blobs/${sha(randomBytes(8))}`, { agent: false });
        r.on('error', () => undefined);
        r.on('response', (res: IncomingMessage) => res.resume());
        r.end();
        slow.push(r);
      }
      await waitUntil(() => up.count('GET', /\/slow\//) >= 64, { timeoutMs: 10_000 });
      const r = await fetchOutcome(blobPath('fast', fastDigest));
      expect(r.status).toBe(504);
      expect(ociCode(r)).toBe('UPSTREAM_TIMEOUT');
      // The headers timeout (3 s), not the length of the other transfers.
      expect(r.ms).toBeLessThan(6000);
    } finally {
      for (const r of slow) r.destroy();
    }
  }, 60_000);
});
