/**
 * Runs a copy: expands the mappings into a plan, then copies every image with bounded
 * parallelism (`maxRegistries` destination registries at once, `maxPerRegistry` images
 * and blob transfers at once within each), sharing one MountIndex so a blob already sent
 * to a registry is mounted, not sent again. Reports each image as it ends. Without
 * `continueOnError` the first failure stops new copies from starting.
 * runCopyPlan is the same run as the scheduler sees it: a JobRun (jobs/job-control.ts).
 */
import { randomUUID } from 'node:crypto';
import type { JobRun, TagOutcome } from '../jobs/job-control.js';
import { classify } from '../upstream/classify.js';
import { DEFAULT_CHUNK_SIZE, DEFAULT_MONOLITHIC_MAX, MountIndex } from './blob-transfer.js';
import { copyImage, type ImageReport } from './copy-image.js';
import { Limiter, mapLimit } from './limiter.js';
import type { Mapping, Origin } from './mapping.js';
import { expandPlan, type CopyTask } from './plan.js';
import type { PlatformFilter } from './platforms.js';
import { formatRef } from './reference.js';
import type { RegistrySet } from './registries.js';
import { DEFAULT_RETRY, type RetryOptions } from './retry.js';

export interface CopyRunOptions {
  registries: RegistrySet;
  dryRun?: boolean;
  force?: boolean;
  continueOnError?: boolean;
  skipMissing?: boolean;
  platforms?: PlatformFilter;
  keepManifestList?: boolean;
  maxPerRegistry?: number;
  maxRegistries?: number;
  retry?: RetryOptions;
  monolithicMax?: number;
  chunkSize?: number;
  signal?: AbortSignal;
}

export type ImageStatus = 'copied' | 'unchanged' | 'planned' | 'failed' | 'skipped' | 'not-started';

export interface ImageResult {
  source: string;
  destination: string;
  origin: Origin;
  status: ImageStatus;
  report?: ImageReport;
  error?: string;
}

export type CopyEvent =
  | { type: 'plan'; images: number; problems: number }
  | { type: 'start'; id: number; source: string; destination: string }
  | { type: 'bytes'; id: number; bytes: number }
  | { type: 'retry'; id: number; attempt: number; delayMs: number; error: string }
  | { type: 'image'; id: number; result: ImageResult };

export interface CopyRunResult {
  images: ImageResult[];
  counts: Record<ImageStatus, number>;
  /** Blob bytes sent (or, in a dry run, that would be sent). */
  bytesSent: number;
  bytesPresent: number;
}

function statusOf(r: ImageReport, dryRun: boolean): ImageStatus {
  if (r.upToDate && r.blobs.sent === 0 && r.blobs.mounted === 0 && r.manifests.sent === 0) return 'unchanged';
  return dryRun ? 'planned' : 'copied';
}

export async function runCopy(mappings: Mapping[], o: CopyRunOptions, onEvent: (e: CopyEvent) => void = () => undefined): Promise<CopyRunResult> {
  const retryBase = o.retry ?? DEFAULT_RETRY;
  const plan = await expandPlan(mappings, o.registries, retryBase);
  onEvent({ type: 'plan', images: plan.tasks.length, problems: plan.problems.length });
  const images: ImageResult[] = [];
  const finish = (id: number, r: ImageResult): void => {
    images.push(r);
    onEvent({ type: 'image', id, result: r });
  };
  let stopped = false;
  let nextId = 0;
  for (const p of plan.problems) {
    const skipped = p.missing && o.skipMissing;
    finish(nextId++, { source: formatRef(p.source), destination: '', origin: p.origin, status: skipped ? 'skipped' : 'failed', error: p.error });
    if (!skipped && !o.continueOnError) stopped = true;
  }

  const mounts = new MountIndex();
  const perRegistry = o.maxPerRegistry ?? 6;
  const groups = new Map<string, CopyTask[]>();
  for (const t of plan.tasks) groups.set(t.destination.registry, [...(groups.get(t.destination.registry) ?? []), t]);
  const limiters = new Map([...groups.keys()].map((g) => [g, new Limiter(perRegistry)]));

  const one = async (t: CopyTask): Promise<void> => {
    const id = nextId++;
    const source = formatRef(t.source);
    const destination = formatRef(t.destination);
    if (stopped || o.signal?.aborted) {
      finish(id, { source, destination, origin: t.origin, status: 'not-started' });
      return;
    }
    onEvent({ type: 'start', id, source, destination });
    try {
      const report = await copyImage(
        { client: o.registries.client(t.source.registry, t.source.repo, 'source'), registry: t.source.registry, repo: t.source.repo },
        {
          client: o.registries.client(t.destination.registry, t.destination.repo, 'destination'), registry: t.destination.registry, repo: t.destination.repo,
          ...(t.destination.tag !== undefined ? { tag: t.destination.tag } : {}),
        },
        t.source.digest ?? t.source.tag!,
        {
          dryRun: o.dryRun ?? false, force: o.force ?? false, keepManifestList: o.keepManifestList ?? false,
          monolithicMax: o.monolithicMax ?? DEFAULT_MONOLITHIC_MAX, chunkSize: o.chunkSize ?? DEFAULT_CHUNK_SIZE,
          retry: { ...retryBase, onRetry: (i) => onEvent({ type: 'retry', id, attempt: i.attempt, delayMs: i.delayMs, error: i.error.message }) },
          mounts, limiter: limiters.get(t.destination.registry)!,
          onBytes: (bytes) => onEvent({ type: 'bytes', id, bytes }),
          ...(o.platforms ? { platforms: o.platforms } : {}),
          ...(o.signal ? { signal: o.signal } : {}),
        },
      );
      finish(id, { source, destination, origin: t.origin, status: statusOf(report, o.dryRun ?? false), report });
    } catch (err) {
      const missing = classify(err).class === 'not-found';
      const skipped = missing && o.skipMissing;
      finish(id, { source, destination, origin: t.origin, status: skipped ? 'skipped' : 'failed', error: (err as Error).message });
      if (!skipped && !o.continueOnError) stopped = true;
    }
  };

  await mapLimit([...groups.values()], o.maxRegistries ?? 4, (tasks) => mapLimit(tasks, perRegistry, one).then(() => undefined));

  const counts: Record<ImageStatus, number> = { copied: 0, unchanged: 0, planned: 0, failed: 0, skipped: 0, 'not-started': 0 };
  let bytesSent = 0;
  let bytesPresent = 0;
  for (const r of images) {
    counts[r.status]++;
    bytesSent += r.report?.bytes.sent ?? 0;
    bytesPresent += r.report?.bytes.present ?? 0;
  }
  return { images, counts, bytesSent, bytesPresent };
}

/** What a scheduled copy job hands the scheduler: the run as a JobRun. */
export async function runCopyPlan(
  plan: { mappings: Mapping[]; trigger?: JobRun['trigger'] },
  o: CopyRunOptions,
  onProgress: (e: CopyEvent) => void = () => undefined,
): Promise<JobRun> {
  const run: JobRun = {
    id: randomUUID(), startedAt: new Date().toISOString(), trigger: plan.trigger ?? 'schedule',
    counts: { synced: 0, unchanged: 0, failed: 0, pending: 0 }, bytes: 0,
  };
  try {
    const r = await runCopy(plan.mappings, o, onProgress);
    const tags: TagOutcome[] = r.images.map((i) => {
      const outcome: TagOutcome['outcome'] = i.status === 'copied' ? 'synced'
        : i.status === 'unchanged' || i.status === 'skipped' ? 'unchanged'
          : i.status === 'failed' ? 'failed' : 'pending';
      const t: TagOutcome = { ref: i.destination || i.source, outcome };
      if (i.report) t.digest = i.report.destinationDigest;
      if (i.error) t.reason = `${i.source}: ${i.error}`;
      else if (i.status === 'skipped') t.reason = 'source missing (skipped)';
      return t;
    });
    for (const t of tags) run.counts[t.outcome === 'removed' ? 'synced' : t.outcome]++;
    run.tags = tags;
    run.bytes = r.bytesSent;
    run.result = o.signal?.aborted ? 'CANCEL' : run.counts.failed > 0 ? 'FAIL' : 'SUCCESS';
    if (run.counts.failed > 0) run.error = `${run.counts.failed} image(s) failed`;
  } catch (err) {
    run.result = o.signal?.aborted ? 'CANCEL' : 'FAIL';
    run.error = (err as Error).message;
  }
  run.endedAt = new Date().toISOString();
  return run;
}
