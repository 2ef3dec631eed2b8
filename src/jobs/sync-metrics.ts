/**
 * Prometheus metrics of sync jobs, on the process's registry (docs/metrics.md). The job
 * label takes operator-defined names only (config keys), so cardinality stays bounded; a
 * removed job's series are dropped.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { JobState } from './job-control.js';

export const JOB_STATES: readonly JobState[] = ['NEVER_RUN', 'SCHEDULED', 'SYNC_NOW', 'SYNCING', 'SUCCESS', 'FAIL', 'CANCEL'];

export interface SyncMetricsSource {
  /** Per job: state, pending tags, last success (ms) for the gauges at scrape time. */
  gauges(): Array<{ job: string; state: JobState; pending: number; lastSuccess?: number }>;
}

export class SyncMetrics {
  readonly runs: Counter;
  readonly bytes: Counter;
  readonly webhooks: Counter;

  constructor(registry: Registry, source: SyncMetricsSource) {
    this.runs = new Counter({
      name: 'regcache_sync_runs_total', help: 'Sync runs finished, by job and result (SUCCESS, FAIL, CANCEL, INTERRUPTED).',
      labelNames: ['job', 'result'], registers: [registry],
    });
    this.bytes = new Counter({
      name: 'regcache_sync_bytes_total', help: 'Bytes sync jobs fetched from upstreams (manifests and blobs not cached before).',
      labelNames: ['job'], registers: [registry],
    });
    this.webhooks = new Counter({
      name: 'regcache_webhook_deliveries_total', help: 'Webhook deliveries after their last attempt, by webhook and result (ok|failed).',
      labelNames: ['webhook', 'result'], registers: [registry],
    });
    new Gauge({
      name: 'regcache_sync_status', help: 'Sync job state: 1 for the current state of each job, 0 for the others.',
      labelNames: ['job', 'state'], registers: [registry],
      collect(): void {
        this.reset();
        for (const g of source.gauges()) for (const s of JOB_STATES) this.set({ job: g.job, state: s }, g.state === s ? 1 : 0);
      },
    });
    new Gauge({
      name: 'regcache_sync_pending_tags', help: 'Tags the current run of a job has still to do (0 when not running).',
      labelNames: ['job'], registers: [registry],
      collect(): void {
        this.reset();
        for (const g of source.gauges()) this.set({ job: g.job }, g.pending);
      },
    });
    new Gauge({
      name: 'regcache_sync_last_success_timestamp_seconds', help: 'End of the last successful run of a job (Unix seconds).',
      labelNames: ['job'], registers: [registry],
      collect(): void {
        this.reset();
        for (const g of source.gauges()) if (g.lastSuccess !== undefined) this.set({ job: g.job }, g.lastSuccess / 1000);
      },
    });
  }

  /** Drops a removed job's counter series. */
  forget(job: string): void {
    for (const r of ['SUCCESS', 'FAIL', 'CANCEL', 'INTERRUPTED']) this.runs.remove({ job, result: r });
    this.bytes.remove({ job });
  }
}
