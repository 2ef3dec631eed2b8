/**
 * The stores as a service: opens the blob store and the metadata store, brings them into
 * agreement at start (recovery.ts), reports readiness, closes them last.
 */
import type { Config } from '../config/types.js';
import { NOTHING_TO_RELOAD, type ReloadResult, type Service } from '../service.js';
import type { BlobStore } from './blob-store.js';
import type { MetadataStore } from './metadata-store.js';
import { recover, type RecoveryReport } from './recovery.js';

export class StoreService implements Service {
  readonly name = 'store';
  recovery: RecoveryReport | undefined;

  constructor(
    readonly blobs: BlobStore, readonly meta: MetadataStore, private readonly now: () => number,
    private readonly opts: { shared?: boolean } = {},
  ) {}

  async start(): Promise<void> {
    await this.blobs.init();
    await this.meta.init();
    // Shared stores are being written by other replicas right now: a start only clears its
    // own spools; reconciling blobs with rows across the cluster is not a start-up job.
    this.recovery = await recover(this.blobs, this.meta, { repair: true, now: this.now, spoolsOnly: this.opts.shared ?? false });
  }

  async stop(): Promise<void> {
    await this.meta.close();
    await this.blobs.close();
  }

  async reload(next: Config, prev: Config): Promise<ReloadResult> {
    return next.dataDir === prev.dataDir ? NOTHING_TO_RELOAD : { restartNeeded: ['dataDir'], failed: [] };
  }

  async status(): Promise<Record<string, unknown>> {
    const writable = await this.blobs.writable();
    // Not healthy: closed, or locked by another process (writes then queue in memory).
    return { store: writable ? 'writable' : 'not writable', index: this.meta.healthy() ? 'open' : 'unavailable', ...this.meta.totals() };
  }
}
