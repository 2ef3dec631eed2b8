/**
 * Issue 10 item 4: a reader that never reads (its kernel buffers fill, then it stalls) must cost
 * regcache a small, bounded buffer, not ~0.8 MB: 300 stalled readers of a cached 32 MB blob
 * grow regcache's RSS by well under 300 KiB each.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, httpProbe, makeImage, makeLayer, pushImage, startRegcache, startRegistry, stopAllChildren, waitUntil,
  type Image, type Regcache, type Registry,
} from '../helpers/index.js';

// Enough readers that per-process noise (heap growth before a GC) is small per reader.
const READERS = 300;
let upstream: Registry;
let rc: Regcache;
let img: Image;
const sockets = new Set<Socket>();

beforeAll(async () => {
  upstream = await startRegistry();
  img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 32 * 1024 * 1024, seed: 'dos-slow' })] });
  await pushImage(upstream.url, 'team/app', 'v1', img);
  rc = await startRegcache({ config: { upstreams: { 'u.example': { url: upstream.url } } } });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await rc?.stop();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

describe('slow readers', () => {
  it(`${READERS} stalled readers of a cached blob cost well under 300 KiB each`, async () => {
    const path = `/v2/u.example/team/app/blobs/${img.layers[0]!.digest}`;
    expect((await httpProbe(`${rc.url}${path}`, { timeoutMs: 30_000 })).status).toBe(200); // cached now
    await new Promise((r) => setTimeout(r, 1_000));
    const before = rssBytes(rc.proc.pid!);
    const heads: string[] = [];
    for (let i = 0; i < READERS; i++) {
      const s = connect(rc.port, '127.0.0.1');
      sockets.add(s);
      s.on('error', () => undefined);
      heads[i] = '';
      // Read only the first bytes (the status line), then never again.
      s.once('data', (d: Buffer) => { heads[i] = d.toString('latin1', 0, 20); s.pause(); });
      s.write(`GET ${path} HTTP/1.1\r\nHost: regcache\r\n\r\n`);
    }
    await waitUntil(() => heads.every((h) => h.length > 0), { timeoutMs: 20_000, message: 'not every reader got an answer' });
    expect(heads.every((h) => h.startsWith('HTTP/1.1 200'))).toBe(true);
    // Let every response fill the kernel buffers and stall.
    await new Promise((r) => setTimeout(r, 3_000));
    const grown = rssBytes(rc.proc.pid!) - before;
    expect(grown / READERS).toBeLessThan(300 * 1024);
    for (const s of sockets) s.destroy();
  });
});
