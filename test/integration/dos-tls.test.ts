/**
 * Issue 10 item 2: on the TLS listener, TCP connections that never start the TLS handshake and
 * HTTP/1.1-over-TLS slowloris must be closed after server.headersTimeout, like on the plain
 * listener (before the fix: never, and after ~90 s).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, selfSignedCert, startRegcache, startRegistry, stopAllChildren, waitUntil, type Regcache, type Registry,
} from '../helpers/index.js';

const HEADERS_TIMEOUT_MS = 1_500;
let upstream: Registry;
let rc: Regcache;
const sockets = new Set<Socket>();

beforeAll(async () => {
  upstream = await startRegistry();
  const tls = await selfSignedCert();
  rc = await startRegcache({
    config: { tls, server: { headersTimeout: `${HEADERS_TIMEOUT_MS}ms` }, upstreams: { 'u.example': { url: upstream.url } } },
  });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await rc?.stop();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

interface Watched { socket: Socket; openedAt: number; closedAt?: number; response: string }

function watch(socket: Socket): Watched {
  sockets.add(socket);
  const w: Watched = { socket, openedAt: Date.now(), response: '' };
  socket.on('data', (d: Buffer) => { w.response += d.toString('latin1'); });
  socket.on('error', () => undefined);
  socket.once('close', () => {
    w.closedAt = Date.now();
    sockets.delete(socket);
  });
  return w;
}

async function expectClosedAfterTimeout(ws: Watched[]): Promise<void> {
  await waitUntil(() => ws.every((w) => w.closedAt !== undefined), {
    timeoutMs: HEADERS_TIMEOUT_MS + 6_000,
    message: `${ws.filter((w) => w.closedAt === undefined).length} of ${ws.length} connections still open ${HEADERS_TIMEOUT_MS + 6_000} ms later`,
  });
  for (const w of ws) {
    expect(w.closedAt! - w.openedAt).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 250);
    expect(w.closedAt! - w.openedAt).toBeLessThan(HEADERS_TIMEOUT_MS + 4_000);
  }
}

describe('TLS listener timeouts', () => {
  it('a TCP connection that never starts the TLS handshake is closed after headersTimeout', async () => {
    const ws = await Promise.all(Array.from({ length: 20 }, () => new Promise<Watched>((resolve, reject) => {
      const s = netConnect(rc.port, '127.0.0.1');
      s.once('connect', () => resolve(watch(s)));
      s.once('error', reject);
    })));
    await expectClosedAfterTimeout(ws);
  });

  it('HTTP/1.1-over-TLS slowloris gets 408 (or is closed) after headersTimeout', async () => {
    const ws = await Promise.all(Array.from({ length: 20 }, () => new Promise<Watched>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: rc.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
      s.once('secureConnect', () => {
        const w = watch(s);
        w.openedAt = Date.now();
        s.write('GET /v2/ HTTP/1.1\r\nHost: regcache\r\nX-Slow: ');
        const drip = setInterval(() => { if (s.writable) s.write('a'); else clearInterval(drip); }, 300);
        s.once('close', () => clearInterval(drip));
        resolve(w);
      });
      s.once('error', reject);
    })));
    await expectClosedAfterTimeout(ws);
    for (const w of ws) {
      if (w.response.length > 0) {
        expect(w.response.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
        expect(w.response).toContain('"code":"REQUEST_INVALID"');
      }
    }
  });
});
