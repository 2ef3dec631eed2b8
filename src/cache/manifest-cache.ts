/**
 * Manifest GET/HEAD. By digest: immutable, local first. By tag: trusted for tagTTL (or
 * forever for immutable tag patterns), then revalidated with an upstream HEAD (free on
 * Docker Hub's rate limit); served stale when the upstream is down, slow, 5xx or 429.
 * Hot manifests and tags are answered from memory (LRU) without touching SQLite.
 * A client HEAD never causes an upstream GET.
 */
import { discard } from '../upstream/body.js';
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { CacheResult, Metrics } from '../metrics/metrics.js';
import { OciError } from '../protocol/errors.js';
import { digestAlgorithm, isValidDigest } from '../protocol/grammar.js';
import { accepts, acceptsAllManifestTypes, bareMediaType, DEFAULT_MANIFEST_ACCEPT, MANIFEST_TYPES, parseManifest } from '../protocol/media-types.js';
import type { IndexDb, ManifestRow } from '../storage/index-db.js';
import type { UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import { ensureLinked, type Scope } from './scope.js';
import { fromUpstreamFailure, fromUpstreamStatus, header, isTransient, readLimited } from './upstream-errors.js';

export interface ManifestAnswer {
  digest: string;
  mediaType: string;
  size: number;
  /** Present for GET. */
  body?: Buffer;
  source: CacheResult;
}

export interface TagPolicy {
  tagTTL: number;
  isImmutable(tag: string): boolean;
}

export interface ManifestRequest {
  scope: Scope;
  reference: string;
  isDigest: boolean;
  method: 'GET' | 'HEAD';
  /** Parsed Accept of the client (empty = anything). */
  accepted: string[];
  /** The raw Accept header, forwarded upstream. */
  acceptHeader: string | undefined;
  policy: TagPolicy;
}

export interface ManifestCacheDeps {
  index: IndexDb;
  metrics: Metrics;
  log: Logger;
  maxManifestSize: number;
  now: () => number;
}

interface TagEntry {
  digest: string;
  validatedAt: number;
}

function answer(row: ManifestRow, method: 'GET' | 'HEAD', source: CacheResult): ManifestAnswer {
  const a: ManifestAnswer = { digest: row.digest, mediaType: row.mediaType, size: row.size, source };
  if (method === 'GET') a.body = row.body;
  return a;
}

export class ManifestCache {
  private readonly rows = new LRUCache<string, ManifestRow>({
    maxSize: 64 * 1024 * 1024,
    sizeCalculation: (r) => r.size + 200,
  });
  private readonly tags = new LRUCache<string, TagEntry>({ max: 20_000 });
  private readonly inflight = new Map<string, Promise<ManifestAnswer>>();

  constructor(private readonly d: ManifestCacheDeps) {}

  /** Drops evicted manifests from memory. */
  forget(digests: Iterable<string>): void {
    for (const dg of digests) this.rows.delete(dg);
    this.tags.clear();
  }

  private row(digest: string): ManifestRow | undefined {
    let r = this.rows.get(digest);
    if (r) return r;
    r = this.d.index.getManifest(digest);
    if (r) this.rows.set(digest, r);
    return r;
  }

  private tagKey(scope: Scope, tag: string): string {
    return `${scope.upstream}/${scope.repo}:${tag}`;
  }

  private tag(scope: Scope, tag: string): TagEntry | undefined {
    const key = this.tagKey(scope, tag);
    let t = this.tags.get(key);
    if (t) return t;
    t = this.d.index.getTag(scope.upstream, scope.repo, tag);
    if (t) this.tags.set(key, t);
    return t;
  }

  private setTag(scope: Scope, tag: string, digest: string): void {
    const now = this.d.now();
    this.tags.set(this.tagKey(scope, tag), { digest, validatedAt: now });
    this.write(() => this.d.index.putTag(scope.upstream, scope.repo, tag, digest, now), 'tag');
  }

  /** Index writes that fail (disk full) are logged; the verified answer is still served. */
  private write(fn: () => void, what: string): boolean {
    try {
      fn();
      return true;
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message, what }, 'cannot write to the index; serving without caching');
      return false;
    }
  }

  private link(scope: Scope, digest: string): void {
    this.write(() => this.d.index.link(scope.upstream, scope.repo, digest), 'link');
  }

  private count(scope: Scope, result: CacheResult): void {
    this.d.metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'manifest', result });
  }

  private served(row: ManifestRow, req: ManifestRequest, source: CacheResult): ManifestAnswer {
    this.d.index.touch(row.digest, this.d.now());
    this.count(req.scope, source);
    return answer(row, req.method, source);
  }

  async get(client: UpstreamClient, req: ManifestRequest): Promise<ManifestAnswer> {
    return req.isDigest ? this.byDigest(client, req) : this.byTag(client, req);
  }

  private async byDigest(client: UpstreamClient, req: ManifestRequest): Promise<ManifestAnswer> {
    const row = this.row(req.reference);
    if (row && accepts(req.accepted, row.mediaType)) {
      await ensureLinked(this.d.index, client, req.scope, row.digest, 'manifest');
      return this.served(row, req, 'hit');
    }
    return this.fetch(client, req);
  }

  private async byTag(client: UpstreamClient, req: ManifestRequest): Promise<ManifestAnswer> {
    const { scope, reference: tag, policy } = req;
    const t = this.tag(scope, tag);
    const row = t && this.row(t.digest);
    if (!t || !row || !accepts(req.accepted, row.mediaType)) return this.fetch(client, req);

    if (policy.isImmutable(tag) || this.d.now() - t.validatedAt < policy.tagTTL) return this.served(row, req, 'hit');

    let res: UpstreamResponse;
    try {
      res = await client.request({
        method: 'HEAD', path: `/v2/${scope.repo}/manifests/${tag}`, repo: scope.repo,
        headers: { accept: req.acceptHeader ?? DEFAULT_MANIFEST_ACCEPT },
      });
    } catch (err) {
      if (!isTransient(err)) throw fromUpstreamFailure(err, scope.upstream);
      this.d.log.warn({ upstream: scope.upstream, repo: scope.repo, tag, err: (err as Error).message }, 'tag revalidation failed; serving stale');
      return this.served(row, req, 'stale');
    }
    if (res.status === 200) {
      discard(res.body);
      const current = header(res, 'docker-content-digest');
      if (current === t.digest) {
        this.setTag(scope, tag, t.digest);
        return this.served(row, req, 'revalidated');
      }
      const moved = current && isValidDigest(current) ? this.row(current) : undefined;
      if (moved && accepts(req.accepted, moved.mediaType)) {
        this.link(scope, moved.digest);
        // Only answers for clients that take every type may move the shared tag.
        if (acceptsAllManifestTypes(req.accepted)) this.setTag(scope, tag, moved.digest);
        return this.served(moved, req, 'revalidated');
      }
      const length = header(res, 'content-length');
      if (req.method === 'HEAD' && current && isValidDigest(current) && length !== undefined && /^\d+$/.test(length)) {
        // The tag moved to a digest not cached yet: answer the HEAD from this HEAD. The tag
        // keeps its old, cached digest (the stale fallback) until the new one is cached.
        this.count(scope, 'miss');
        return { digest: current, mediaType: bareMediaType(header(res, 'content-type')) || row.mediaType, size: Number(length), source: 'miss' };
      }
      try {
        return await this.fetch(client, req);
      } catch (err) {
        // The new manifest cannot be had right now (429, 5xx, down): the old one still can.
        if (err instanceof OciError && (err.status === 429 || err.status >= 500) && err.code !== 'MANIFEST_INVALID') {
          this.d.log.warn({ upstream: scope.upstream, repo: scope.repo, tag, err: err.message }, 'moved tag not fetchable; serving stale');
          return this.served(row, req, 'stale');
        }
        throw err;
      }
    }
    if (isTransient(res.status)) {
      discard(res.body);
      this.d.log.warn({ upstream: scope.upstream, repo: scope.repo, tag, status: res.status }, 'tag revalidation failed; serving stale');
      return this.served(row, req, 'stale');
    }
    throw fromUpstreamStatus(res, scope.upstream, 'manifest');
  }

  /** Asks the upstream; concurrent identical GETs share one upstream request. */
  private fetch(client: UpstreamClient, req: ManifestRequest): Promise<ManifestAnswer> {
    const key = `${req.method} ${req.scope.upstream}/${req.scope.repo}@${req.reference} ${req.acceptHeader ?? ''}`;
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const p = this.fetchOnce(client, req).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async fetchOnce(client: UpstreamClient, req: ManifestRequest): Promise<ManifestAnswer> {
    const { scope, reference } = req;
    let res: UpstreamResponse;
    try {
      res = await client.request({
        method: req.method, path: `/v2/${scope.repo}/manifests/${reference}`, repo: scope.repo,
        headers: { accept: req.acceptHeader ?? DEFAULT_MANIFEST_ACCEPT },
      });
    } catch (err) {
      throw fromUpstreamFailure(err, scope.upstream);
    }
    if (res.status !== 200) throw fromUpstreamStatus(res, scope.upstream, 'manifest');
    const contentType = bareMediaType(header(res, 'content-type'));
    const headerDigest = header(res, 'docker-content-digest');
    const length = header(res, 'content-length');

    if (req.method === 'HEAD') {
      discard(res.body);
      const digest = req.isDigest ? reference : headerDigest;
      if (!digest || !isValidDigest(digest) || length === undefined || !/^\d+$/.test(length)) {
        throw new OciError('UPSTREAM_ERROR', `upstream ${scope.upstream} answered HEAD without a usable digest or length`, undefined, { status: 502 });
      }
      const known = this.row(digest);
      // containerd resolves a tag with HEAD, then GETs by digest: record the tag now so the
      // next pull resolves from cache (also with the upstream gone). A tag whose manifest is
      // not cached yet is simply fetched on its next GET.
      if (!req.isDigest && acceptsAllManifestTypes(req.accepted)) {
        if (known) {
          this.link(scope, digest);
          this.setTag(scope, reference, digest);
        } else {
          // Never replace a cached digest (the stale fallback) with one not cached yet.
          const prev = this.tag(scope, reference);
          if (!prev || !this.row(prev.digest)) this.setTag(scope, reference, digest);
        }
      }
      this.count(scope, 'miss');
      return { digest, mediaType: contentType || known?.mediaType || 'application/octet-stream', size: Number(length), source: 'miss' };
    }

    const max = this.d.maxManifestSize;
    if (length !== undefined && Number(length) > max) {
      res.body.destroy();
      throw new OciError('MANIFEST_INVALID', `upstream manifest is larger than the ${max}-byte limit`, undefined, { status: 502 });
    }
    const body = await readLimited(res.body, max, 'upstream manifest');
    const alg = req.isDigest ? digestAlgorithm(reference) : headerDigest?.startsWith('sha512:') ? 'sha512' : 'sha256';
    const digest = `${alg}:${createHash(alg).update(body).digest('hex')}`;
    const expected = req.isDigest ? reference : headerDigest && isValidDigest(headerDigest) ? headerDigest : undefined;
    if (expected !== undefined && expected !== digest) {
      this.d.metrics.digestMismatches.inc({ upstream: scope.upstream });
      throw new OciError('MANIFEST_INVALID', `upstream manifest does not match its digest ${expected}`, undefined, { status: 502 });
    }
    const parsed = parseManifest(body, contentType);
    if (!parsed) throw new OciError('MANIFEST_INVALID', 'upstream sent a manifest that is not a JSON object', undefined, { status: 502 });
    const mediaType = (MANIFEST_TYPES as readonly string[]).includes(contentType) ? contentType : parsed.mediaType;
    const row: ManifestRow = { digest, mediaType, size: body.length, body };
    const refs = { blobs: parsed.blobs.map((b) => b.digest).filter(isValidDigest), manifests: parsed.manifests.map((m) => m.digest).filter(isValidDigest) };
    if (this.write(() => this.d.index.putManifest(row, refs, scope, this.d.now()), 'manifest')) this.rows.set(digest, row);
    if (!req.isDigest && acceptsAllManifestTypes(req.accepted)) this.setTag(scope, reference, digest);
    this.count(scope, 'miss');
    return answer(row, 'GET', 'miss');
  }
}
