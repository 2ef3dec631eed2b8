/**
 * Manifest GET/HEAD for proxied repositories. By digest: immutable, local first. By tag:
 * trusted for tagTTL (or forever for immutable tag patterns), then revalidated with an
 * upstream HEAD (free on Docker Hub's rate limit); served stale when the upstream is down,
 * slow, 5xx or 429. Decisions are the pure functions of tag-freshness.ts. Hot manifests and
 * tags are answered from memory (LRU) without touching the metadata store. A client HEAD
 * never causes an upstream GET.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { EventBus } from '../../events/event-bus.js';
import type { CacheResult, Metrics } from '../../metrics/metrics.js';
import { OciError } from '../../protocol/errors.js';
import { digestAlgorithm, isValidDigest } from '../../protocol/grammar.js';
import { accepts, acceptsAllManifestTypes, DEFAULT_MANIFEST_ACCEPT, manifestMediaType, parseManifest } from '../../protocol/media-types.js';
import type { ManifestRecord, MetadataStore } from '../../store/metadata-store.js';
import type { RegistryClient } from '../../upstream/registry-client.js';
import { RemoteError } from '../../upstream/registry-client.js';
import type { ManifestAnswer } from '../repository.js';
import { ensureLinked, type Scope } from './scope.js';
import { afterRevalidation, decideTag } from './tag-freshness.js';
import { isTransient, toClientError } from './remote-errors.js';

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
  meta: MetadataStore;
  metrics: Metrics;
  log: Logger;
  maxManifestSize: number;
  /** Most descriptors a manifest may name (each is an index row). */
  maxManifestReferences: number;
  now: () => number;
  events?: EventBus | undefined;
  /** Replicas: another replica may revalidate or move a tag, so tags are never answered from memory. */
  sharedTags?: boolean;
}

interface TagEntry {
  digest: string;
  validatedAt: number;
}

function answer(row: ManifestRecord, method: 'GET' | 'HEAD', source: CacheResult): ManifestAnswer {
  const a: ManifestAnswer = { digest: row.digest, mediaType: row.mediaType, size: row.size, source };
  if (method === 'GET') a.body = row.body;
  return a;
}

export class ManifestCache {
  private readonly rows = new LRUCache<string, ManifestRecord>({
    maxSize: 64 * 1024 * 1024,
    sizeCalculation: (r) => r.size + 200,
  });
  private readonly tags = new LRUCache<string, TagEntry>({ max: 20_000 });
  /**
   * Tag fetches the upstream refused (404) for one Accept header, kept for the tag TTL: a
   * client that accepts only Docker schema2 asking for an OCI-index tag is answered from
   * here instead of draining the upstream's rate limit with one GET per request.
   */
  private readonly refused = new LRUCache<string, { err: OciError; until: number }>({ max: 10_000 });
  private readonly inflight = new Map<string, Promise<ManifestAnswer>>();

  constructor(private readonly d: ManifestCacheDeps) {}

  /** Drops evicted manifests from memory. */
  forget(digests: Iterable<string>): void {
    for (const dg of digests) this.rows.delete(dg);
    this.tags.clear();
  }

  /** Drops one cached tag from memory (after it was invalidated in the store). */
  forgetTag(scope: Scope, tag: string): void {
    this.tags.delete(this.tagKey(scope, tag));
  }

  private async row(digest: string): Promise<ManifestRecord | undefined> {
    let r = this.rows.get(digest);
    if (r) return r;
    r = await this.d.meta.getManifest(digest);
    if (r) this.rows.set(digest, r);
    return r;
  }

  private tagKey(scope: Scope, tag: string): string {
    return `${scope.upstream}/${scope.repo}:${tag}`;
  }

  private async tag(scope: Scope, tag: string): Promise<TagEntry | undefined> {
    const key = this.tagKey(scope, tag);
    let t = this.d.sharedTags ? undefined : this.tags.get(key);
    if (t) return t;
    t = await this.d.meta.getTag(scope, tag);
    if (t) this.tags.set(key, t);
    return t;
  }

  private async setTag(scope: Scope, tag: string, digest: string): Promise<void> {
    const now = this.d.now();
    this.tags.set(this.tagKey(scope, tag), { digest, validatedAt: now });
    await this.write(() => this.d.meta.putTag(scope, tag, digest, now), 'tag');
  }

  /** Store writes that fail (disk full) are logged; the verified answer is still served. */
  private async write(fn: () => Promise<void>, what: string): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message, what }, 'cannot write to the metadata store; serving without caching');
      return false;
    }
  }

  private link(scope: Scope, digest: string): Promise<boolean> {
    return this.write(() => this.d.meta.link(scope, digest), 'link');
  }

  private count(scope: Scope, result: CacheResult): void {
    this.d.metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'manifest', result });
  }

  private served(row: ManifestRecord, req: ManifestRequest, source: CacheResult): ManifestAnswer {
    this.d.meta.touch(row.digest, this.d.now());
    this.count(req.scope, source);
    return answer(row, req.method, source);
  }

  get(client: RegistryClient, req: ManifestRequest): Promise<ManifestAnswer> {
    return req.isDigest ? this.byDigest(client, req) : this.byTag(client, req);
  }

  private async byDigest(client: RegistryClient, req: ManifestRequest): Promise<ManifestAnswer> {
    const row = await this.row(req.reference);
    if (row && accepts(req.accepted, row.mediaType)) {
      await ensureLinked(this.d.meta, client, req.scope, row.digest, 'manifest');
      return this.served(row, req, 'hit');
    }
    return this.fetch(client, req);
  }

  /** Revalidates a cached tag now (admin "refresh"): one upstream HEAD. */
  async refresh(client: RegistryClient, scope: Scope, tag: string): Promise<{ digest: string | undefined; changed: boolean }> {
    const t = await this.tag(scope, tag);
    const head = await client.headManifest(scope.repo, tag, DEFAULT_MANIFEST_ACCEPT);
    const current = head.digest && isValidDigest(head.digest) ? head.digest : undefined;
    if (!current) return { digest: t?.digest, changed: false };
    if (t && current === t.digest) {
      await this.setTag(scope, tag, current);
      return { digest: current, changed: false };
    }
    if (await this.row(current)) {
      await this.link(scope, current);
      await this.setTag(scope, tag, current);
      return { digest: current, changed: true };
    }
    // Moved to content not cached yet: keep the old digest as the stale fallback, but due
    // for revalidation, so the next pull fetches the new one.
    if (t) {
      this.tags.set(this.tagKey(scope, tag), { digest: t.digest, validatedAt: 0 });
      await this.write(() => this.d.meta.putTag(scope, tag, t.digest, 0), 'tag');
    }
    return { digest: current, changed: true };
  }

  private async byTag(client: RegistryClient, req: ManifestRequest): Promise<ManifestAnswer> {
    const { scope, reference: tag, policy } = req;
    const t = await this.tag(scope, tag);
    const row = t && await this.row(t.digest);
    const decision = decideTag(
      t && { usable: row !== undefined && accepts(req.accepted, row.mediaType), validatedAt: t.validatedAt, immutable: policy.isImmutable(tag) },
      this.d.now(), policy.tagTTL,
    );
    if (decision === 'fetch') return this.fetch(client, req);
    if (decision === 'hit') return this.served(row!, req, 'hit');
    const cached = row!;

    let head: Awaited<ReturnType<RegistryClient['headManifest']>> | undefined;
    let failure: unknown;
    try {
      head = await client.headManifest(scope.repo, tag, req.acceptHeader ?? DEFAULT_MANIFEST_ACCEPT);
    } catch (err) {
      failure = err;
    }
    const current = head?.digest && isValidDigest(head.digest) ? head.digest : undefined;
    const moved = current && current !== cached.digest ? await this.row(current) : undefined;
    const status = head ? 200 : failure instanceof RemoteError ? failure.status : isTransient(failure) ? 'transient-error' : 'error';
    const outcome = afterRevalidation({
      status, transientStatus: failure !== undefined && isTransient(failure), current, cached: cached.digest,
      movedIsCachedAndAcceptable: moved !== undefined && accepts(req.accepted, moved.mediaType),
      method: req.method, headUsable: current !== undefined && head?.size !== undefined,
    });
    switch (outcome) {
      case 'same':
        await this.setTag(scope, tag, cached.digest);
        return this.served(cached, req, 'revalidated');
      case 'moved-cached':
        await this.link(scope, moved!.digest);
        // Only answers for clients that take every type may move the shared tag.
        if (acceptsAllManifestTypes(req.accepted)) await this.setTag(scope, tag, moved!.digest);
        return this.served(moved!, req, 'revalidated');
      case 'moved-answer-head':
        // The tag keeps its old, cached digest (the stale fallback) until the new one is cached.
        this.count(scope, 'miss');
        return { digest: current!, mediaType: manifestMediaType(head!.mediaType) ?? cached.mediaType, size: head!.size!, source: 'miss' };
      case 'moved-fetch':
        try {
          return await this.fetch(client, req);
        } catch (err) {
          // The new manifest cannot be had right now (429, 5xx, down): the old one still can.
          if (isTransient(err)) {
            this.d.log.warn({ upstream: scope.upstream, repo: scope.repo, tag, err: (err as Error).message }, 'moved tag not fetchable; serving stale');
            return this.served(cached, req, 'stale');
          }
          throw err;
        }
      case 'stale':
        this.d.log.warn({ upstream: scope.upstream, repo: scope.repo, tag, err: (failure as Error).message }, 'tag revalidation failed; serving stale');
        return this.served(cached, req, 'stale');
      case 'fail':
        throw toClientError(failure, scope.upstream, 'manifest');
    }
  }

  /** Asks the upstream; concurrent identical requests share one upstream request. */
  private fetch(client: RegistryClient, req: ManifestRequest): Promise<ManifestAnswer> {
    const key = `${req.method} ${req.scope.upstream}/${req.scope.repo}@${req.reference} ${req.acceptHeader ?? ''}`;
    const refusedKey = `${req.scope.upstream}/${req.scope.repo}@${req.reference} ${req.acceptHeader ?? ''}`;
    const refused = this.refused.get(refusedKey);
    if (refused && refused.until > this.d.now()) {
      this.count(req.scope, 'hit');
      return Promise.reject(refused.err);
    }
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const p = this.fetchOnce(client, req).catch((err: unknown) => {
      // Remember a 404 for a client that does not take every manifest type (see `refused`).
      if (!req.isDigest && !acceptsAllManifestTypes(req.accepted) && err instanceof OciError && err.status === 404) {
        this.refused.set(refusedKey, { err, until: this.d.now() + req.policy.tagTTL });
      }
      throw err;
    }).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async fetchOnce(client: RegistryClient, req: ManifestRequest): Promise<ManifestAnswer> {
    const { scope, reference } = req;
    const accept = req.acceptHeader ?? DEFAULT_MANIFEST_ACCEPT;
    if (req.method === 'HEAD') {
      let head;
      try {
        head = await client.headManifest(scope.repo, reference, accept);
      } catch (err) {
        throw toClientError(err, scope.upstream, 'manifest');
      }
      const digest = req.isDigest ? reference : head.digest;
      if (!digest || !isValidDigest(digest) || head.size === undefined) {
        throw new OciError('UPSTREAM_ERROR', `upstream ${scope.upstream} answered HEAD without a usable digest or length`);
      }
      const known = await this.row(digest);
      // containerd resolves a tag with HEAD, then GETs by digest: record the tag now so the
      // next pull resolves from cache (also with the upstream gone). A tag whose manifest is
      // not cached yet is simply fetched on its next GET.
      if (!req.isDigest && acceptsAllManifestTypes(req.accepted)) {
        if (known) {
          await this.link(scope, digest);
          await this.setTag(scope, reference, digest);
        } else {
          // Never replace a cached digest (the stale fallback) with one not cached yet.
          const prev = await this.tag(scope, reference);
          if (!prev || !(await this.row(prev.digest))) await this.setTag(scope, reference, digest);
        }
      }
      this.count(scope, 'miss');
      const mediaType = manifestMediaType(head.mediaType) ?? known?.mediaType ?? 'application/octet-stream';
      return { digest, mediaType, size: head.size, source: 'miss' };
    }

    let got;
    try {
      got = await client.getManifest(scope.repo, reference, { accept, maxSize: this.d.maxManifestSize });
    } catch (err) {
      throw toClientError(err, scope.upstream, 'manifest', 'upstream manifest');
    }
    const body = got.body;
    const alg = req.isDigest ? digestAlgorithm(reference) : got.digest?.startsWith('sha512:') ? 'sha512' : 'sha256';
    const digest = `${alg}:${createHash(alg).update(body).digest('hex')}`;
    const expected = req.isDigest ? reference : got.digest && isValidDigest(got.digest) ? got.digest : undefined;
    if (expected !== undefined && expected !== digest) {
      this.d.metrics.digestMismatches.inc({ upstream: scope.upstream });
      this.d.events?.emit('digest.mismatch', { upstream: scope.upstream, repo: scope.repo, digest: expected, kind: 'manifest' }, scope.upstream);
      throw new OciError('UPSTREAM_MANIFEST_INVALID', `upstream manifest does not match its digest ${expected}`, { upstream: scope.upstream });
    }
    const parsed = parseManifest(body, got.mediaType);
    if (!parsed) throw new OciError('UPSTREAM_MANIFEST_INVALID', 'upstream sent a manifest that is not a JSON object', { upstream: scope.upstream });
    const refs = parsed.blobs.length + parsed.manifests.length;
    if (refs > this.d.maxManifestReferences) {
      throw new OciError('UPSTREAM_MANIFEST_INVALID', `upstream manifest names ${refs} descriptors, more than cache.maxManifestReferences (${this.d.maxManifestReferences})`,
        { upstream: scope.upstream, references: refs, limit: this.d.maxManifestReferences });
    }
    // Only a registered manifest media type, or a well-formed one from the body, is stored
    // and served: never an upstream's text/html or a header with control characters.
    const mediaType = manifestMediaType(got.mediaType) ?? manifestMediaType(parsed.mediaType);
    if (!mediaType) throw new OciError('UPSTREAM_MANIFEST_INVALID', 'upstream sent a manifest with an invalid media type', { upstream: scope.upstream });
    const row: ManifestRecord = { digest, mediaType, size: body.length, body };
    const links = {
      blobs: parsed.blobs.map((b) => b.digest).filter(isValidDigest),
      manifests: parsed.manifests.map((m) => m.digest).filter(isValidDigest),
      subject: parsed.subject && isValidDigest(parsed.subject) ? parsed.subject : undefined,
      artifactType: parsed.artifactType !== undefined && manifestMediaType(parsed.artifactType) ? parsed.artifactType : undefined,
    };
    if (await this.write(() => this.d.meta.putManifest(row, links, scope, this.d.now()), 'manifest')) this.rows.set(digest, row);
    if (!req.isDigest && acceptsAllManifestTypes(req.accepted)) await this.setTag(scope, reference, digest);
    this.count(scope, 'miss');
    return answer(row, 'GET', 'miss');
  }
}
