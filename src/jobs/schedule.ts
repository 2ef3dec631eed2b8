/**
 * When a sync job runs next: pure decisions of the jobs service's scheduler.
 * - A job that never ran runs at `startAt`, or at once without one.
 * - Later runs come `interval` after the last start, never before `startAt`; a slot that
 *   passed while regcache was down runs at once (never twice).
 * - A disabled job has no scheduled run (`sync now` still works).
 * - A failed run is retried after `retryDelay`, doubling for each retry already made.
 */
import type { SyncJobConfig } from '../config/types.js';

export function dueAt(job: Pick<SyncJobConfig, 'enabled' | 'interval' | 'startAt'>, lastStart: number | undefined, now: number): number | undefined {
  if (!job.enabled) return undefined;
  let at: number;
  if (lastStart === undefined) at = job.startAt ?? now;
  else {
    at = lastStart + job.interval;
    if (job.startAt !== undefined && at < job.startAt) at = job.startAt;
  }
  return Math.max(at, now);
}

/** When the next retry of a failed run goes, or undefined when none is left. */
export function retryAt(job: Pick<SyncJobConfig, 'retries' | 'retryDelay'>, retriesLeft: number, now: number): number | undefined {
  if (retriesLeft <= 0) return undefined;
  return now + job.retryDelay * 2 ** (job.retries - retriesLeft);
}
