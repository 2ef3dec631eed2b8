/**
 * Blob GET/HEAD for proxied repositories: from the blob store when cached, otherwise
 * through one coalesced fill per digest (every concurrent requester streams from the
 * growing spool), or streamed through without caching when admission refuses. See
 * docs/cache.md.
 */
import { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { EventBus } from '../../events/event-bus.js';
import type { Metrics, CacheResult } from '../../metrics/metrics.js';
import { OciError } from '../../protocol/errors.js';
import { parseRange } from '../../protocol/range.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { MetadataStore } from '../../store/metadata-store.js';
import type { FillCluster } from '../../replicas/fill-cluster.js';
import type { LeaseHolder } from '../../replicas/leases.js';
import { discard } from '../../upstream/body.js';
import type { RegistryClient } from '../../upstream/registry-client.js';
import type { BlobAnswer } from '../repository.js';
import type { Admission } from './admission.js';
import { FillBody } from './fill-body.js';
import { BlobFill, FillError } from './fill.js';
import { SlabPool } from './slabs.js';
import type { Pins } from './pins.js';
import { toClientError } from './remote-errors.js';
import { ensureLinked, type Scope } from './scope.js';
import { verifyingStream } from './verify-stream.js';

export interface BlobCacheDeps {
  blobs: BlobStore;
  meta: MetadataStore;
  pins: Pins;
  metrics: Metrics;
  log: Logger;
  admission: Admission;
  now: () => number;
  events?: EventBus | undefined;
  /** Committed blobs are answered with a redirect to a URL valid this long (s), when the store has them. */
  redirectSeconds?: number | undefined;
  /** Replicas: one fill per digest across the cluster (replicas/fill-cluster.ts). */
  cluster?: FillCluster | undefined;
}

interface Pending {
  scope: Scope;
  fill: Promise<BlobFill | 'passthrough'>;
  /** The fill once it started (the admin status shows its progress). */
  started?: BlobFill;
}

export interface FillProgress {
  upstream: string;
  repo: string;
  digest: string;
  received: number;
  size: number | undefined;
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
  /** Fills not settled yet (a fill leaves `pending` before its temp file is removed). */
  private readonly running = new Set<Promise<void>>();
  /** Digests whose last fill ran out of disk: stream them through for a while. */
  private readonly noCache = new LRUCache<string, true>({ max: 10_000, ttl: 10 * 60_000 });
  /** Cluster lease claims in flight, one per digest, shared by this replica's requesters. */
  private readonly claims = new Map<string, Promise<LeaseHolder | undefined>>();
  /** Reused buffers the fills copy lent upstream bodies into (slabs.ts). */
  private readonly slabs = new SlabPool();

  constructor(private readonly d: BlobCacheDeps) {}

  /** Whether a fill of `digest` is in progress (retention leaves it alone). */
  isFilling(digest: string): boolean {
    return this.pending.has(digest);
  }

  /** Fills in progress with the bytes received so far. */
  inFlight(): FillProgress[] {
    const out: FillProgress[] = [];
    for (const [digest, p] of this.pending) {
      const f = p.started;
      out.push({ upstream: p.scope.upstream, repo: p.scope.repo, digest, received: f?.received ?? 0, size: f?.size });
    }
    return out;
  }

  /** idle(), given at most `ms` (shutdown); resolves false when fills were still running. */
  async idleWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
    try {
      return await Promise.race([this.idle().then(() => true as const), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves once the fill of `digest` in flight now (if any) is committed or has failed. */
  async settled(digest: string): Promise<void> {
    const p = this.pending.get(digest);
    if (!p) return;
    const f = await p.fill.catch(() => 'passthrough' as const);
    if (f !== 'passthrough') await f.settledPromise;
  }

  /** Resolves once every fill in flight now has been committed or has failed. */
  async idle(): Promise<void> {
    while (this.pending.size > 0 || this.running.size > 0) {
      await Promise.allSettled([...this.running, ...[...this.pending.values()].map(async (p) => {
        const f = await p.fill;
        if (f !== 'passthrough') await f.settledPromise;
      })]);
    }
  }

  async get(client: RegistryClient, scope: Scope, digest: string, method: 'GET' | 'HEAD', rangeHeader: string | undefined, attempt = 0): Promise<BlobAnswer> {
    const { meta, metrics } = this.d;
    const cachedSize = await meta.blobSize(digest);
    if (cachedSize !== undefined) {
      await ensureLinked(meta, client, scope, digest, 'blob');
      const range = rangeOrThrow(rangeHeader, cachedSize);
      const answer = await this.fromDisk(digest, cachedSize, range, method);
      if (answer) {
        meta.touch(digest, this.d.now());
        metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'blob', result: 'hit' });
        return answer;
      }
      // The file vanished under the index (evicted, or removed by hand): refetch.
      this.d.log.warn({ digest }, 'indexed blob missing on disk; refetching');
    }

    const pending = this.pending.get(digest);
    if (pending) {
      if (pending.scope.upstream !== scope.upstream || pending.scope.repo !== scope.repo) {
        await ensureLinked(meta, client, scope, digest, 'blob');
      }
      return this.join(pending, scope, digest, method, rangeHeader, client);
    }
    if (method === 'HEAD') return this.headUpstream(client, scope, digest);
    if (this.noCache.has(digest)) return this.passthrough(client, scope, digest, rangeHeader);
    if (this.d.cluster) {
      const peer = await this.claim(this.d.cluster, digest);
      const meanwhile = this.pending.get(digest);
      if (meanwhile) return this.join(meanwhile, scope, digest, method, rangeHeader, client);
      if (peer) return this.fromPeer(this.d.cluster, peer, client, scope, digest, rangeHeader, attempt);
      // Ours now; but another replica may have committed it just before releasing the lease.
      if ((await meta.blobSize(digest)) !== undefined && !this.pending.has(digest)) {
        this.d.cluster.release(digest);
        return this.get(client, scope, digest, method, rangeHeader, attempt + 1);
      }
      const again = this.pending.get(digest);
      if (again) return this.join(again, scope, digest, method, rangeHeader, client);
    }
    const p: Pending = { scope, fill: this.startFill(client, scope, digest) };
    this.pending.set(digest, p);
    p.fill.then(
      (f) => {
        if (f === 'passthrough') this.settle(digest);
        else p.started = f;
      },
      () => this.settle(digest),
    );
    return this.join(p, scope, digest, 'GET', rangeHeader, client);
  }

  /** The fill of `digest` here is over: forget it, and free its cluster lease. */
  private settle(digest: string): void {
    this.pending.delete(digest);
    this.d.cluster?.release(digest);
  }

  private claim(cluster: FillCluster, digest: string): Promise<LeaseHolder | undefined> {
    let c = this.claims.get(digest);
    if (!c) {
      c = cluster.claim(digest).finally(() => this.claims.delete(digest));
      this.claims.set(digest, c);
    }
    return c;
  }

  /**
   * Another replica is filling `digest`: stream its live fill (no wait for the whole blob).
   * When it has none any more, or cannot be reached (its lease is taken over), start again.
   */
  private async fromPeer(
    cluster: FillCluster, peer: LeaseHolder, client: RegistryClient, scope: Scope, digest: string, rangeHeader: string | undefined, attempt: number,
  ): Promise<BlobAnswer> {
    if (attempt >= 5) throw new OciError('UNAVAILABLE', 'the replica filling this blob does not answer; try again');
    await ensureLinked(this.d.meta, client, scope, digest, 'blob');
    let got;
    try {
      got = await cluster.fetch(peer, digest);
    } catch (err) {
      this.d.log.warn({ digest, peer: peer.holder, err: (err as Error).message }, 'replica filling a blob is unreachable; taking over');
      await cluster.takeOver(digest, peer);
      return this.get(client, scope, digest, 'GET', rangeHeader, attempt + 1);
    }
    if (!got) {
      await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
      return this.get(client, scope, digest, 'GET', rangeHeader, attempt + 1);
    }
    let range;
    try {
      range = rangeOrThrow(rangeHeader, got.size);
    } catch (err) {
      got.body.destroy();
      throw err;
    }
    this.d.metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'blob', result: 'miss' });
    this.d.metrics.peerStreams.inc();
    if (!range) return { digest, size: got.size, body: got.body, source: 'miss' };
    return { digest, size: got.size, range, body: sliceStream(got.body, range.start, range.end), source: 'miss' };
  }

  /**
   * This replica's live fill of `digest`, from byte 0, for a peer (the internal endpoint);
   * undefined when there is none.
   */
  async liveFill(digest: string): Promise<{ size: number | undefined; body: Readable } | undefined> {
    const p = this.pending.get(digest);
    if (!p) return undefined;
    const fill = await p.fill.catch(() => undefined);
    if (!fill || fill === 'passthrough' || !fill.isOpen || fill.state === 'failed') return undefined;
    const release = this.d.pins.pin(digest);
    const body = fill.createReader(0);
    body.once('close', release);
    return { size: fill.size, body };
  }

  private async fromDisk(digest: string, size: number, range: { start: number; end: number } | undefined, method: 'GET' | 'HEAD'): Promise<BlobAnswer | undefined> {
    if (method === 'HEAD') return { digest, size, source: 'hit', ...(range ? { range } : {}) };
    const { blobs, redirectSeconds } = this.d;
    if (redirectSeconds && blobs.redirectUrl && (await blobs.stat(digest)) !== undefined) {
      // The client fetches (and ranges) from the object store itself; regcache sends no bytes.
      return { digest, size, source: 'hit', location: await blobs.redirectUrl(digest, redirectSeconds) };
    }
    const release = this.d.pins.pin(digest);
    const body = await this.d.blobs.open(digest, size, range?.start, range?.end);
    if (!body) {
      release();
      return undefined;
    }
    body.onClose(release);
    return { digest, size, body, source: 'hit', ...(range ? { range } : {}) };
  }

  private async join(p: Pending, scope: Scope, digest: string, method: 'GET' | 'HEAD', rangeHeader: string | undefined, client: RegistryClient): Promise<BlobAnswer> {
    let fill;
    try {
      fill = await p.fill;
    } catch (err) {
      // A fill started for another repository failed before it began (its upstream said 404,
      // say): that is not this repository's answer. The failed fill is gone from `pending`
      // by now, so this starts a fill of its own. (The soak's one failure in ~95,000: a bad
      // request for a blob through the wrong repository, joined by a valid pull.)
      if (p.scope.upstream !== scope.upstream || p.scope.repo !== scope.repo) return this.get(client, scope, digest, method, rangeHeader);
      throw err;
    }
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
    this.d.metrics.fillWaiters.inc();
    const done = (): void => {
      this.d.metrics.fillWaiters.dec();
      release();
    };
    // Size known: a body an HTTP/1.1 response takes without a stream (fill-body.ts).
    if (fill.size !== undefined) {
      const body = new FillBody(fill, range?.start ?? 0, range?.end ?? fill.size - 1);
      body.onClose(done);
      return { digest, size: fill.size, body, source, ...(range ? { range } : {}) };
    }
    const body = fill.createReader(range?.start ?? 0, range?.end);
    body.once('close', done);
    return { digest, size: fill.size, body, source, ...(range ? { range } : {}) };
  }

  private async headUpstream(client: RegistryClient, scope: Scope, digest: string): Promise<BlobAnswer> {
    let size;
    try {
      ({ size } = await client.headBlob(scope.repo, digest));
    } catch (err) {
      throw toClientError(err, scope.upstream, 'blob');
    }
    this.d.metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'blob', result: 'miss' });
    return { digest, size, source: 'miss' };
  }

  /** An upstream GET of the blob; failures become OCI errors. */
  private async fetch(client: RegistryClient, scope: Scope, digest: string, lend = false): Promise<{ body: Readable; size: number | undefined }> {
    try {
      return await client.getBlob(scope.repo, digest, undefined, lend);
    } catch (err) {
      throw toClientError(err, scope.upstream, 'blob');
    }
  }

  /** Fetches the headers, then pumps the body into a new fill in the background. */
  private async startFill(client: RegistryClient, scope: Scope, digest: string): Promise<BlobFill | 'passthrough'> {
    // The fill takes the body lent (one reused read buffer, slabs.ts); passthrough streams it.
    const { body, size } = await this.fetch(client, scope, digest, true);
    // Replicas streaming this fill serve the same scope: the upstream just said it has the blob.
    if (this.d.cluster) await this.d.meta.link(scope, digest).catch(() => undefined);
    let reservation;
    let temp;
    try {
      reservation = await this.d.admission.admit(size);
      if (!reservation) {
        discard(body);
        return 'passthrough';
      }
      temp = await this.d.blobs.createSpool();
    } catch (err) {
      reservation?.release();
      this.d.log.warn({ err: (err as Error).message }, 'cannot start a fill; streaming through');
      discard(body);
      return 'passthrough';
    }
    const { blobs, meta, metrics, log } = this.d;
    // A chunked answer (no Content-Length) was admitted without a size: once it grows past
    // retention.maxSize it is still served to its readers, but never kept (issue 10, item 17).
    let tooLarge = false;
    const fill: BlobFill = new BlobFill(digest, size, temp, {
      commit: async (t, n) => {
        try {
          if (tooLarge) throw new Error(`chunked blob of ${n} bytes is larger than retention.maxSize`);
          // Readers have their bytes already: waiting here for evictions delays no client.
          if (!(await reservation.room(n))) throw new NoRoom(`no room under retention.maxSize for ${n} bytes after evicting`);
          // An eviction deleting an older file of this digest finishes first (Pins.markDeleting).
          await this.d.pins.settled(digest);
          await blobs.commit(t, digest);
          try {
            await meta.putBlob(digest, n, scope, this.d.now());
          } catch (err) {
            // No row, no blob: never leave bytes the metadata store does not know.
            await blobs.delete(digest).catch(() => undefined);
            throw err;
          }
        } finally {
          this.settle(digest);
        }
      },
      discard: async (t) => {
        this.settle(digest);
        await blobs.discard(t);
      },
      onBytes: (n) => {
        metrics.upstreamBytes.inc({ upstream: scope.upstream }, n);
        if (size === undefined && !tooLarge && !this.d.admission.mayKeep(fill.received)) tooLarge = true;
      },
    }, this.slabs);
    metrics.fillsInFlight.inc();
    const settled = fill.settledPromise;
    this.running.add(settled);
    void settled.then(() => this.running.delete(settled));
    const started = Date.now();
    void fill.run(body).then(() => {
      reservation.release();
      metrics.fillsInFlight.dec();
      const where = { upstream: scope.upstream, repo: scope.repo, digest, bytes: fill.written };
      if (fill.state === 'done') {
        if (fill.committed) log.debug({ ...where, ms: Date.now() - started }, 'blob cached');
        else {
          // Not kept for lack of room: the next pull tries again (a sweep may have made room).
          if (!(fill.commitError instanceof NoRoom)) this.noCache.set(digest, true);
          log.warn({ ...where, err: fill.commitError?.message }, 'blob verified and served but not stored');
        }
        return;
      }
      const err = fill.error as FillError;
      if (err.reason === 'digest') {
        metrics.digestMismatches.inc({ upstream: scope.upstream });
        this.d.events?.emit('digest.mismatch', { upstream: scope.upstream, repo: scope.repo, digest, kind: 'blob' }, scope.upstream);
      }
      if (err.reason === 'upstream') client.health.failure(`blob body failed: ${err.message}`.slice(0, 300));
      if (err.reason === 'disk') this.noCache.set(digest, true);
      log.warn({ ...where, reason: err.reason, err: err.message }, 'blob fill failed; nothing stored');
    });
    return fill;
  }

  /** No room in the store: this client gets its own upstream stream, verified but not kept. */
  private async passthrough(client: RegistryClient, scope: Scope, digest: string, rangeHeader: string | undefined): Promise<BlobAnswer> {
    const { body, size } = await this.fetch(client, scope, digest);
    let range;
    try {
      range = rangeOrThrow(rangeHeader, size);
    } catch (err) {
      discard(body);
      throw err;
    }
    this.d.metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'blob', result: 'passthrough' });
    const onMismatch = (): void => {
      this.d.metrics.digestMismatches.inc({ upstream: scope.upstream });
      this.d.events?.emit('digest.mismatch', { upstream: scope.upstream, repo: scope.repo, digest, kind: 'blob' }, scope.upstream);
    };
    body.on('data', (c: Buffer) => this.d.metrics.upstreamBytes.inc({ upstream: scope.upstream }, c.length));
    const verified = body.pipe(verifyingStream(digest, onMismatch));
    // As the client's error (a stalled body 504, a failed one 502) if nothing has gone out yet.
    body.once('error', (e) => verified.destroy(new FillError('upstream', `upstream body failed: ${e.message}`, e)));
    verified.once('close', () => body.destroy());
    if (!range) return { digest, size, body: verified, source: 'passthrough' };
    return { digest, size, range, body: sliceStream(verified, range.start, range.end), source: 'passthrough', quietUntilVerified: true };
  }
}

/** A verified fill not kept because evictions could not make room under retention.maxSize. */
class NoRoom extends Error {
  override name = 'NoRoom';
}

/**
 * Bytes [start, end] of a verifying stream (used only for passthrough ranges, rare). The
 * piece with the range's last byte is held until the whole blob has come and verified (the
 * source ends only then): a range is never complete with bytes that turn out wrong, as for
 * the fill's readers (BlobFill.limitFor). The client of a range waits for the whole blob.
 */
function sliceStream(src: Readable, start: number, end: number): Readable {
  async function* slice(): AsyncGenerator<Buffer> {
    let pos = 0;
    let last: Buffer | undefined;
    for await (const chunk of src as AsyncIterable<Buffer>) {
      const from = Math.max(0, start - pos);
      const to = Math.min(chunk.length, end + 1 - pos);
      pos += chunk.length;
      if (to <= from) continue;
      if (pos > end) last = chunk.subarray(from, to);
      else yield chunk.subarray(from, to);
    }
    if (last) yield last;
  }
  const out = Readable.from(slice(), { objectMode: false });
  out.once('close', () => src.destroy());
  return out;
}
