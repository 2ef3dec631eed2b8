/**
 * Issue 10 item 3: idle keep-alive connections must yield to new ones, and the connection limit
 * is global across listeners. With server.maxConnections 40 and 40 idle keep-alive connections
 * spread over the main listener and an upstream's own port, a new connection is served and the
 * connection idle longest is closed; with every connection busy, a new one gets 503.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, freePort, makeImage, makeLayer, pushImage, startRegcache, startRegistry, stopAllChildren, waitUntil,
  type Image, type Regcache, type Registry,
} from '../helpers/index.js';

const LIMIT = 40;
let upstream: Registry;
let rc: Regcache;
let upstreamPort: number;
let img: Image;
const sockets = new Set<Socket>();

beforeAll(async () => {
  upstream = await startRegistry();
  img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 24 * 1024 * 1024, seed: 'dos-conn' })] });
  await pushImage(upstream.url, 'team/app', 'v1', img);
  upstreamPort = await freePort();
  rc = await startRegcache({
    config: { server: { maxConnections: LIMIT }, upstreams: { 'u.example': { url: upstream.url, port: upstreamPort } } },
  });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await rc?.stop();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

interface Conn { socket: Socket; text: string; closed: boolean }

function open(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    sockets.add(socket);
    const c: Conn = { socket, text: '', closed: false };
    socket.on('data', (d: Buffer) => { c.text += d.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      c.closed = true;
      sockets.delete(socket);
    });
    socket.once('connect', () => resolve(c));
    socket.once('error', reject);
  });
}

/** Sends one keep-alive request and waits for its complete (small) response. */
async function request(c: Conn, path: string): Promise<string> {
  const from = c.text.length;
  c.socket.write(`GET ${path} HTTP/1.1\r\nHost: regcache\r\n\r\n`);
  await waitUntil(() => c.closed || /\r\n\r\n/.test(c.text.slice(from)), { timeoutMs: 10_000, message: `no answer to ${path}` });
  return c.text.slice(from);
}

describe('connection limit', () => {
  it('at the global limit, a new connection closes the connection idle longest instead of being refused', async () => {
    // LIMIT idle keep-alive connections, half on each listener, each after one answered request.
    const idle: Conn[] = [];
    for (let i = 0; i < LIMIT; i++) {
      const c = await open(i % 2 === 0 ? rc.port : upstreamPort);
      expect((await request(c, i % 2 === 0 ? '/v2/' : '/v2/')).split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      idle.push(c);
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(idle.filter((c) => c.closed)).toHaveLength(0);

    // A new client on the main listener is served; the first (longest idle) connection is closed, only it.
    const fresh = await open(rc.port);
    const head = await request(fresh, '/v2/u.example/team/app/manifests/v1');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    await waitUntil(() => idle[0]!.closed, { timeoutMs: 5_000, message: 'the longest-idle connection was not closed' });
    expect(idle.filter((c) => c.closed)).toHaveLength(1);

    // Next one, on the other listener: the second-oldest goes (the limit is global, the order too).
    const fresh2 = await open(upstreamPort);
    expect((await request(fresh2, '/v2/')).split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    await waitUntil(() => idle[1]!.closed, { timeoutMs: 5_000, message: 'the second longest-idle connection was not closed' });
    expect(idle.filter((c) => c.closed)).toHaveLength(2);
    // The connection that was just used is not idle-oldest: it is still open.
    expect(fresh.closed).toBe(false);
    for (const c of [...idle, fresh, fresh2]) c.socket.destroy();
  });

  it('with every connection busy, a new connection gets 503 with an OCI error body', async () => {
    await waitUntil(() => sockets.size === 0, { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 300));
    // LIMIT paused readers of a 24 MB blob keep every connection busy.
    const layer = img.layers[0]!;
    const busy: Conn[] = [];
    for (let i = 0; i < LIMIT; i++) {
      const c = await open(i % 2 === 0 ? rc.port : upstreamPort);
      // Stop reading at the first bytes: a client that polls first may read a whole cached blob.
      c.socket.once('data', () => c.socket.pause());
      c.socket.write(`GET /v2/${i % 2 === 0 ? 'u.example/' : ''}team/app/blobs/${layer.digest} HTTP/1.1\r\nHost: regcache\r\n\r\n`);
      await waitUntil(() => c.text.length > 0, { timeoutMs: 15_000, message: 'blob reader got no answer' });
      busy.push(c);
    }
    const refused = await open(rc.port);
    refused.socket.write('GET /v2/ HTTP/1.1\r\nHost: regcache\r\n\r\n');
    await waitUntil(() => refused.closed || refused.text.includes('}'), { timeoutMs: 5_000, message: 'the extra connection got no answer' });
    expect(refused.text.split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
    expect(refused.text).toContain('"code":"UNAVAILABLE"');
    expect(busy.filter((c) => c.closed)).toHaveLength(0);
    for (const c of [...busy, refused]) c.socket.destroy();
  });
});
