/**
 * One run of one sync job: list the source's repositories (catalog) and tags (paged),
 * keep the tags the patterns match, and for each: one upstream HEAD; when the digest is
 * what the job already holds and everything it needs is in the store, nothing more (no
 * GET). Otherwise the manifest, the chosen platforms' manifests and their blobs are fetched
 * through the proxy repository, the same fill path as pulls (a node pulling a blob the job
 * is fetching shares that one fill; every byte is verified before it is kept). Every
 * upstream request a run starts goes through the upstream's budget. A 429, or Docker Hub's
 * `ratelimit-remaining` below the floor, stops the run (StopRun) instead of hammering.
 * With a hosted target the fetched content is then linked into the hosted repository and
 * the tags are set there (hosted-target.ts); tags the listing no longer has are removed.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { SyncJobConfig } from '../config/types.js';
import { OciError } from '../protocol/errors.js';
import { isValidDigest } from '../protocol/grammar.js';
import { parseManifest } from '../protocol/media-types.js';
import { hostedTargetOf, parseSyncSource } from '../protocol/sync-source.js';
import { compileTagFilter } from '../protocol/tag-pattern.js';
import type { BlobAnswer, ManifestGet, Repository } from '../registry/repository.js';
import type { BlobBody } from '../store/blob-store.js';
import { HOSTED, type MetadataStore, type RepoRef } from '../store/metadata-store.js';
import { RemoteError, type RegistryClient } from '../upstream/registry-client.js';
import { linkManifest, pruneTags } from './hosted-target.js';
import type { JobRun, TagOutcome } from './job-control.js';
import { selectChildren } from './platforms.js';
import type { UpstreamBudget } from './upstream-budget.js';

/** Stops the whole run (throttled, rate-limit floor, timeout) with a reason for the status. */
export class StopRun extends Error {
  override name = 'StopRun';
}

export interface SyncRunDeps {
  client: RegistryClient;
  /** The proxy repository `<host>/<repo>`: the pull path. */
  repository(repo: string): Repository;
  meta: MetadataStore;
  /** Resolves when the fill of a blob in flight is over (committed or failed). */
  settled(digest: string): Promise<void>;
  /** Drops a tag from the proxy's memory after the job moved it in the store. */
  forgetTag(scope: RepoRef, tag: string): void;
  budget: UpstreamBudget;
  rateLimitFloor?: number | undefined;
  /** Repositories listed, and tags worked on, at once (the budget bounds the requests underneath). */
  workers?: number;
  now(): number;
}

export interface SyncRunInput {
  job: SyncJobConfig;
  /** What the job held before this run. */
  held: Readonly<Record<string, string>>;
  signal: AbortSignal;
  /** Filled in as the run goes (status shows progress). */
  run: JobRun;
  /**
   * What the job holds after the run, filled in even when the run stops: tags synced or
   * unchanged with their digest; tags that failed or were not reached keep the old one.
   */
  heldOut: Record<string, string>;
}

const GET: ManifestGet = { method: 'GET', accepted: [], acceptHeader: undefined };
const LIST_BYTES = 8 * 1024 * 1024;
const PAGE = 1000;

/** Why an upstream refuses more: a 429 (with its Retry-After), or undefined. */
export function throttleReason(err: unknown): string | undefined {
  let retryAfter: string | undefined;
  if (err instanceof RemoteError && err.status === 429) retryAfter = err.retryAfter;
  else if (err instanceof OciError && err.code === 'TOOMANYREQUESTS') retryAfter = err.headers['retry-after'];
  else return undefined;
  return `upstream answered 429 Too Many Requests${retryAfter !== undefined ? ` (Retry-After: ${retryAfter.slice(0, 40)})` : ''}; run stopped`;
}

/**
 * `p`, or the abort reason as soon as `signal` aborts. A fill or manifest fetch goes on for
 * whoever else waits on it (pulls share it); `drop` releases the answer if it comes later.
 */
function abortable<T>(p: Promise<T>, signal: AbortSignal, drop: (v: T) => void): Promise<T> {
  if (signal.aborted) {
    p.then(drop, () => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      p.then(drop, () => undefined);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      // Aborted meanwhile: onAbort already arranged the drop (dropping twice throws).
      (v) => { signal.removeEventListener('abort', onAbort); if (!signal.aborted) resolve(v); },
      (err: unknown) => { signal.removeEventListener('abort', onAbort); reject(err); },
    );
  });
}

function dropBody(a: BlobAnswer): void {
  const b = a.body;
  if (!b) return;
  if ('destroy' in b && typeof b.destroy === 'function') b.destroy();
  else (b as BlobBody).discard();
}

/**
 * Runs `fn(0..n-1)`, `width` at a time. The first failure aborts `ctl` (so the others stop
 * at their next step) and is thrown once every started call has settled: nothing of the
 * run goes on after it returns.
 */
async function pool(n: number, width: number, signal: AbortSignal, fn: (i: number) => Promise<void>, ctl: AbortController): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      signal.throwIfAborted();
      await fn(next++);
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(width, n) }, () => worker().catch((err: unknown) => {
    if (!signal.aborted) ctl.abort(err);
    throw err;
  })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed || signal.aborted) throw signal.aborted ? signal.reason : failed!.reason;
}

function reasonOf(err: unknown): string {
  return ((err as Error)?.message ?? String(err)).slice(0, 300);
}

export async function runSync(d: SyncRunDeps, input: SyncRunInput): Promise<void> {
  // Aborted by the caller (cancel, timeout, shutdown) or by the first StopRun of a worker,
  // so no other worker starts another request.
  const inner = new AbortController();
  const outer = input.signal;
  outer.throwIfAborted();
  const onAbort = (): void => inner.abort(outer.reason);
  outer.addEventListener('abort', onAbort, { once: true });
  try {
    await runTags(d, input, inner);
  } catch (err) {
    // Tags not reached (or, with rollback, all) keep what the job held for them.
    for (const [ref, digest] of Object.entries(input.held)) if (!(ref in input.heldOut)) input.heldOut[ref] = digest;
    throw err;
  } finally {
    outer.removeEventListener('abort', onAbort);
  }
}

async function runTags(d: SyncRunDeps, input: SyncRunInput, inner: AbortController): Promise<void> {
  const { job, run } = input;
  const signal = inner.signal;
  const workers = Math.max(1, d.workers ?? 4);
  const src = parseSyncSource(job.source);
  if ('problem' in src) throw new StopRun(src.problem);
  const host = src.host;
  const filter = compileTagFilter({ include: job.tags, exclude: job.excludeTags, semver: job.semver });
  /** Ends the run at once: no request waiting for a budget slot goes out after this. */
  const stop = (reason: string): never => {
    const e = new StopRun(reason);
    if (!signal.aborted) inner.abort(e);
    throw e;
  };
  const guard = <T>(fn: () => Promise<T>): Promise<T> => d.budget.run(async () => {
    try {
      return await fn();
    } catch (err) {
      const t = throttleReason(err);
      if (!t) throw err;
      return stop(t);
    }
  }, signal);

  // 1. What to sync: repositories, then every tag of each, filtered.
  const repos = src.kind === 'repository'
    ? [src.repo]
    : await guard(() => d.client.catalog({ prefix: src.prefix, pageSize: PAGE, maxBytes: LIST_BYTES }));
  const perRepo: Array<Array<{ repo: string; tag: string }>> = repos.map(() => []);
  await pool(repos.length, workers, signal, async (i) => {
    const repo = repos[i]!;
    let last: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const p = await guard(() => d.client.listTags(repo, { n: PAGE, ...(last !== undefined ? { last } : {}), maxBytes: LIST_BYTES }));
      for (const tag of p.tags) if (filter(tag)) perRepo[i]!.push({ repo, tag });
      if (!p.next || p.next.last === last) break;
      last = p.next.last;
    }
  }, inner);
  const work = perRepo.flat();
  run.counts.pending = work.length;
  const tags: TagOutcome[] = [];
  run.tags = tags;

  // With rollback the job keeps holding the old set until the whole run succeeded.
  const held: Record<string, string> = job.rollback ? {} : input.heldOut;
  const staged: Array<{ scope: RepoRef; tag: string; digest: string }> = [];
  const hostedRepo = hostedTargetOf(job);
  // Where the tags live: the proxy's cache scope, or the hosted mirror.
  const destOf = (scope: RepoRef): RepoRef => hostedRepo !== undefined ? { upstream: HOSTED, repo: hostedRepo } : scope;

  const isComplete = async (scope: RepoRef, digest: string): Promise<boolean> => {
    const row = await d.meta.getManifest(digest);
    if (!row || !(await d.meta.isLinked(scope, digest))) return false;
    const images = parseManifest(row.body, row.mediaType)?.manifests.length ? selectChildren(row.body, job.platforms) : [digest];
    for (const m of images) {
      const r = m === digest ? row : await d.meta.getManifest(m);
      if (!r) return false;
      for (const b of parseManifest(r.body, r.mediaType)?.blobs ?? []) {
        if ((await d.meta.blobSize(b.digest)) === undefined || !(await d.meta.isLinked(scope, b.digest))) return false;
      }
    }
    return true;
  };

  const fetchManifest = async (repository: Repository, scope: RepoRef, digest: string): Promise<Buffer> => {
    const local = await d.meta.getManifest(digest);
    if (local && (await d.meta.isLinked(scope, digest))) return local.body;
    const a = await guard(() => abortable(repository.getManifest(digest, true, GET), signal, () => undefined));
    if (a.source === 'miss') run.bytes += a.size;
    return a.body!;
  };

  const fetchBlob = async (repository: Repository, scope: RepoRef, digest: string): Promise<void> => {
    if ((await d.meta.blobSize(digest)) !== undefined && (await d.meta.isLinked(scope, digest))) return;
    await guard(async () => {
      const a = await abortable(repository.getBlob(digest, { method: 'GET', range: undefined }), signal, dropBody);
      if (a.source === 'passthrough') {
        dropBody(a);
        throw new Error(`blob ${digest} was not cached: the store is full (retention.maxSize)`);
      }
      if (a.source === 'hit' || !a.body) {
        // Already committed (another repository brought it): linked now, nothing to read.
        dropBody(a);
        return;
      }
      // Read to the end: the fill gives the last byte only after the digest is verified.
      const body = 'pipe' in a.body ? a.body : a.body.stream();
      let n = 0;
      await pipeline(body, new Writable({ write(chunk: Buffer, _e, cb) { n += chunk.length; cb(); } }), { signal });
      await abortable(d.settled(digest), signal, () => undefined);
      if ((await d.meta.blobSize(digest)) === undefined) throw new Error(`blob ${digest} was fetched but could not be stored`);
      run.bytes += n;
    });
  };

  const syncTag = async (repo: string, tag: string): Promise<void> => {
    const ref = `${repo}:${tag}`;
    const scope: RepoRef = { upstream: host, repo };
    try {
      const head = await guard(() => d.client.headManifest(repo, tag));
      if (d.rateLimitFloor !== undefined && head.rateLimitRemaining !== undefined && head.rateLimitRemaining < d.rateLimitFloor) {
        stop(`upstream ${host} ratelimit-remaining ${head.rateLimitRemaining} is below the floor ${d.rateLimitFloor}; run stopped`);
      }
      const digest = head.digest;
      if (!digest || !isValidDigest(digest)) throw new Error('upstream HEAD gave no valid Docker-Content-Digest');
      const dest = destOf(scope);
      if ((await d.meta.getTag(dest, tag))?.digest === digest && (await isComplete(dest, digest))) {
        held[ref] = digest;
        run.counts.unchanged++;
        tags.push({ ref, outcome: 'unchanged', digest });
        return;
      }
      const repository = d.repository(repo);
      const top = await fetchManifest(repository, scope, digest);
      const parsed = parseManifest(top, '');
      const images = parsed?.manifests.length ? selectChildren(top, job.platforms) : [digest];
      for (const m of images) {
        const body = m === digest ? top : await fetchManifest(repository, scope, m);
        const blobs = parseManifest(body, '')?.blobs.map((b) => b.digest).filter(isValidDigest) ?? [];
        await Promise.all(blobs.map((b) => fetchBlob(repository, scope, b)));
        if (dest !== scope && m !== digest) await linkManifest(d.meta, dest, m, d.now());
      }
      // The index last, once its chosen children are there.
      if (dest !== scope) await linkManifest(d.meta, dest, digest, d.now());
      if (job.rollback) staged.push({ scope: dest, tag, digest });
      else await setTag(dest, tag, digest);
      held[ref] = digest;
      run.counts.synced++;
      tags.push({ ref, outcome: 'synced', digest });
    } catch (err) {
      if (err instanceof StopRun || signal.aborted) throw err;
      const prev = input.held[ref];
      if (prev !== undefined) held[ref] = prev;
      run.counts.failed++;
      tags.push({ ref, outcome: 'failed', reason: reasonOf(err) });
    } finally {
      run.counts.pending--;
    }
  };

  const setTag = async (scope: RepoRef, tag: string, digest: string): Promise<void> => {
    await d.meta.putTag(scope, tag, digest, d.now());
    if (scope.upstream !== HOSTED) d.forgetTag(scope, tag);
  };
  // A mirror holds exactly the matching tags: the others (removed upstream, or no longer
  // matching) go once the listing is known to be complete.
  const prune = async (): Promise<void> => {
    if (hostedRepo === undefined) return;
    const removed = await pruneTags(d.meta, { upstream: HOSTED, repo: hostedRepo }, new Set(work.map((w) => w.tag)));
    run.counts.removed = removed.length;
  };

  // 2. The tags, a few at a time; the first StopRun (or cancel) ends the run.
  await pool(work.length, workers, signal, (i) => syncTag(work[i]!.repo, work[i]!.tag), inner);
  if (!job.rollback) return prune();
  if (run.counts.failed > 0) {
    Object.assign(input.heldOut, input.held);
    return;
  }
  for (const s of staged) await setTag(s.scope, s.tag, s.digest);
  await prune();
  Object.assign(input.heldOut, held);
}
