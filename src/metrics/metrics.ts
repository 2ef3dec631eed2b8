/**
 * Prometheus metrics (prom-client), one registry per process instance. Labels stay
 * low-cardinality: upstream host, kind (manifest|blob|...), method, status class — never
 * repository names or digests. Every metric is documented in docs/metrics.md.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UpstreamObserver } from '../upstream/client.js';

export type CacheResult = 'hit' | 'miss' | 'stale' | 'revalidated' | 'passthrough';
const CACHE_RESULTS: readonly CacheResult[] = ['hit', 'miss', 'stale', 'revalidated', 'passthrough'];

export class Metrics implements UpstreamObserver {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'regcache_requests_total', help: 'Client requests answered, by upstream, kind, method and status.',
    labelNames: ['upstream', 'kind', 'method', 'status'], registers: [this.registry],
  });
  readonly requestDuration = new Histogram({
    name: 'regcache_request_duration_seconds', help: 'Time from request to the end of the response.',
    labelNames: ['upstream', 'kind', 'method'], registers: [this.registry],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  });
  readonly cacheResults = new Counter({
    name: 'regcache_cache_results_total', help: 'Cache outcomes: hit, miss, stale (served while upstream failed), revalidated, passthrough (not cached).',
    labelNames: ['upstream', 'kind', 'result'], registers: [this.registry],
  });
  readonly upstreamRequests = new Counter({
    name: 'regcache_upstream_requests_total', help: 'Requests sent to upstreams, by upstream, method and status (error = no HTTP answer).',
    labelNames: ['upstream', 'method', 'status'], registers: [this.registry],
  });
  readonly upstreamDuration = new Histogram({
    name: 'regcache_upstream_request_duration_seconds', help: 'Time to the upstream response headers.',
    labelNames: ['upstream', 'method'], registers: [this.registry],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  readonly bytesServed = new Counter({
    name: 'regcache_bytes_served_total', help: 'Body bytes sent to clients, by source (cache = from disk or index, upstream = during a fill or passthrough).',
    labelNames: ['source'], registers: [this.registry],
  });
  readonly upstreamBytes = new Counter({
    name: 'regcache_upstream_bytes_total', help: 'Body bytes received from upstreams.',
    labelNames: ['upstream'], registers: [this.registry],
  });
  readonly fillsInFlight = new Gauge({
    name: 'regcache_fills_in_flight', help: 'Blob fills (upstream fetches into the store) in progress.', registers: [this.registry],
  });
  readonly fillWaiters = new Gauge({
    name: 'regcache_fill_waiters', help: 'Client responses currently streaming from an in-progress fill.', registers: [this.registry],
  });
  readonly digestMismatches = new Counter({
    name: 'regcache_digest_mismatches_total', help: 'Upstream content whose bytes did not match its digest (nothing stored).',
    labelNames: ['upstream'], registers: [this.registry],
  });
  /** Set by the app: reads store totals when Prometheus scrapes. */
  storeStats: (() => { bytes: number; blobs: number; manifests: number }) | undefined;
  readonly storeBytes = this.storeGauge('regcache_store_bytes', 'Bytes of blobs and manifests in the store.', 'bytes');
  readonly storeBlobs = this.storeGauge('regcache_store_blobs', 'Blobs in the store.', 'blobs');
  readonly storeManifests = this.storeGauge('regcache_store_manifests', 'Manifests in the index.', 'manifests');
  readonly evictions = new Counter({
    name: 'regcache_evictions_total', help: 'Items removed by retention, by reason (age|size).',
    labelNames: ['reason'], registers: [this.registry],
  });
  readonly evictedBytes = new Counter({ name: 'regcache_evicted_bytes_total', help: 'Bytes freed by retention.', registers: [this.registry] });
  readonly upstreamUp = new Gauge({
    name: 'regcache_upstream_up', help: '1 when the upstream is not marked down by the failure detector.',
    labelNames: ['upstream'], registers: [this.registry],
  });
  /** Set by the app: retention.maxSize when Prometheus scrapes (0 = no limit). */
  storeMaxSize: (() => number | undefined) | undefined;
  // Alerts compare the store's size to its limit (config/prometheus/alerts.yaml).
  readonly storeMaxBytes = (() => {
    const metrics = this;
    return new Gauge({
      name: 'regcache_store_max_bytes', help: 'retention.maxSize in bytes (0 when the store has no size limit).', registers: [this.registry],
      collect(): void {
        this.set(metrics.storeMaxSize?.() ?? 0);
      },
    });
  })();

  /** Set by the app with `replicas`: this replica's leadership and leases, read when Prometheus scrapes. */
  replicaStats: (() => { leader: boolean; fillLeases: number }) | undefined;
  readonly replicaLeader = this.replicaGauge('regcache_replica_leader', '1 while this replica holds the leader lease (runs periodic retention).', (s) => (s.leader ? 1 : 0));
  readonly replicaFillLeases = this.replicaGauge('regcache_replica_fill_leases', 'Fill leases this replica holds (blobs it is fetching for the cluster).', (s) => s.fillLeases);
  readonly peerStreams = new Counter({
    name: 'regcache_peer_streams_total', help: 'Blob responses streamed from another replica\'s live fill.', registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** 0 in a process that is not a replica. */
  private replicaGauge(name: string, help: string, pick: (s: { leader: boolean; fillLeases: number }) => number): Gauge {
    const metrics = this;
    return new Gauge({
      name, help, registers: [this.registry],
      collect(): void {
        const s = metrics.replicaStats?.();
        if (s) this.set(pick(s));
      },
    });
  }

  private storeGauge(name: string, help: string, field: 'bytes' | 'blobs' | 'manifests'): Gauge {
    const metrics = this;
    return new Gauge({
      name, help, registers: [this.registry],
      collect(): void {
        const s = metrics.storeStats?.();
        if (s) this.set(s[field]);
      },
    });
  }

  /**
   * Makes the series of known label sets exist at zero from the start (and for upstreams a
   * reload adds), so rates, ratios and alerts work before the first event of each kind.
   */
  declare(upstreams: readonly string[]): void {
    for (const upstream of upstreams) {
      for (const kind of ['manifest', 'blob']) {
        for (const result of CACHE_RESULTS) this.cacheResults.inc({ upstream, kind, result }, 0);
      }
      this.digestMismatches.inc({ upstream }, 0);
      this.upstreamBytes.inc({ upstream }, 0);
      this.upstreamUp.set({ upstream }, 1);
    }
    for (const source of ['cache', 'upstream']) this.bytesServed.inc({ source }, 0);
    for (const reason of ['age', 'size']) this.evictions.inc({ reason }, 0);
    this.evictedBytes.inc(0);
  }

  request(upstream: string, method: string, status: string, seconds: number): void {
    this.upstreamRequests.inc({ upstream, method, status });
    this.upstreamDuration.observe({ upstream, method }, seconds);
  }
}
