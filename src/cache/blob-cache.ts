/**
 * Blob GET/HEAD: from disk when cached, otherwise through one coalesced fill per digest
 * (every concurrent requester streams from the growing temp file), or streamed through
 * without caching when the store has no room. See docs/cache.md.
 */
import { discard } from '../upstream/body.js';
import { Readable, type Writable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Metrics, CacheResult } from '../metrics/metrics.js';
import { OciError } from '../protocol/errors.js';
import { parseRange } from '../protocol/range.js';
import type { BlobFiles } from '../storage/blob-files.js';
import type { IndexDb } from '../storage/index-db.js';
import type { UpstreamClient } from '../upstream/client.js';
import { BlobFill, FillError } from './fill.js';
import type { Pins } from './pins.js';
import { ensureLinked, type Scope } from './scope.js';
import { fromUpstreamFailure, fromUpstreamStatus, header } from './upstream-errors.js';
import { verifyingStream } from './verify-stream.js';

/**
 * A body that writes itself to a plain writable with pooled buffers (a file from the
 * store: storage/file-body.ts), or gives a stream for anything else.
 */
export interface SelfWritingBody {
  canWritePooled(): boolean;
  writeTo(dest: Writable): Promise<number>;
  stream(): Readable;
}

export function isSelfWriting(body: Readable | SelfWritingBody): body is SelfWritingBody {
  return typeof (body as SelfWritingBody).writeTo === 'function';
}

export interface BlobAnswer {
  digest: string;
  /** Full blob size; undefined only for a chunked upstream answer during a fill. */
  size: number | undefined;
  /** Set for a 206 answer: inclusive byte range. */
  range?: { start: number; end: number };
  /** The body for GET (a file from the store, or a stream); absent for HEAD. */
  body?: Readable | SelfWritingBody;
  source: CacheResult;
}

/**
 * Decides whether a fill of `size` bytes may be stored (evicting first if needed), given
 * the bytes already promised to fills in flight.
 */
export type AdmitFn = (size: number | undefined, inflightBytes: number) => Promise<boolean>;

export interface BlobCacheDeps {
  index: IndexDb;
  files: BlobFiles;
  pins: Pins;
  metrics: Metrics;
  log: Logger;
  admit: AdmitFn;
  now: () => number;
}

interface Pending {
  scope: Scope;
  fill: Promise<BlobFill | 'passthrough'>;
}

function rangeOrThrow(header: string | undefined, size: number | undefined): { start: number; end: number } | undefined {
  // Size unknown (a chunked upstream answer): the whole blob, 200 (clients accept that).
  if (size === undefined) return undefined;
  const r = parseRange(header, size);
  if (r.kind === 'none') return undefined;
  if (r.kind === 'range') return { start: r.start, end: r.end };
  const headers: Record<string, string> = size === undefined ? {} : { 'content-range': `bytes */${size}` };
  const msg = r.kind === 'unsatisfiable' ? 'requested range not satisfiable' : r.reason;
  throw new OciError('RANGE_INVALID', msg, undefined, { headers });
}

export class BlobCache {
  private readonly pending = new Map<string, Pending>();
  /** Bytes announced by fills in progress: admitted but not yet in the index totals. */
  private inflightBytes = 0;
  /** Digests whose last fill ran out of disk: stream them through for a while. */
  private readonly noCache = new LRUCache<string, true>({ max: 10_000, ttl: 10 * 60_000 });

  constructor(private readonly d: BlobCacheDeps) {}

  /** Resolves once every fill in flight now has been committed or has failed. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) {
      await Promise.allSettled([...this.pending.values()].map(async (p) => {
        const f = await p.fill;
        if (f !== 'passthrough') await f.settledPromise;
      }));
    }
  }

  async get(client: UpstreamClient, scope: Scope, digest: string, method: 'GET' | 'HEAD', rangeHeader: string | undefined): Promise<BlobAnswer> {
    const { index, metrics } = this.d;
    const cachedSize = index.blobSize(digest);
    if (cachedSize !== undefined) {
      await ensureLinked(index, client, scope, digest, 'blob');
      const range = rangeOrThrow(rangeHeader, cachedSize);
      const answer = await this.fromDisk(digest, cachedSize, range, method);
      if (answer) {
        index.touch(digest, this.d.now());
        metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'blob', result: 'hit' });
        return answer;
      }
      // The file vanished under the index (evicted, or removed by hand): refetch.
      this.d.log.warn({ digest }, 'indexed blob missing on disk; refetching');
    }

    const pending = this.pending.get(digest);
    if (pending) {
      if (pending.scope.upstream !== scope.upstream || pending.scope.repo !== scope.repo) {
        await ensureLinked(index, client, scope, digest, 'blob');
      }
      return this.join(pending, scope, digest, method, rangeHeader, client);
    }
    if (method === 'HEAD') return this.headUpstream(client, scope, digest);
    if (this.noCache.has(digest)) return this.passthrough(client, scope, digest, rangeHeader);
    const p: Pending = { scope, fill: this.startFill(client, scope, digest) };
    this.pending.set(digest, p);
    p.fill.then(
      (f) => {
        if (f === 'passthrough') this.pending.delete(digest);
      },
      () => this.pending.delete(digest),
    );
    return this.join(p, scope, digest, 'GET', rangeHeader, client);
  }

  private async fromDisk(digest: string, size: number, range: { start: number; end: number } | undefined, method: 'GET' | 'HEAD'): Promise<BlobAnswer | undefined> {
    if (method === 'HEAD') return { digest, size, source: 'hit', ...(range ? { range } : {}) };
    const release = this.d.pins.pin(digest);
    const body = await this.d.files.openRead(digest, size, range?.start, range?.end);
    if (!body) {
      release();
      return undefined;
    }
    body.onClose(release);
    return { digest, size, body, source: 'hit', ...(range ? { range } : {}) };
  }

  private async join(p: Pending, scope: Scope, digest: string, method: 'GET' | 'HEAD', rangeHeader: string | undefined, client: UpstreamClient): Promise<BlobAnswer> {
    const fill = await p.fill;
    if (fill === 'passthrough') {
      return method === 'HEAD' ? this.headUpstream(client, scope, digest) : this.passthrough(client, scope, digest, rangeHeader);
    }
    // Over meanwhile (temp file closed, or failed): start again from the top, which finds
    // the committed blob or starts a fresh fill.
    if (!fill.isOpen || fill.state === 'failed') return this.get(client, scope, digest, method, rangeHeader);
    const range = rangeOrThrow(rangeHeader, fill.size);
    // A fill that is already verified (committing) serves local bytes: that is a hit.
    const source: CacheResult = fill.state === 'done' ? 'hit' : 'miss';
    this.d.metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'blob', result: source });
    if (method === 'HEAD') return { digest, size: fill.size, source, ...(range ? { range } : {}) };
    const release = this.d.pins.pin(digest);
    const body = fill.createReader(range?.start ?? 0, range?.end);
    this.d.metrics.fillWaiters.inc();
    body.once('close', () => {
      this.d.metrics.fillWaiters.dec();
      release();
    });
    return { digest, size: fill.size, body, source, ...(range ? { range } : {}) };
  }

  private async headUpstream(client: UpstreamClient, scope: Scope, digest: string): Promise<BlobAnswer> {
    const { body, size } = await this.fetch(client, scope, digest, 'HEAD');
    discard(body);
    this.d.metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'blob', result: 'miss' });
    return { digest, size, source: 'miss' };
  }

  /** An upstream GET or HEAD of the blob; non-200 answers become OCI errors. */
  private async fetch(client: UpstreamClient, scope: Scope, digest: string, method: 'GET' | 'HEAD' = 'GET'): Promise<{ body: Readable; size: number | undefined }> {
    let res;
    try {
      res = await client.request({ method, path: `/v2/${scope.repo}/blobs/${digest}`, repo: scope.repo });
    } catch (err) {
      throw fromUpstreamFailure(err, scope.upstream);
    }
    if (res.status !== 200) throw fromUpstreamStatus(res, scope.upstream, 'blob');
    const len = header(res, 'content-length');
    const size = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
    return { body: res.body, size };
  }

  /** Fetches the headers, then pumps the body into a new fill in the background. */
  private async startFill(client: UpstreamClient, scope: Scope, digest: string): Promise<BlobFill | 'passthrough'> {
    const { body, size } = await this.fetch(client, scope, digest);
    // Reserve before any await, so fills admitted in parallel see each other.
    const reserved = size ?? 0;
    const others = this.inflightBytes;
    this.inflightBytes += reserved;
    let temp;
    try {
      if (!(await this.d.admit(size, others))) {
        this.inflightBytes -= reserved;
        discard(body);
        return 'passthrough';
      }
      temp = await this.d.files.createTemp();
    } catch (err) {
      this.inflightBytes -= reserved;
      this.d.log.warn({ err: (err as Error).message }, 'cannot start a fill; streaming through');
      discard(body);
      return 'passthrough';
    }
    const { index, files, metrics, log } = this.d;
    const fill = new BlobFill(digest, size, temp, {
      commit: async (t, n) => {
        try {
          await files.commit(t, digest);
          index.putBlob(digest, n, scope, this.d.now());
        } finally {
          this.pending.delete(digest);
        }
      },
      discard: async (t) => {
        this.pending.delete(digest);
        await files.discard(t.path);
      },
      onBytes: (n) => metrics.upstreamBytes.inc({ upstream: scope.upstream }, n),
    });
    metrics.fillsInFlight.inc();
    const started = Date.now();
    void fill.run(body).then(() => {
      this.inflightBytes -= reserved;
      metrics.fillsInFlight.dec();
      const where = { upstream: scope.upstream, repo: scope.repo, digest, bytes: fill.written };
      if (fill.state === 'done') {
        if (fill.committed) log.debug({ ...where, ms: Date.now() - started }, 'blob cached');
        else {
          this.noCache.set(digest, true);
          log.warn({ ...where, err: fill.commitError?.message }, 'blob verified and served but not stored');
        }
        return;
      }
      const err = fill.error as FillError;
      if (err.reason === 'digest') metrics.digestMismatches.inc({ upstream: scope.upstream });
      if (err.reason === 'upstream') client.health.failure();
      if (err.reason === 'disk') this.noCache.set(digest, true);
      log.warn({ ...where, reason: err.reason, err: err.message }, 'blob fill failed; nothing stored');
    });
    return fill;
  }

  /** No room in the store: this client gets its own upstream stream, verified but not kept. */
  private async passthrough(client: UpstreamClient, scope: Scope, digest: string, rangeHeader: string | undefined): Promise<BlobAnswer> {
    const { body, size } = await this.fetch(client, scope, digest);
    let range;
    try {
      range = rangeOrThrow(rangeHeader, size);
    } catch (err) {
      discard(body);
      throw err;
    }
    this.d.metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'blob', result: 'passthrough' });
    const onMismatch = (): void => this.d.metrics.digestMismatches.inc({ upstream: scope.upstream });
    body.on('data', (c: Buffer) => this.d.metrics.upstreamBytes.inc({ upstream: scope.upstream }, c.length));
    const verified = body.pipe(verifyingStream(digest, onMismatch));
    body.once('error', (e) => verified.destroy(e));
    verified.once('close', () => body.destroy());
    if (!range) return { digest, size, body: verified, source: 'passthrough' };
    return { digest, size, range, body: sliceStream(verified, range.start, range.end), source: 'passthrough' };
  }
}

/** Bytes [start, end] of a stream (used only for passthrough ranges, rare). */
function sliceStream(src: Readable, start: number, end: number): Readable {
  async function* slice(): AsyncGenerator<Buffer> {
    let pos = 0;
    for await (const chunk of src as AsyncIterable<Buffer>) {
      const from = Math.max(0, start - pos);
      const to = Math.min(chunk.length, end + 1 - pos);
      pos += chunk.length;
      if (to > from) yield chunk.subarray(from, to);
    }
  }
  const out = Readable.from(slice(), { objectMode: false });
  out.once('close', () => src.destroy());
  return out;
}
