/**
 * Fan-out of one cold blob to many concurrent readers, in-process: the blob cache with a real
 * index, store and upstream client in front of a node:http fake upstream on 127.0.0.1 that
 * counts its requests. No system tools.
 *
 * The blob is 8 MiB, not 64: 1,000 readers each hash every byte, and 1,000 x 64 MiB of sha256
 * is ~40 s of CPU on this machine; 8 MiB still spans two 4 MiB memory windows, so readers
 * also read back from the temp file.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics/metrics.js';
import { Admission } from '../../src/registry/proxy/admission.js';
import { BlobCache } from '../../src/registry/proxy/blob-cache.js';
import { FillBody } from '../../src/registry/proxy/fill-body.js';
import { Pins } from '../../src/registry/proxy/pins.js';
import { FsBlobStore } from '../../src/store/fs/fs-blob-store.js';
import { SqliteMetadataStore } from '../../src/store/sqlite/sqlite-metadata-store.js';
import { UpstreamClient } from '../../src/upstream/client.js';
import { RegistryClient } from '../../src/upstream/registry-client.js';
import { SlabPool } from '../../src/registry/proxy/slabs.js';
import { consume, consumeBody, fanOut, lentBody, randomBlob, sink, upstreamBody, withFill, type TestBlob } from './fill-fanout-harness.js';

const READERS = 1000;
const REPO = 'fan/out';

interface FakeUpstream {
  server: Server;
  url: string;
  /** Blob GETs and HEADs received. */
  requests: number;
}

/** Serves `blob` at /v2/<REPO>/blobs/<digest> in 64 KiB writes, as a registry does. */
async function startUpstream(blob: TestBlob, sendBytes: Buffer): Promise<FakeUpstream> {
  const up: FakeUpstream = { server: createServer(), url: '', requests: 0 };
  up.server.on('request', (req, res) => {
    if (req.url !== `/v2/${REPO}/blobs/${blob.digest}`) {
      res.writeHead(404).end();
      return;
    }
    up.requests++;
    res.writeHead(200, { 'content-length': String(sendBytes.length), 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    upstreamBody(sendBytes).pipe(res);
  });
  await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve));
  up.url = `http://127.0.0.1:${(up.server.address() as AddressInfo).port}`;
  return up;
}

async function newCache(dataDir: string, upstreamUrl: string): Promise<{ cache: BlobCache; client: RegistryClient; index: SqliteMetadataStore }> {
  const blobs = new FsBlobStore(dataDir);
  await blobs.init();
  const index = new SqliteMetadataStore(blobs.layout.indexFile);
  await index.init();
  // No retention limit and no disk check: every fill is admitted.
  const admission = new Admission({ used: () => 0, maxSize: () => undefined, disk: async () => undefined, evict: async () => undefined });
  const cache = new BlobCache({
    blobs, meta: index, pins: new Pins(), metrics: new Metrics({ defaultMetrics: false }),
    log: pino({ level: 'silent' }), admission, now: Date.now,
  });
  const client = new RegistryClient(new UpstreamClient(
    { host: 'fake.test', url: upstreamUrl, insecureSkipVerify: false, immutableTags: [], allowedHosts: [], blobReader: 'socket' },
    { timeouts: { connect: 5_000, headers: 30_000, idle: 60_000, manifestTotal: 30_000 }, health: { maxFails: 100, failTimeout: 1_000 }, userAgent: 'regcache-test' },
  ));
  return { cache, client, index };
}

/** READERS concurrent GETs of the cold blob; every body read to its end or error (sha256 of each). */
async function pullAll(cache: BlobCache, client: RegistryClient, digest: string): Promise<Array<{ bytes: number; digest?: string; outcome: string }>> {
  return Promise.all(Array.from({ length: READERS }, async () => {
    try {
      const answer = await cache.get(client, { upstream: 'fake.test', repo: REPO }, digest, 'GET', undefined);
      if (!(answer.body instanceof FillBody)) return { bytes: 0, outcome: 'rejected: not a FillBody' };
      // A FillBody (size known) goes through writeTo, as an HTTP/1.1 response takes it.
      return await consumeBody(answer.body as Readable | FillBody, true);
    } catch (err) {
      return { bytes: 0, outcome: `rejected: ${(err as Error).message}` };
    }
  }));
}

describe('one cold blob, 1,000 concurrent readers', () => {
  const blob = randomBlob(8 * 1024 * 1024);
  const dirs: string[] = [];
  const servers: Server[] = [];
  const closers: Array<() => Promise<void> | void> = [];

  afterAll(async () => {
    for (const c of closers) await c();
    for (const s of servers) await new Promise<void>((resolve) => s.close(() => resolve()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const setup = async (sendBytes: Buffer): Promise<{ up: FakeUpstream; cache: BlobCache; client: RegistryClient; index: SqliteMetadataStore }> => {
    const up = await startUpstream(blob, sendBytes);
    servers.push(up.server);
    const dir = mkdtempSync(join(tmpdir(), 'regcache-fanout-'));
    dirs.push(dir);
    const c = await newCache(dir, up.url);
    closers.push(() => c.client.transport.close(), () => c.index.close());
    return { up, ...c };
  };

  it('every reader gets the verified blob from one upstream GET, and it is committed once', async () => {
    const { up, cache, client, index } = await setup(blob.bytes);
    const results = await pullAll(cache, client, blob.digest);
    await cache.idle();
    const wrong = results.filter((r) => r.outcome !== 'end' || r.bytes !== blob.bytes.length || r.digest !== blob.digest);
    expect(wrong.length, `first wrong: ${JSON.stringify(wrong[0])}`).toBe(0);
    expect(up.requests).toBe(1);
    expect(await index.blobSize(blob.digest)).toBe(blob.bytes.length);
  }, 180_000);

  it('a corrupt upstream body makes every reader error, never end cleanly, and nothing is stored', async () => {
    const corrupt = Buffer.from(blob.bytes);
    const last = corrupt.length - 1;
    corrupt.writeUInt8(corrupt.readUInt8(last) ^ 0xff, last); // same length, wrong last byte: only the digest can tell
    const { up, cache, client, index } = await setup(corrupt);
    const results = await pullAll(cache, client, blob.digest);
    await cache.idle();
    const ended = results.filter((r) => r.outcome === 'end');
    expect(ended.length).toBe(0);
    expect(results.every((r) => r.outcome === 'error')).toBe(true);
    // Every reader was held back before the last byte: none saw the whole (wrong) body.
    expect(results.every((r) => r.bytes < blob.bytes.length)).toBe(true);
    expect(up.requests).toBe(1);
    expect(await index.blobSize(blob.digest)).toBeUndefined();
  }, 180_000);
});

describe('fill fan-out without HTTP', () => {
  it('a lent body (one reused read buffer, scribbled over after each read): Readable and writeTo readers all verify; every slab comes back', async () => {
    const blob = randomBlob(6 * 1024 * 1024 + 123);
    const slabs = new SlabPool(100_000, 8); // slab and read boundaries do not line up
    const run = await withFill({ blob, body: lentBody(blob.bytes, 50_001), slabs }, (fill) => [
      ...Array.from({ length: 20 }, () => consume(fill.createReader(), true)),
      ...Array.from({ length: 20 }, () => consumeBody(new FillBody(fill, 0, blob.bytes.length - 1), true)),
      consumeBody(new FillBody(fill, 1000, 5_000_000), true),
    ]);
    expect(run.fill.state).toBe('done');
    expect(run.commits).toBe(1);
    for (const r of run.results.slice(0, 40)) expect(r).toEqual({ bytes: blob.bytes.length, digest: blob.digest, outcome: 'end' });
    const want = `sha256:${createHash('sha256').update(blob.bytes.subarray(1000, 5_000_001)).digest('hex')}`;
    expect(run.results[40]).toEqual({ bytes: 5_000_000 - 1000 + 1, digest: want, outcome: 'end' });
    expect(slabs.outstanding).toBe(0);
    expect(slabs.idle).toBeGreaterThan(0);
  }, 60_000);

  it('a body that failed before the fill started (a reset while admission ran) fails the fill; it does not hang', async () => {
    const blob = randomBlob(1024 * 1024);
    const body = lentBody(blob.bytes);
    body.destroy(Object.assign(new Error('socket reset'), { code: 'ECONNRESET' }));
    await new Promise((resolve) => setImmediate(resolve));
    const run = await withFill({ blob, body, slabs: new SlabPool() }, (fill) => [consume(fill.createReader(), false)]);
    expect(run.fill.state).toBe('failed');
    expect(run.fill.error?.message).toMatch(/socket reset/);
    expect(run.results[0]!.outcome).toBe('error');
  }, 10_000);

  it('a corrupt lent body: every reader errors, nothing is committed, every slab comes back', async () => {
    const blob = randomBlob(3 * 1024 * 1024);
    const corrupt = Buffer.from(blob.bytes);
    corrupt.writeUInt8(corrupt.readUInt8(corrupt.length - 1) ^ 0xff, corrupt.length - 1);
    const slabs = new SlabPool(256 * 1024, 8);
    const leaving = sink(false);
    const run = await withFill({ blob, body: lentBody(corrupt), slabs }, (fill) => [
      ...Array.from({ length: 10 }, () => consumeBody(new FillBody(fill, 0, blob.bytes.length - 1), false).then((r) => r.outcome)),
      consume(fill.createReader(), false).then((r) => r.outcome),
      // One client leaves half-way.
      new FillBody(fill, 0, blob.bytes.length - 1).writeTo(leaving.dest).then(() => 'end', () => 'error'),
      new Promise<string>((resolve) => {
        const t = setInterval(() => {
          if (leaving.bytes() > 1024 * 1024) {
            clearInterval(t);
            leaving.dest.destroy();
            resolve('left');
          }
        }, 1);
      }),
    ]);
    expect(run.fill.state).toBe('failed');
    expect(run.commits).toBe(0);
    expect(run.results).toEqual([...Array.from({ length: 12 }, () => 'error'), 'left']);
    // Write callbacks of the destroyed client run on the next ticks.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(slabs.outstanding).toBe(0);
  }, 60_000);

  it('readers that join one fill all get every byte, in order, and one commit', async () => {
    const blob = randomBlob(6 * 1024 * 1024 + 123);
    // Odd upstream chunk sizes, so chunk and window boundaries do not line up.
    const body = upstreamBody(blob.bytes, 50_001);
    const run = await fanOut({ blob, readers: 50, hash: true, body });
    expect(run.fill.state).toBe('done');
    expect(run.commits).toBe(1);
    for (const r of run.results) expect(r).toEqual({ bytes: blob.bytes.length, digest: blob.digest, outcome: 'end' });
  }, 60_000);

  it('FillBody.writeTo into slow clients: every byte, in order, one commit', async () => {
    const blob = randomBlob(6 * 1024 * 1024 + 123);
    const run = await fanOut({ blob, readers: 50, hash: true, body: upstreamBody(blob.bytes, 50_001), writeTo: true });
    expect(run.fill.state).toBe('done');
    expect(run.commits).toBe(1);
    for (const r of run.results) expect(r).toEqual({ bytes: blob.bytes.length, digest: blob.digest, outcome: 'end' });
  }, 60_000);

  it('FillBody.writeTo of a range sends exactly those bytes', async () => {
    const blob = randomBlob(6 * 1024 * 1024);
    const ranges: Array<[number, number]> = [[0, 0], [1000, 5_000_000], [4_194_000, 4_194_999], [blob.bytes.length - 10, blob.bytes.length - 1]];
    const run = await withFill({ blob, body: upstreamBody(blob.bytes, 50_001) }, (fill) => ranges.map(([a, b]) => consumeBody(new FillBody(fill, a, b), true)));
    ranges.forEach(([a, b], i) => {
      const want = `sha256:${createHash('sha256').update(blob.bytes.subarray(a, b + 1)).digest('hex')}`;
      expect(run.results[i]).toEqual({ bytes: b - a + 1, digest: want, outcome: 'end' });
    });
  }, 60_000);

  it('a failed fill rejects every writeTo, also one whose client stopped reading', async () => {
    const blob = randomBlob(6 * 1024 * 1024);
    const corrupt = Buffer.from(blob.bytes);
    corrupt.writeUInt8(corrupt.readUInt8(corrupt.length - 1) ^ 0xff, corrupt.length - 1);
    // A client that takes 64 KiB and then never calls back: its writer waits for 'drain' forever.
    let stalledBytes = 0;
    const stalled = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _enc, cb): void {
        stalledBytes += chunk.length;
        if (stalledBytes < 64 * 1024) cb();
      },
    });
    const run = await withFill({ blob, body: upstreamBody(corrupt) }, (fill) => [
      new FillBody(fill, 0, blob.bytes.length - 1).writeTo(stalled).then(() => 'end', () => 'error'),
      ...Array.from({ length: 10 }, () => consumeBody(new FillBody(fill, 0, blob.bytes.length - 1), false).then((r) => (r.bytes < blob.bytes.length ? r.outcome : 'whole'))),
    ]);
    expect(run.fill.state).toBe('failed');
    expect(run.commits).toBe(0);
    expect(run.results).toEqual(Array.from({ length: 11 }, () => 'error'));
    stalled.destroy();
  }, 60_000);

  it('a client that leaves mid-blob gets a rejection; the fill and the other readers go on', async () => {
    const blob = randomBlob(6 * 1024 * 1024);
    const leaving = sink(false);
    const run = await withFill({ blob, body: upstreamBody(blob.bytes) }, (fill) => {
      const left = new FillBody(fill, 0, blob.bytes.length - 1).writeTo(leaving.dest).then(() => 'end', () => 'error');
      const timer = setInterval(() => {
        if (leaving.bytes() > 1024 * 1024) {
          clearInterval(timer);
          leaving.dest.destroy();
        }
      }, 1);
      const others = Array.from({ length: 5 }, () => consumeBody(new FillBody(fill, 0, blob.bytes.length - 1), true).then((r) => r.digest === blob.digest && r.outcome));
      return [left, ...others];
    });
    expect(run.results).toEqual(['error', 'end', 'end', 'end', 'end', 'end']);
    expect(run.fill.state).toBe('done');
    expect(run.commits).toBe(1);
    expect(run.fill.isOpen).toBe(false);
  }, 60_000);
});
