/**
 * Listings proxied to the upstream: tags/list (with its Link header rewritten to point
 * back at regcache, never at another host) and the referrers API. When the upstream is
 * unreachable, tags/list falls back to the tags regcache has cached.
 */
import type { Metrics } from '../metrics/metrics.js';
import { discard } from '../upstream/body.js';
import { OciError } from '../protocol/errors.js';
import type { IndexDb } from '../storage/index-db.js';
import type { UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import type { Scope } from './scope.js';
import { fromUpstreamFailure, fromUpstreamStatus, header, isTransient, readLimited } from './upstream-errors.js';

const MAX_LISTING = 16 * 1024 * 1024;

export interface ListingAnswer {
  contentType: string;
  body: Buffer;
  /** Query of the next page (n, last), when there is one. */
  next?: { n?: string; last: string };
}

export async function tagsList(client: UpstreamClient, index: IndexDb, metrics: Metrics, scope: Scope, clientName: string, n: number | undefined, last: string | undefined): Promise<ListingAnswer> {
  const q = new URLSearchParams();
  if (n !== undefined) q.set('n', String(n));
  if (last !== undefined) q.set('last', last);
  const qs = q.size ? `?${q}` : '';
  let res: UpstreamResponse;
  try {
    res = await client.request({ method: 'GET', path: `/v2/${scope.repo}/tags/list${qs}`, repo: scope.repo });
  } catch (err) {
    if (!isTransient(err)) throw fromUpstreamFailure(err, scope.upstream);
    return cachedTags(index, metrics, scope, clientName, n, last, err);
  }
  if (res.status !== 200) {
    if (isTransient(res.status)) {
      discard(res.body);
      return cachedTags(index, metrics, scope, clientName, n, last, new Error(`status ${res.status}`));
    }
    throw fromUpstreamStatus(res, scope.upstream, 'other');
  }
  const raw = await readLimited(res.body, MAX_LISTING, 'upstream tag list');
  let doc: { tags?: unknown };
  try {
    doc = JSON.parse(raw.toString('utf8')) as { tags?: unknown };
  } catch {
    throw new OciError('UPSTREAM_ERROR', 'upstream sent an invalid tag list', undefined, { status: 502 });
  }
  const tags = Array.isArray(doc.tags) ? doc.tags.filter((t): t is string => typeof t === 'string') : [];
  const out: ListingAnswer = { contentType: 'application/json', body: Buffer.from(JSON.stringify({ name: clientName, tags })) };
  const next = nextPage(header(res, 'link'));
  if (next) out.next = next;
  return out;
}

function cachedTags(index: IndexDb, metrics: Metrics, scope: Scope, clientName: string, n: number | undefined, last: string | undefined, cause: unknown): ListingAnswer {
  const limit = n ?? 1000;
  const tags = index.listTags(scope.upstream, scope.repo, last ?? '', limit + 1);
  if (tags.length === 0) throw fromUpstreamFailure(cause, scope.upstream);
  metrics.cacheResults.inc({ upstream: scope.upstream, kind: 'tags', result: 'stale' });
  const page = tags.slice(0, limit);
  const out: ListingAnswer = { contentType: 'application/json', body: Buffer.from(JSON.stringify({ name: clientName, tags: page })) };
  if (tags.length > limit && page.length > 0) out.next = { n: String(limit), last: page[page.length - 1]! };
  return out;
}

/** Extracts n and last of an upstream `Link: <...>; rel="next"`; the URL itself is never passed on. */
export function nextPage(link: string | undefined): { n?: string; last: string } | undefined {
  if (!link) return undefined;
  const m = /<([^>]*)>\s*;\s*rel="?next"?/i.exec(link);
  if (!m) return undefined;
  let url: URL;
  try {
    url = new URL(m[1]!, 'http://upstream.invalid');
  } catch {
    return undefined;
  }
  const last = url.searchParams.get('last');
  if (last === null) return undefined;
  const n = url.searchParams.get('n');
  return n === null ? { last } : { n, last };
}

export async function referrers(client: UpstreamClient, scope: Scope, digest: string, artifactType: string | undefined): Promise<ListingAnswer> {
  const qs = artifactType !== undefined ? `?${new URLSearchParams({ artifactType })}` : '';
  let res: UpstreamResponse;
  try {
    res = await client.request({ method: 'GET', path: `/v2/${scope.repo}/referrers/${digest}${qs}`, repo: scope.repo });
  } catch (err) {
    throw fromUpstreamFailure(err, scope.upstream);
  }
  if (res.status !== 200) throw fromUpstreamStatus(res, scope.upstream, 'manifest');
  const body = await readLimited(res.body, MAX_LISTING, 'upstream referrers index');
  return { contentType: header(res, 'content-type') ?? 'application/vnd.oci.image.index.v1+json', body };
}
