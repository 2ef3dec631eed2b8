/**
 * A Range of a blob streamed through (larger than maxSize) sends nothing until the whole
 * blob has come and verified (blob-cache.ts sliceStream): the connection's inactivity
 * timeout waits meanwhile (routes/blobs.ts holdTimeouts), so a rest of the blob that takes
 * longer than `server.idleTimeout` does not cut the request. idleTimeout 2 s here (default
 * 120 s), the rest of a 2 MiB blob arrives over ~3.2 s. Found by review helper-27.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, startRegcache, stopAllChildren, type Regcache } from '../helpers/index.js';
import { sendStatus, startHostileUpstream, type HostileUpstream } from '../helpers/hostile-upstream.js';

const H = 'h.example';
let up: HostileUpstream;
let rc: Regcache;

beforeAll(async () => {
  up = await startHostileUpstream();
  rc = await startRegcache({
    config: {
      server: { idleTimeout: '2s' },
      upstreams: { [H]: { url: up.url } },
      retention: { maxSize: '1MiB', interval: '0' },
      upstreamTimeouts: { connect: '2s', headers: '3s', idle: '2s', manifestTotal: '5s' },
    },
  });
});

afterAll(async () => {
  await rc?.stop();
  await up?.close();
  await stopAllChildren();
  await cleanupAll();
});

describe('a Range of a blob streamed through whose rest takes longer than the idle timeout', () => {
  it('bytes=0-99 of an honest 2 MiB blob, second MiB trickling over ~3 s: a complete 206', async () => {
    const good = randomBytes(2 * 1024 * 1024);
    const digest = `sha256:${createHash('sha256').update(good).digest('hex')}`;
    up.handle((req, res) => {
      if (!(req.url ?? '').includes(`/blobs/${digest}`)) return sendStatus(res, 404);
      res.writeHead(200, { 'content-length': good.length });
      res.write(good.subarray(0, 1024 * 1024));
      let off = 1024 * 1024;
      const t = setInterval(() => {
        const next = Math.min(good.length, off + 64 * 1024);
        res.write(good.subarray(off, next));
        off = next;
        if (off >= good.length) { clearInterval(t); res.end(); }
      }, 200);
      res.once('close', () => clearInterval(t));
    });
    const r = await new Promise<{ status: number; body: Buffer; ended: boolean; error?: string; ms: number }>((resolve) => {
      const t0 = Date.now();
      const req = httpRequest(`${rc.url}/v2/${H}/pt/slow/blobs/${digest}`, { agent: false, headers: { range: 'bytes=0-99' } }, (res) => {
        const chunks: Buffer[] = [];
        let ended = false;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => { ended = true; });
        res.once('close', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ended, ms: Date.now() - t0 }));
      });
      req.once('error', (e) => resolve({ status: 0, body: Buffer.alloc(0), ended: false, error: e.message, ms: Date.now() - t0 }));
      req.end();
    });
    expect(r.status).toBe(206);
    expect(r.ended).toBe(true);
    expect(r.body.equals(good.subarray(0, 100))).toBe(true);
  });
});
