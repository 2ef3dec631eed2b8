/**
 * The composition root: builds a running regcache from a Config as a list of services
 * (stores, upstreams, retention, listeners), starts them in order and stops them in
 * reverse. Policy lives in the services and the registry, not here. Touches no process.*
 * and does no I/O before start().
 */
import type { Logger } from 'pino';
import { restartNeededKeys } from './config/reload.js';
import type { Config } from './config/types.js';
import { Access } from './http/access.js';
import { HttpService } from './http/http-service.js';
import type { HttpDeps } from './http/route.js';
import { Metrics } from './metrics/metrics.js';
import { Namespace } from './registry/namespace.js';
import { Admission } from './registry/proxy/admission.js';
import { Pins } from './registry/proxy/pins.js';
import { Proxy } from './registry/proxy/proxy.js';
import { ReplicaService } from './replicas/replica-service.js';
import type { Service } from './service.js';
import type { SweepOptions, SweepPlan } from './store/eviction.js';
import { createStores } from './store/backends.js';
import type { BlobStore } from './store/blob-store.js';
import type { MetadataStore } from './store/metadata-store.js';
import { PostgresMetadataStore } from './store/postgres/postgres-metadata-store.js';
import { RetentionService } from './store/retention-service.js';
import type { RecoveryReport } from './store/recovery.js';
import { StoreService } from './store/store-service.js';
import { Upstreams } from './upstream/upstreams.js';
import { USER_AGENT } from './version.js';

export interface AppOptions {
  log: Logger;
  now?: () => number;
  defaultMetrics?: boolean;
}

export interface ReloadSummary {
  added: string[];
  removed: string[];
  changed: string[];
  restartNeeded: string[];
  /** Changes asked for that did not apply (e.g. a port that would not bind). */
  failed: string[];
}

export class App {
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly blobs: BlobStore;
  readonly meta: MetadataStore;
  readonly pins = new Pins();
  readonly upstreams: Upstreams;
  readonly proxy: Proxy;
  readonly namespace: Namespace;
  readonly store: StoreService;
  readonly retention: RetentionService;
  readonly http: HttpService;
  /** Present when this process is one replica of a cluster (config `replicas`). */
  readonly replicas: ReplicaService | undefined;
  private readonly services: Service[];
  private config: Config;
  /** The config the restart-only keys were taken from. */
  private readonly startConfig: Config;
  private readonly now: () => number;

  constructor(config: Config, opts: AppOptions) {
    this.config = config;
    this.startConfig = config;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    const now = this.now;
    this.metrics = new Metrics({ defaultMetrics: opts.defaultMetrics ?? true });
    const stores = createStores(config, (err) => this.log.warn({ err: err.message }, 'metadata store write failed; will retry'));
    this.blobs = stores.blobs;
    this.meta = stores.meta;
    this.store = new StoreService(this.blobs, this.meta, now, { shared: stores.shared });
    this.upstreams = new Upstreams({
      timeouts: config.upstreamTimeouts, health: config.upstreamHealth, userAgent: USER_AGENT, observer: this.metrics, now,
    });
    this.upstreams.update(config.upstreams);
    if (config.replicas) {
      // validate.ts guarantees storage.metadata is postgres when replicas is set.
      if (!(this.meta instanceof PostgresMetadataStore)) throw new Error('replicas need storage.metadata: postgres');
      const meta = this.meta;
      this.replicas = new ReplicaService(config.replicas, {
        pool: meta.pool, liveFill: (d) => this.proxy.blobs.liveFill(d), log: this.log, blobs: this.blobs,
        inUse: async (d) => this.pins.has(d) || this.proxy.blobs.isFilling(d) || (await meta.blobSize(d)) !== undefined,
      });
    }
    const replicas = this.replicas;
    this.retention = new RetentionService(config, {
      blobs: replicas?.deletes ?? this.blobs, meta: this.meta,
      isPinned: (d) => this.pins.has(d) || this.proxy.blobs.isFilling(d),
      onRemoved: (manifests) => this.proxy.manifests.forget(manifests),
    }, this.log, {
      evicted: (plan: SweepPlan) => {
        for (const u of plan.units) this.metrics.evictions.inc({ reason: u.reason });
        this.metrics.evictedBytes.inc(plan.bytesFreed);
      },
    }, now, () => replicas?.isLeader() ?? true);
    const admission = new Admission({
      used: () => { const t = this.meta.totals(); return t.blobBytes + t.manifestBytes; },
      maxSize: () => this.config.retention.maxSize,
      disk: () => this.blobs.space(),
      evict: (targetSize) => this.retention.sweep({ targetSize }),
    });
    this.proxy = new Proxy({
      config, blobs: this.blobs, meta: this.meta, pins: this.pins, metrics: this.metrics, log: this.log,
      upstreams: this.upstreams, admission, now, cluster: replicas?.fills,
    });
    this.namespace = new Namespace(this.proxy, () => this.config.defaultUpstream);
    const access = config.auth ? new Access(config.auth) : undefined;
    const deps: HttpDeps = {
      namespace: this.namespace, metrics: this.metrics, log: this.log,
      ready: () => this.ready(),
      catalog: (last, n, upstream) => this.meta.catalog(last, n, upstream),
    };
    if (access) deps.authorize = (req, ep) => access.authorize(req, ep);
    this.http = new HttpService(config, deps, this.log);
    this.metrics.storeStats = () => {
      for (const c of this.upstreams.all()) this.metrics.upstreamUp.set({ upstream: c.host }, c.health.isDown ? 0 : 1);
      const t = this.meta.totals();
      return { bytes: t.blobBytes + t.manifestBytes, blobs: t.blobs, manifests: t.manifests };
    };
    if (replicas) this.metrics.replicaStats = () => ({ leader: replicas.isLeader(), fillLeases: replicas.fills.holding });
    this.services = [this.store, this.upstreams, ...(replicas ? [replicas] : []), this.retention, this.http];
  }

  get currentConfig(): Config {
    return this.config;
  }

  get recovery(): RecoveryReport | undefined {
    return this.store.recovery;
  }

  get listeners(): HttpService['listeners'] {
    return this.http.listeners;
  }

  get mainPort(): number | undefined {
    return this.http.mainPort;
  }

  /** One retention sweep now (serialised with any other); dryRun only plans. */
  sweep(opts: SweepOptions = {}): Promise<SweepPlan> {
    return this.retention.sweep(opts);
  }

  async ready(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    const s = await this.store.status();
    const checks = { store: String(s.store), index: String(s.index) };
    return { ok: checks.store === 'writable' && checks.index === 'open', checks };
  }

  /** Starts every service in order; on a failure, stops what started. */
  async start(): Promise<void> {
    const started: Service[] = [];
    try {
      for (const s of this.services) {
        await s.start();
        started.push(s);
      }
    } catch (err) {
      for (const s of started.reverse()) await s.stop(0).catch(() => undefined);
      throw err;
    }
  }

  /** Applies a changed config: every service takes what it can apply live. */
  async reload(next: Config): Promise<ReloadSummary> {
    const prev = this.config;
    this.config = next;
    this.proxy.setConfig(next);
    const summary: ReloadSummary = { added: [], removed: [], changed: [], restartNeeded: restartNeededKeys(this.startConfig, next), failed: [] };
    for (const s of this.services) {
      const r = await s.reload(next, prev);
      summary.failed.push(...r.failed);
      if (s === this.upstreams && r.changes) Object.assign(summary, r.changes);
    }
    return summary;
  }

  /** Stops accepting, lets in-flight responses finish up to `graceMs`, then stops the rest. */
  async stop(graceMs: number): Promise<void> {
    for (const s of [...this.services].reverse()) await s.stop(graceMs);
  }
}
