/**
 * The blob route's stream path (routes/blobs.ts streamBody): when the client goes away
 * mid-body, over HTTP/1.1 and over HTTP/2 (the compat Http2ServerResponse, which every TLS
 * client that negotiates h2 takes; it 'finish'es when its stream is reset), the body's
 * source is destroyed (else it holds its upstream connection or its fill) and the request is
 * recorded as failed. Found by review helper-27.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { blobs } from '../../src/http/routes/blobs.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

interface Probe {
  src: Readable;
  destroyed: () => boolean;
  state: { upstream: string; kind: string; bytes: number; error?: string };
  routeDone: Promise<void>;
}

/** A never-ending body (like a large blob trickling from upstream or a file). */
function endlessBody(): Readable {
  let n = 0;
  return new Readable({
    read() {
      setTimeout(() => this.push(Buffer.alloc(16 * 1024, n++ % 256)), 5);
    },
  });
}

function ctxFor(req: unknown, res: unknown, src: Readable | { stream(): Readable }, probes: Probe[], size?: number): void {
  const state = { upstream: '', kind: 'blob', bytes: 0 } as Probe['state'];
  const repo = {
    kind: 'proxy', name: { upstream: 'u.example', repo: 'team/app' },
    getBlob: async () => ({ digest: DIGEST, size, body: src, source: 'passthrough' as const }),
  };
  const ctx = {
    req, res, state, method: 'GET', listener: { serveMetrics: false },
    target: { endpoint: { kind: 'blob', name: 'team/app', digest: DIGEST }, ns: undefined },
    deps: { namespace: { resolve: () => repo }, metrics: { bytesServed: { inc: () => undefined } }, log: { error: () => undefined } },
  };
  const routeDone = blobs.methods.GET!(ctx as never);
  probes.push({ src: src as Readable, destroyed: () => (src as Readable).destroyed, state, routeDone });
}

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

describe('streamBody: client goes away mid-body', () => {
  it('HTTP/1.1: the source is destroyed and the request is recorded as failed', async () => {
    const probes: Probe[] = [];
    const server = http.createServer((req, res) => ctxFor(req, res, endlessBody(), probes, 1 << 30));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => server.close());
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => {
      const req = http.get({ port, host: '127.0.0.1', path: '/' }, (res) => {
        res.once('data', () => { req.destroy(); resolve(); });
      });
      req.on('error', () => undefined);
    });
    expect(await until(() => probes[0]?.destroyed() === true)).toBe(true);
    await probes[0]!.routeDone;
    expect(probes[0]!.state.error).toBe('client went away');
  });

  it('HTTP/2: a client that resets its stream mid-body leaves the source destroyed', async () => {
    const probes: Probe[] = [];
    const server = http2.createServer((req, res) => ctxFor(req, res, endlessBody(), probes, 1 << 30));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (s) => sessions.add(s));
    closers.push(() => { for (const s of sessions) s.destroy(); server.close(); });
    const port = (server.address() as AddressInfo).port;
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => undefined);
    closers.push(() => client.destroy());
    await new Promise<void>((resolve) => {
      const req = client.request({ ':path': '/' });
      req.on('error', () => undefined);
      req.once('data', () => { req.close(http2.constants.NGHTTP2_CANCEL); resolve(); });
      req.end();
    });
    await probes[0]!.routeDone;
    const destroyed = await until(() => probes[0]!.destroyed(), 2000);
    expect(probes[0]!.state.error).toBeDefined();
    expect(destroyed).toBe(true);
  });
});
