/**
 * `regcache sync now NAME --wait` without --json: follows the run by polling the job's
 * status (GET /api/v1/sync/NAME) and shows it through the gc/fsck progress (progress.ts):
 * a bar on a terminal, plain lines otherwise. Steps: waiting to start (SYNC_NOW), listing
 * tags (SYNCING, before the run knows its tags), then one tick per tag done; the total is
 * the run's counts (done + pending), known once the tags are listed.
 */
import type { JobDetail, JobRun } from '../jobs/job-control.js';
import type { Progress } from './progress.js';

/** One poll of the job, or why it cannot be read (the job was removed, the server stopped). */
export type FetchJob = () => Promise<JobDetail>;

export interface WaitOptions {
  /** Between polls; a run's state changes no faster than its tags, so half a second shows it moving. */
  intervalMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const done = (r: JobRun): number => r.counts.synced + r.counts.unchanged + r.counts.failed;

/** Polls until run `id` has a result and returns it, the progress stopped. */
export async function waitForRun(id: string, fetchJob: FetchJob, progress: Progress, opts: WaitOptions = {}): Promise<JobRun> {
  const interval = opts.intervalMs ?? 500;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let step: 'waiting' | 'listing' | 'tags' | undefined;
  let ticked = 0;
  try {
    for (;;) {
      const job = await fetchJob();
      // The run is the job's last while it runs; once ended it stays in the history.
      const run = job.lastRun?.id === id ? job.lastRun : job.history.find((r) => r.id === id);
      if (!run) throw new Error(`run ${id} is no longer in the job's history`);
      const total = done(run) + run.counts.pending;
      if (total > 0 || run.result) {
        if (step !== 'tags') {
          step = 'tags';
          progress.step('tags', total);
        }
        for (; ticked < done(run); ticked++) progress.tick();
      } else if (job.state === 'SYNC_NOW' && step === undefined) {
        step = 'waiting';
        progress.step('waiting to start');
      } else if (job.state === 'SYNCING' && step !== 'listing') {
        step = 'listing';
        progress.step('listing tags');
      }
      if (run.result) return run;
      await sleep(interval);
    }
  } finally {
    progress.stop();
  }
}
