/**
 * What the admin API and page read and do, as one interface the HTTP routes use: the App
 * implements it (admin-service.ts) over its services; component tests may use the real one
 * with a JobControl test double. Views are plain JSON-ready objects and never carry
 * credentials (upstream URLs are validated to have none; usernames and passwords are never read here).
 */
import type { EventBus } from '../events/event-bus.js';
import type { JobControl } from '../jobs/job-control.js';
import type { RepoRef } from '../store/metadata-store.js';
import type { RepositoryDetail, RepositoryPage } from './repository-view.js';
import type { StatusView } from './status-view.js';

export interface Admin {
  status(): Promise<StatusView>;
  repositories(opts: { q?: string; last?: string; n: number }): Promise<RepositoryPage>;
  /** Undefined when the store has no such repository. */
  repository(ref: RepoRef, opts: { last?: string; n: number }): Promise<RepositoryDetail | undefined>;
  /** Revalidates a cached tag now: one upstream HEAD. */
  refreshTag(ref: RepoRef, tag: string): Promise<{ digest: string | undefined; changed: boolean }>;
  /** Drops a cached tag; its content stays until retention. */
  forgetTag(ref: RepoRef, tag: string): Promise<void>;
  readonly events: EventBus;
  /** Absent until the jobs service runs: the jobs endpoints then answer 404. */
  readonly jobs: JobControl | undefined;
  /** Aborted when the server stops: live streams end then instead of holding the shutdown grace. */
  readonly closing: AbortSignal;
}
