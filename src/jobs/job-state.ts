/**
 * What the jobs service keeps of each job in the metadata store (state namespace `jobs`, key
 * `sync/<name>` for sync jobs, `copy/<name>` for scheduled copies),
 * so status, history and what a job holds survive restarts. A run in progress is written
 * as `running` before it starts: a process killed mid-run leaves that mark, and the next
 * start records the run as INTERRUPTED and runs the job again (no job stays SYNCING).
 */
import type { JobRun, JobState, JobSummary } from './job-control.js';
import type { MetadataStore } from '../store/metadata-store.js';

export const STATE_NS = 'jobs';
/** Runs kept per job in the history. */
export const HISTORY = 20;

export interface StoredJob {
  /** The state of the last finished run (NEVER_RUN before the first). */
  state: Extract<JobState, 'NEVER_RUN' | 'SUCCESS' | 'FAIL' | 'CANCEL'>;
  lastStart?: string;
  lastEnd?: string;
  lastSuccess?: string;
  lastError?: string;
  retriesLeft?: number;
  /** Set while a run is in progress. */
  running?: Pick<JobRun, 'id' | 'startedAt' | 'trigger'>;
  /** Newest last. */
  history: JobRun[];
  /** `<repository>:<tag>` -> the digest the job synced for it: pinned against retention. */
  held: Record<string, string>;
  lastWebhook?: JobSummary['lastWebhook'];
}

export function emptyJob(): StoredJob {
  return { state: 'NEVER_RUN', history: [], held: {} };
}

export class JobStateStore {
  /** `prefix`: `sync/` or `copy/`, so each kind keeps its keys in the one namespace. */
  constructor(private readonly meta: MetadataStore, private readonly prefix: string = 'sync/') {}

  async all(): Promise<Map<string, StoredJob>> {
    const rows = await this.meta.listState<StoredJob>(STATE_NS);
    return new Map(rows.filter((r) => r.key.startsWith(this.prefix)).map((r) => [r.key.slice(this.prefix.length), { ...emptyJob(), ...r.value }]));
  }

  save(name: string, job: StoredJob): Promise<void> {
    return this.meta.putState(STATE_NS, this.prefix + name, job);
  }

  delete(name: string): Promise<void> {
    return this.meta.deleteState(STATE_NS, this.prefix + name);
  }
}

/** Appends a run to the history, keeping the newest HISTORY. */
export function pushHistory(job: StoredJob, run: JobRun): void {
  job.history.push(run);
  if (job.history.length > HISTORY) job.history.splice(0, job.history.length - HISTORY);
}
