/**
 * Hosted retention and garbage collection, online (docs/hosted.md#retention-and-garbage-collection):
 *  1. hosted retention per pattern (hosted-retention.ts) unlinks manifests and drops tags;
 *  2. garbage goes: manifests no repository links and no index lists, then blobs pushed to a
 *     hosted repository that no manifest references and that were not pushed or pulled for
 *     `hosted.gcGrace` (a push in progress gets that long to send its manifest).
 * Pushes go on meanwhile: every removal re-checks its condition in the metadata store's
 * transaction, a blob a manifest PUT has pinned is kept, and a blob's file is deleted only
 * while it is marked (Pins.markDeleting), so an upload of the same digest waits for the
 * deletion and then commits its own file. Cached content is cache retention's (eviction.ts).
 */
import type { HostedRepositoryConfig } from '../../config/types.js';
import { GlobSet } from '../../protocol/glob.js';
import type { BlobStore } from '../../store/blob-store.js';
import { HOSTED, type MetadataStore } from '../../store/metadata-store.js';
import type { Pins } from '../proxy/pins.js';
import { hasHostedRetention, planHostedRetention } from './hosted-retention.js';

export interface HostedGcDeps {
  blobs: BlobStore;
  meta: MetadataStore;
  pins: Pins;
  /** Called with the manifests whose rows were removed (memory caches drop them). */
  onRemoved?(manifests: string[]): void;
}

export interface HostedGcReport {
  /** `repo:tag` removed by hosted retention. */
  tags: string[];
  /** `repo@digest` unlinked by hosted retention. */
  unlinked: string[];
  manifests: Array<{ digest: string; size: number }>;
  blobs: Array<{ digest: string; size: number; repos: string[] }>;
  bytesFreed: number;
}

const BATCH = 256;
const MAX_ROUNDS = 1000;

async function hostedRepositories(meta: MetadataStore): Promise<string[]> {
  const out: string[] = [];
  const prefix = `${HOSTED}/`;
  for (let last = prefix; ;) {
    const page = await meta.catalog(last, BATCH, HOSTED);
    out.push(...page.map((r) => r.slice(prefix.length)));
    if (page.length < BATCH) return out;
    last = page[page.length - 1]!;
  }
}

export async function collectHosted(
  d: HostedGcDeps, patterns: HostedRepositoryConfig[], gcGrace: number, now: number, opts: { dryRun?: boolean } = {},
): Promise<HostedGcReport> {
  const report: HostedGcReport = { tags: [], unlinked: [], manifests: [], blobs: [], bytesFreed: 0 };
  const globs = new GlobSet(patterns.map((p) => [p.pattern, p] as [string, HostedRepositoryConfig]));
  for (const repo of await hostedRepositories(d.meta)) {
    const policy = globs.first(repo)?.value;
    if (!policy || !hasHostedRetention(policy)) continue;
    const plan = planHostedRetention(await d.meta.hostedManifests(repo), policy, now);
    const ref = { upstream: HOSTED, repo };
    for (const t of plan.tags) {
      if (!opts.dryRun) await d.meta.deleteTag(ref, t);
      report.tags.push(`${repo}:${t}`);
    }
    for (const m of plan.digests) {
      if (!opts.dryRun) await d.meta.unlink(ref, m);
      report.unlinked.push(`${repo}@${m}`);
    }
  }
  const before = now - gcGrace;
  const seen = new Set<string>();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const g = await d.meta.garbage(before, BATCH);
    const blobs = g.blobs.filter((b) => !seen.has(b.digest));
    const manifests = g.manifests.filter((m) => !seen.has(m.digest));
    if (blobs.length === 0 && manifests.length === 0) break;
    for (const x of [...blobs, ...manifests]) seen.add(x.digest);
    if (opts.dryRun) {
      report.blobs.push(...blobs);
      report.manifests.push(...manifests);
      continue;
    }
    for (const b of blobs) d.pins.markDeleting(b.digest);
    try {
      const removed = await d.meta.removeGarbage(blobs.map((b) => b.digest), manifests.map((m) => m.digest), before, (x) => d.pins.has(x));
      const gone = new Set([...removed.blobs, ...removed.manifests]);
      report.manifests.push(...manifests.filter((m) => gone.has(m.digest)));
      report.blobs.push(...blobs.filter((b) => gone.has(b.digest)));
      if (removed.manifests.length) d.onRemoved?.(removed.manifests);
      for (const b of removed.blobs) await d.blobs.delete(b);
    } finally {
      for (const b of blobs) d.pins.unmarkDeleting(b.digest);
    }
  }
  report.bytesFreed = [...report.manifests, ...report.blobs].reduce((n, x) => n + x.size, 0);
  return report;
}
