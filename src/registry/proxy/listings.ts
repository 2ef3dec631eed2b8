/**
 * Listings of proxied repositories: tags/list (the upstream's pages, its Link reduced to
 * n and last so the client's next page comes back to regcache, never to another host) and
 * the referrers API. Identical concurrent tag-list requests share one upstream fetch. When
 * the upstream is unreachable, tags/list falls back to the tags regcache has cached; the
 * referrers API never answers 404: without an upstream answer it is built from the
 * manifests regcache holds whose subject is the digest. A tags/list answer is read up to
 * cache.maxTagListSize (a 12.6 MB list fetched for 20 clients once cost 564 MB and a 3.4 s
 * stall): beyond it the client gets 502 and pages with n and last.
 */
import type { Metrics } from '../../metrics/metrics.js';
import { OciError } from '../../protocol/errors.js';
import { isValidDigest } from '../../protocol/grammar.js';
import { manifestMediaType, OCI_INDEX } from '../../protocol/media-types.js';
import type { MetadataStore } from '../../store/metadata-store.js';
import type { RegistryClient, TagPage } from '../../upstream/registry-client.js';
import { RemoteError } from '../../upstream/registry-client.js';
import type { ListingAnswer, TagsAnswer } from '../repository.js';
import { isTransient, toClientError } from './remote-errors.js';
import type { Scope } from './scope.js';

/** Referrers answers (tags/list: cache.maxTagListSize). */
const MAX_LISTING = 16 * 1024 * 1024;

export class Listings {
  private readonly inflight = new Map<string, Promise<TagPage>>();

  constructor(private readonly meta: MetadataStore, private readonly metrics: Metrics, private readonly maxTagListSize: number) {}

  async tags(client: RegistryClient, scope: Scope, n: number | undefined, last: string | undefined): Promise<TagsAnswer> {
    const key = `${scope.upstream}/${scope.repo}?n=${n ?? ''}&last=${last ?? ''}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = client.listTags(scope.repo, { ...(n !== undefined ? { n } : {}), ...(last !== undefined ? { last } : {}), maxBytes: this.maxTagListSize })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    try {
      const page = await p;
      return page.next ? { tags: page.tags, next: page.next } : { tags: page.tags };
    } catch (err) {
      if (!isTransient(err)) throw toClientError(err, scope.upstream, 'other', 'upstream tag list');
      return this.cachedTags(scope, n, last, err);
    }
  }

  private async cachedTags(scope: Scope, n: number | undefined, last: string | undefined, cause: unknown): Promise<TagsAnswer> {
    const limit = n ?? 1000;
    const tags = await this.meta.listTags(scope, last ?? '', limit + 1);
    if (tags.length === 0) throw toClientError(cause, scope.upstream, 'other', 'upstream tag list');
    this.metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'tags', result: 'stale' });
    const page = tags.slice(0, limit);
    const out: TagsAnswer = { tags: page };
    if (tags.length > limit && page.length > 0) out.next = { n: String(limit), last: page[page.length - 1]! };
    return out;
  }

  async referrers(client: RegistryClient, scope: Scope, digest: string, artifactType: string | undefined): Promise<ListingAnswer> {
    let answer;
    try {
      answer = await client.referrers(scope.repo, digest, artifactType, MAX_LISTING);
    } catch (err) {
      // A registry without the referrers API (404/405): answer from what regcache knows, as
      // an (possibly empty) index: never 404. Any other failure is the upstream's, and said.
      const unsupported = err instanceof RemoteError && (err.status === 404 || err.status === 405);
      if (!unsupported) throw toClientError(err, scope.upstream, 'other', 'upstream referrers');
      return localReferrers(this.meta, digest, artifactType);
    }
    return checkedReferrers(answer.body, scope.upstream, artifactType);
  }
}

interface Descriptor { mediaType?: unknown; digest?: unknown; size?: unknown; artifactType?: unknown }

/**
 * An upstream's referrers answer, checked and sent as what it must be: an OCI index of
 * well-formed descriptors (never the upstream's text/html, whatever its Content-Type said),
 * filtered by artifactType here too (an upstream may ignore the filter).
 */
export function checkedReferrers(body: Buffer, upstream: string, artifactType: string | undefined): ListingAnswer {
  let doc: { manifests?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8')) as { manifests?: unknown };
  } catch {
    throw new OciError('UPSTREAM_ERROR', `upstream ${upstream} sent a referrers answer that is not JSON`, { upstream });
  }
  if (!doc || typeof doc !== 'object' || !Array.isArray(doc.manifests)) {
    throw new OciError('UPSTREAM_ERROR', `upstream ${upstream} sent a referrers answer that is not an OCI index`, { upstream });
  }
  const manifests = (doc.manifests as Descriptor[]).filter((d): d is Descriptor & { digest: string; mediaType: string; size: number } =>
    !!d && typeof d.digest === 'string' && isValidDigest(d.digest) && typeof d.size === 'number'
    && typeof d.mediaType === 'string' && manifestMediaType(d.mediaType) !== undefined
    && (d.artifactType === undefined || (typeof d.artifactType === 'string' && manifestMediaType(d.artifactType) !== undefined)))
    .filter((d) => artifactType === undefined || d.artifactType === artifactType);
  const out: ListingAnswer = { contentType: OCI_INDEX, body: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })) };
  if (artifactType !== undefined) out.headers = { 'oci-filters-applied': 'artifactType' };
  return out;
}

/** The OCI referrers index of `digest` from the metadata store, filtered by artifactType (and by `include`, e.g. one repository). */
export async function localReferrers(
  meta: MetadataStore, digest: string, artifactType: string | undefined, include?: (digest: string) => Promise<boolean>,
): Promise<ListingAnswer> {
  let all = await meta.referrers(digest);
  if (include) {
    const keep = await Promise.all(all.map((r) => include(r.digest)));
    all = all.filter((_, i) => keep[i]);
  }
  const manifests = all
    .filter((r) => artifactType === undefined || r.artifactType === artifactType)
    .map((r) => ({ mediaType: r.mediaType, digest: r.digest, size: r.size, ...(r.artifactType ? { artifactType: r.artifactType } : {}) }));
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
  const out: ListingAnswer = { contentType: OCI_INDEX, body };
  if (artifactType !== undefined) out.headers = { 'oci-filters-applied': 'artifactType' };
  return out;
}
