/**
 * Abusive clients against a real regcache process: 500 connections that send their request headers a byte per
 * second (slowloris) plus one client reading a 100 MB blob at about 1 KB/s must not keep other clients from
 * pulling at full speed; the slow header senders get 408 (or are closed) after server.headersTimeout, and the
 * slow reader neither slows the fill it joined nor gets cut off while it keeps reading.
 */
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, httpProbe, makeImage, makeLayer, pushImage, startRegcache, startRegistry, stopAllChildren, waitUntil,
  type Image, type Regcache, type Registry,
} from '../helpers/index.js';

const MiB = 1024 * 1024;
const HEADERS_TIMEOUT_MS = 2_000;
const SLOW_HEADER_CLIENTS = 500;

let upstream: Registry;
let rc: Regcache;
let big: Image;
let normal: Image;
const sockets = new Set<Socket>();
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  upstream = await startRegistry();
  big = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 100 * MiB, seed: 'abuse-big' })] });
  normal = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 20 * MiB, seed: 'abuse-normal' })] });
  await Promise.all([pushImage(upstream.url, 'team/big', 'v1', big), pushImage(upstream.url, 'team/normal', 'v1', normal)]);
  rc = await startRegcache({
    config: {
      server: { headersTimeout: `${HEADERS_TIMEOUT_MS}ms` },
      upstreams: { 'u.example': { url: upstream.url } },
    },
  });
});

afterAll(async () => {
  for (const t of timers) clearInterval(t);
  for (const s of sockets) s.destroy();
  await rc?.stop();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

/** waitUntil with a failure message computed when it fails (so it shows the state at the deadline). */
async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs: number, message: () => string, intervalMs = 25): Promise<void> {
  try {
    await waitUntil(pred, { timeoutMs, intervalMs });
  } catch {
    throw new Error(message());
  }
}

interface SlowHeaderClient {
  socket: Socket;
  connectedAt: number;
  /** First bytes the server sent, if any. */
  response: string;
  answeredAt?: number;
  closedAt?: number;
}

function slowHeaderClient(): Promise<SlowHeaderClient> {
  return new Promise((resolve, reject) => {
    const socket = connect(rc.port, '127.0.0.1');
    sockets.add(socket);
    const c: SlowHeaderClient = { socket, connectedAt: 0, response: '' };
    socket.on('data', (d: Buffer) => {
      if (c.answeredAt === undefined) c.answeredAt = Date.now();
      c.response += d.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      c.closedAt = Date.now();
      sockets.delete(socket);
    });
    socket.once('connect', () => {
      c.connectedAt = Date.now();
      socket.write('GET /v2/ HTTP/1.1\r\nHost: regcache\r\nX-Slow: ');
      resolve(c);
    });
    socket.once('error', reject);
  });
}

interface SlowReader {
  socket: Socket;
  received: number;
  head: string;
  closed: boolean;
}

/** Requests `path` and then takes about `bytesPerSec` from the socket each second (paused otherwise). */
function slowReader(path: string, bytesPerSec: number): SlowReader {
  const socket = connect(rc.port, '127.0.0.1');
  sockets.add(socket);
  const r: SlowReader = { socket, received: 0, head: '', closed: false };
  socket.on('error', () => undefined);
  socket.once('close', () => {
    r.closed = true;
    sockets.delete(socket);
  });
  socket.pause();
  socket.write(`GET ${path} HTTP/1.1\r\nHost: regcache\r\n\r\n`);
  const t = setInterval(() => {
    const chunk = socket.read(bytesPerSec) as Buffer | null;
    if (!chunk) return;
    if (r.head.length < 512) r.head += chunk.toString('latin1');
    r.received += chunk.length;
  }, 1_000);
  timers.add(t);
  return r;
}

/** A GET that hashes the body as it streams; resolves with status, byte count, digest and time taken. */
function timedGet(url: string, timeoutMs = 30_000): Promise<{ status: number; bytes: number; digest: string; ms: number; complete: boolean }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      const h = createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        h.update(c);
      });
      res.once('end', () => resolve({
        status: res.statusCode ?? 0, bytes, digest: `sha256:${h.digest('hex')}`, ms: Date.now() - started,
        complete: res.headers['content-length'] === undefined || Number(res.headers['content-length']) === bytes,
      }));
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${url}`)));
    req.once('error', reject);
    req.end();
  });
}

describe('slow clients do not starve the others', () => {
  it('500 slow-header connections plus a 1 KB/s reader of a 100 MB blob: a normal 20 MB pull still runs at full speed', async () => {
    const bigLayer = big.layers[0]!;
    const reader = slowReader(`/v2/u.example/team/big/blobs/${bigLayer.digest}`, 1024);
    await waitFor(() => reader.head.startsWith('HTTP/1.1 200'), 10_000, () => `slow reader got no 200: ${JSON.stringify(reader.head.slice(0, 100))}`);

    const slow: SlowHeaderClient[] = [];
    for (let i = 0; i < SLOW_HEADER_CLIENTS; i += 50) {
      slow.push(...(await Promise.all(Array.from({ length: Math.min(50, SLOW_HEADER_CLIENTS - i) }, () => slowHeaderClient()))));
    }
    // One more header byte per second on every connection, forever (they never finish their headers).
    const drip = setInterval(() => {
      for (const c of slow) if (c.closedAt === undefined && !c.socket.destroyed) c.socket.write('a');
    }, 1_000);
    timers.add(drip);
    const allConnected = Date.now();

    // A normal client, meanwhile: manifest, config and a 20 MB layer that regcache has to fetch first.
    const t0 = Date.now();
    const m = await httpProbe(`${rc.url}/v2/u.example/team/normal/manifests/v1`, { timeoutMs: 10_000 });
    expect(m.status).toBe(200);
    const cfg = await timedGet(`${rc.url}/v2/u.example/team/normal/blobs/${normal.config.digest}`);
    expect(cfg.digest).toBe(normal.config.digest);
    const layer = await timedGet(`${rc.url}/v2/u.example/team/normal/blobs/${normal.layers[0]!.digest}`);
    expect(layer.status).toBe(200);
    expect(layer.complete).toBe(true);
    expect(layer.digest).toBe(normal.layers[0]!.digest);
    const pullMs = Date.now() - t0;
    expect(pullMs).toBeLessThan(10_000);
    // The abusers were really there during the pull (the pull did not just slip in after they were cut).
    const openDuringPull = slow.filter((c) => c.closedAt === undefined || c.closedAt > t0 + Math.min(pullMs, 500)).length;
    expect(openDuringPull).toBeGreaterThan(SLOW_HEADER_CLIENTS * 0.9);

    // Every slow header sender gets 408 (or is closed) soon after headersTimeout, none earlier than it.
    await waitFor(() => slow.every((c) => c.closedAt !== undefined || c.response.length > 0), HEADERS_TIMEOUT_MS + 8_000,
      () => `${slow.filter((c) => c.closedAt === undefined && c.response.length === 0).length} of ${SLOW_HEADER_CLIENTS} slow-header connections still open and unanswered ${Date.now() - allConnected} ms after the last one connected (server.headersTimeout ${HEADERS_TIMEOUT_MS} ms)`);
    let answered408 = 0;
    for (const c of slow) {
      const at = c.answeredAt ?? c.closedAt!;
      expect(at - c.connectedAt).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 250);
      expect(at - c.connectedAt).toBeLessThan(HEADERS_TIMEOUT_MS + 4_000);
      if (c.response.length > 0) {
        expect(c.response.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
        expect(c.response).toContain('"code":"REQUEST_INVALID"');
        answered408++;
      }
    }
    expect(answered408 + slow.filter((c) => c.response.length === 0).length).toBe(SLOW_HEADER_CLIENTS);
    clearInterval(drip);

    // The slow reader is still being served (it keeps reading), and did not hold back the fill it joined:
    // the 100 MB blob is committed long before the reader could have read it.
    expect(reader.closed).toBe(false);
    expect(reader.received).toBeGreaterThan(0);
    expect(reader.received).toBeLessThan(bigLayer.size);
    const hex = bigLayer.digest.slice('sha256:'.length);
    await waitUntil(() => existsSync(join(rc.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex)), {
      timeoutMs: 20_000, message: 'the fill of the slowly read blob was not committed',
    });
    // And a fast client of the same blob gets it at full speed while the slow one is still attached.
    const fast = await timedGet(`${rc.url}/v2/u.example/team/big/blobs/${bigLayer.digest}`);
    expect(fast.digest).toBe(bigLayer.digest);
    expect(fast.ms).toBeLessThan(10_000);
    expect(reader.closed).toBe(false);
    reader.socket.destroy();
  });
});
