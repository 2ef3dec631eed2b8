/**
 * The Admin implementation over the App's parts: store, proxy, upstreams, metrics, events
 * and (when the jobs service runs) JobControl. Refresh and forget act only on cached
 * repositories of a configured upstream.
 */
import type { EventBus } from '../events/event-bus.js';
import type { JobControl } from '../jobs/job-control.js';
import type { Metrics } from '../metrics/metrics.js';
import { OciError } from '../protocol/errors.js';
import type { Proxy } from '../registry/proxy/proxy.js';
import { toClientError } from '../registry/proxy/remote-errors.js';
import type { MetadataStore, RepoRef } from '../store/metadata-store.js';
import type { Upstreams } from '../upstream/upstreams.js';
import type { Admin } from './admin.js';
import { HOSTED, repositoryDetail, repositoryPage, type RepositoryDetail, type RepositoryPage } from './repository-view.js';
import { statusView, type StatusView } from './status-view.js';

export interface AdminServiceDeps {
  version: string;
  startedAt: number;
  now: () => number;
  meta: MetadataStore;
  proxy: Proxy;
  upstreams: Upstreams;
  metrics: Metrics;
  events: EventBus;
  jobs: JobControl | undefined;
  maxSize: () => number | undefined;
}

export class AdminService implements Admin {
  private readonly stopping = new AbortController();

  constructor(private readonly d: AdminServiceDeps) {}

  get closing(): AbortSignal {
    return this.stopping.signal;
  }

  /** Ends the live event streams (called first when the server stops). */
  close(): void {
    this.stopping.abort();
  }

  get events(): EventBus {
    return this.d.events;
  }

  get jobs(): JobControl | undefined {
    return this.d.jobs;
  }

  status(): Promise<StatusView> {
    const d = this.d;
    return statusView({
      version: d.version, startedAt: d.startedAt, now: d.now(), totals: d.meta.totals(), maxSize: d.maxSize(),
      metrics: d.metrics, fills: d.proxy.blobs.inFlight(), upstreams: d.upstreams.all(),
    });
  }

  repositories(opts: { q?: string; last?: string; n: number }): Promise<RepositoryPage> {
    return repositoryPage(this.d.meta, opts);
  }

  repository(ref: RepoRef, opts: { last?: string; n: number }): Promise<RepositoryDetail | undefined> {
    const jobs = this.d.jobs;
    return repositoryDetail(this.d.meta, ref, opts, (digest) => jobs?.holds?.(digest) ?? false);
  }

  private async cachedTag(ref: RepoRef, tag: string): Promise<void> {
    if (ref.upstream === HOSTED) throw new OciError('UNSUPPORTED', 'hosted repositories have no upstream to refresh from or forget for');
    if (!(await this.d.meta.getTag(ref, tag))) throw new OciError('MANIFEST_UNKNOWN', 'no such cached tag', { repository: `${ref.upstream}/${ref.repo}`, tag });
  }

  async refreshTag(ref: RepoRef, tag: string): Promise<{ digest: string | undefined; changed: boolean }> {
    await this.cachedTag(ref, tag);
    const client = this.d.upstreams.get(ref.upstream);
    try {
      return await this.d.proxy.manifests.refresh(client, ref, tag);
    } catch (err) {
      throw toClientError(err, ref.upstream, 'manifest');
    }
  }

  async forgetTag(ref: RepoRef, tag: string): Promise<void> {
    await this.cachedTag(ref, tag);
    await this.d.meta.deleteTag(ref, tag);
    this.d.proxy.manifests.forgetTag(ref, tag);
  }
}
