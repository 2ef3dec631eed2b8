/**
 * Listings of proxied repositories: tags/list (the upstream's pages, its Link reduced to
 * n and last so the client's next page comes back to regcache, never to another host) and
 * the referrers API. Identical concurrent tag-list requests share one upstream fetch. When
 * the upstream is unreachable, tags/list falls back to the tags regcache has cached; the
 * referrers API never answers 404: without an upstream answer it is built from the
 * manifests regcache holds whose subject is the digest.
 */
import type { Metrics } from '../../metrics/metrics.js';
import { OCI_INDEX } from '../../protocol/media-types.js';
import type { MetadataStore } from '../../store/metadata-store.js';
import type { RegistryClient, TagPage } from '../../upstream/registry-client.js';
import { RemoteError } from '../../upstream/registry-client.js';
import type { ListingAnswer, TagsAnswer } from '../repository.js';
import { isTransient, toClientError } from './remote-errors.js';
import type { Scope } from './scope.js';

const MAX_LISTING = 16 * 1024 * 1024;

export class Listings {
  private readonly inflight = new Map<string, Promise<TagPage>>();

  constructor(private readonly meta: MetadataStore, private readonly metrics: Metrics) {}

  async tags(client: RegistryClient, scope: Scope, n: number | undefined, last: string | undefined): Promise<TagsAnswer> {
    const key = `${scope.upstream}/${scope.repo}?n=${n ?? ''}&last=${last ?? ''}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = client.listTags(scope.repo, { ...(n !== undefined ? { n } : {}), ...(last !== undefined ? { last } : {}), maxBytes: MAX_LISTING })
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
    try {
      return await client.referrers(scope.repo, digest, artifactType, MAX_LISTING);
    } catch (err) {
      // A registry without the referrers API (404/405): answer from what regcache knows, as
      // an (possibly empty) index: never 404. Any other failure is the upstream's, and said.
      const unsupported = err instanceof RemoteError && (err.status === 404 || err.status === 405);
      if (!unsupported) throw toClientError(err, scope.upstream, 'other', 'upstream referrers');
      return localReferrers(this.meta, digest, artifactType);
    }
  }
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
