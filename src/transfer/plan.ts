/**
 * The plan of a copy: mappings expanded into one task per (source image, destination),
 * wildcard sources resolved by listing their tags, then checked again for overlaps now
 * that the tags are known. Nothing is written while planning.
 */
import { classify } from '../upstream/classify.js';
import { checkWrites, writesOf, type Mapping, type Origin } from './mapping.js';
import { formatRef, type ImageRef } from './reference.js';
import type { RegistrySet } from './registries.js';
import { withRetry, type RetryOptions } from './retry.js';

export interface CopyTask {
  /** One image: a tag or a digest. */
  source: ImageRef;
  /** A tag, or a repository (pushed by digest only). */
  destination: ImageRef;
  origin: Origin;
}

export interface PlanProblem {
  source: ImageRef;
  origin: Origin;
  error: string;
  /** The source repository does not exist (`--skip-missing` skips it). */
  missing: boolean;
}

export interface CopyPlan {
  tasks: CopyTask[];
  problems: PlanProblem[];
}

const MAX_TAG_LIST_BYTES = 16 * 1024 * 1024;

export async function expandPlan(mappings: Mapping[], registries: RegistrySet, retry: RetryOptions): Promise<CopyPlan> {
  checkWrites(writesOf(mappings));
  const tasks: CopyTask[] = [];
  const problems: PlanProblem[] = [];
  for (const m of mappings) {
    if (!m.source.allTags) {
      for (const d of m.destinations) tasks.push({ source: m.source, destination: d, origin: m.origin });
      continue;
    }
    let tags: string[];
    try {
      const client = registries.client(m.source.registry, m.source.repo, 'source');
      tags = await withRetry(() => client.allTags(m.source.repo, { pageSize: 1000, maxBytes: MAX_TAG_LIST_BYTES }), retry);
    } catch (err) {
      problems.push({ source: m.source, origin: m.origin, error: `listing the tags of ${formatRef(m.source)}: ${(err as Error).message}`, missing: classify(err).class === 'not-found' });
      continue;
    }
    for (const tag of [...new Set(tags)].sort()) {
      const source = { registry: m.source.registry, repo: m.source.repo, tag };
      for (const d of m.destinations) tasks.push({ source, destination: { registry: d.registry, repo: d.repo, tag }, origin: m.origin });
    }
  }
  checkWrites(tasks);
  return { tasks, problems };
}
