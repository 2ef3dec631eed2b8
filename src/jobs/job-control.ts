/**
 * What the admin API, the page and `regcache sync ...` see of scheduled jobs (sync jobs and
 * scheduled copies). The jobs service implements it; status follows Quay's repository
 * mirroring states.
 */

export type JobKind = 'sync' | 'copy';

export type JobState = 'NEVER_RUN' | 'SCHEDULED' | 'SYNC_NOW' | 'SYNCING' | 'SUCCESS' | 'FAIL' | 'CANCEL';

export interface TagOutcome {
  /** `<repository>:<tag>` as the job names it. */
  ref: string;
  outcome: 'synced' | 'unchanged' | 'failed' | 'pending' | 'removed';
  digest?: string;
  reason?: string;
}

export interface JobRun {
  id: string;
  startedAt: string;
  endedAt?: string;
  /** Why it ran: schedule, now (API/CLI), start (interrupted earlier), retry. */
  trigger: 'schedule' | 'now' | 'start' | 'retry';
  result?: 'SUCCESS' | 'FAIL' | 'CANCEL' | 'INTERRUPTED';
  error?: string;
  /** `removed`: tags a hosted-target run took out of its mirror (removed upstream or no longer matching). */
  counts: { synced: number; unchanged: number; failed: number; pending: number; removed?: number };
  bytes: number;
  tags?: TagOutcome[];
}

export interface JobSummary {
  name: string;
  kind: JobKind;
  state: JobState;
  enabled: boolean;
  lastStart?: string;
  lastEnd?: string;
  nextRun?: string;
  retriesLeft?: number;
  lastError?: string;
  /** Outcome of the last webhook delivery, if any. */
  lastWebhook?: { url: string; ok: boolean; at: string; status?: number; error?: string };
  lastRun?: JobRun;
}

export interface JobDetail extends JobSummary {
  /** The job's configuration as declared (credentials never included). */
  config: Record<string, unknown>;
  history: JobRun[];
}

export interface JobControl {
  list(): JobSummary[];
  get(name: string): JobDetail | undefined;
  /** Starts a run now (SYNC_NOW); resolves with the run when `wait`, else at once. */
  runNow(name: string, opts?: { wait?: boolean }): Promise<JobRun | undefined>;
  /** Cancels a running job; false when it was not running. */
  cancel(name: string): boolean;
  /**
   * Whether a job pins `digest` (an image it holds, kept from retention): shown per tag by
   * the admin API. Optional: a JobControl without it pins nothing.
   */
  holds?(digest: string): boolean;
}
