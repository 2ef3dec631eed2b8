/**
 * Repository views of the admin API: a searchable, paged list and one repository with its
 * tags (digest, media type, platforms, cached bytes, last pull, when the upstream last
 * confirmed it, for hosted ones when it was last pushed, whether a job pins it). Platforms come from an index's `manifests[].platform`; a single-platform
 * image manifest does not name its platform without reading its config blob, so it has none here.
 */
import type { MetadataStore, RepoRef, RepositoryTag } from '../store/metadata-store.js';

export interface RepositoryItem {
  name: string;
  upstream: string;
  repo: string;
  /** Hosted repositories are pushed to regcache; the others are cached from their upstream. */
  hosted: boolean;
  tags: number;
  bytes: number;
  lastPull: string | null;
  /** Hosted only: the latest push of a manifest or tag to it; null for cached repositories. */
  lastPush: string | null;
}

export interface RepositoryPage {
  repositories: RepositoryItem[];
  /** Pass as `last` for the next page; absent on the last page. */
  next?: string;
}

export interface TagItem {
  tag: string;
  digest: string;
  mediaType: string | null;
  platforms: string[];
  bytes: number;
  lastPull: string | null;
  validatedAt: string | null;
  /** Hosted only: when the tag was last pushed (a manifest PUT by this tag); null for cached tags. */
  lastPush: string | null;
  /** Whether a sync job holds this image (retention keeps it). */
  pinned: boolean;
}

/** Whether a job pins a digest (JobControl.holds); none pins anything without a jobs service. */
export type PinnedBy = (digest: string) => boolean;

export interface RepositoryDetail extends Omit<RepositoryItem, 'tags'> {
  tags: TagItem[];
  next?: string;
}

export const HOSTED = 'hosted';

const iso = (ms: number | undefined): string | null => (ms === undefined || ms <= 0 ? null : new Date(ms).toISOString());

/**
 * The latest push to hosted repository `repo`: a manifest's first push or a tag's last
 * (a tag's time is set at each PUT by that tag). Reads the repository's manifests: one
 * query per hosted repository shown, bounded by the page size.
 */
async function lastPushOf(meta: MetadataStore, repo: string): Promise<number | undefined> {
  let latest: number | undefined;
  for (const m of await meta.hostedManifests(repo)) {
    for (const at of [m.pushedAt, ...m.tags.map((t) => t.at)]) if (latest === undefined || at > latest) latest = at;
  }
  return latest;
}

export async function repositoryPage(meta: MetadataStore, opts: { q?: string; last?: string; n: number }): Promise<RepositoryPage> {
  // One more than asked says whether there is a next page.
  const rows = await meta.listRepositories({ ...(opts.q ? { query: opts.q } : {}), ...(opts.last ? { after: opts.last } : {}), limit: opts.n + 1 });
  const page: RepositoryItem[] = [];
  for (const r of rows.slice(0, opts.n)) {
    const hosted = r.upstream === HOSTED;
    page.push({
      name: `${r.upstream}/${r.repo}`, upstream: r.upstream, repo: r.repo, hosted,
      tags: r.tags, bytes: r.bytes, lastPull: iso(r.lastPull), lastPush: hosted ? iso(await lastPushOf(meta, r.repo)) : null,
    });
  }
  return rows.length > opts.n ? { repositories: page, next: page[page.length - 1]!.name } : { repositories: page };
}

/** `os/architecture[/variant]` of each child of an index; [] for anything else. */
export function platformsOf(body: Buffer | undefined): string[] {
  if (!body) return [];
  try {
    const doc = JSON.parse(body.toString('utf8')) as { manifests?: Array<{ platform?: { os?: unknown; architecture?: unknown; variant?: unknown } }> };
    if (!Array.isArray(doc.manifests)) return [];
    const out: string[] = [];
    for (const m of doc.manifests) {
      const p = m?.platform;
      if (!p || typeof p.os !== 'string' || typeof p.architecture !== 'string' || p.os === 'unknown') continue;
      out.push([p.os, p.architecture, typeof p.variant === 'string' ? p.variant : ''].filter(Boolean).join('/').slice(0, 100));
    }
    return [...new Set(out)];
  } catch {
    return [];
  }
}

export async function repositoryDetail(meta: MetadataStore, ref: RepoRef, opts: { last?: string; n: number }, pinned: PinnedBy = () => false): Promise<RepositoryDetail | undefined> {
  // Names sorting after the one just before it and containing it: the repository comes first but for rare superstrings.
  const name = `${ref.upstream}/${ref.repo}`;
  const summary = (await meta.listRepositories({ query: name, after: name.slice(0, -1), limit: 100 }))
    .find((r) => r.upstream === ref.upstream && r.repo === ref.repo);
  const rows: RepositoryTag[] = await meta.repositoryTags(ref, opts.last ?? '', opts.n + 1);
  if (!summary && rows.length === 0) return undefined;
  const hosted = ref.upstream === HOSTED;
  const tags: TagItem[] = [];
  for (const t of rows.slice(0, opts.n)) {
    const body = t.mediaType?.includes('index') || t.mediaType?.includes('manifest.list') ? (await meta.getManifest(t.digest))?.body : undefined;
    tags.push({
      tag: t.tag, digest: t.digest, mediaType: t.mediaType ?? null, platforms: platformsOf(body),
      bytes: t.bytes, lastPull: iso(t.lastPull), validatedAt: iso(t.validatedAt),
      // A hosted tag's time is that of its last push (no upstream validates it).
      lastPush: hosted ? iso(t.validatedAt) : null, pinned: pinned(t.digest),
    });
  }
  const d: RepositoryDetail = {
    name: `${ref.upstream}/${ref.repo}`, upstream: ref.upstream, repo: ref.repo, hosted,
    bytes: summary?.bytes ?? 0, lastPull: iso(summary?.lastPull), lastPush: hosted ? iso(await lastPushOf(meta, ref.repo)) : null, tags,
  };
  if (rows.length > opts.n) d.next = tags[tags.length - 1]!.tag;
  return d;
}
