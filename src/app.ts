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
import { catalogPage } from './registry/catalog.js';
import { Hosted } from './registry/hosted/hosted.js';
import { Namespace } from './registry/namespace.js';
import { Admission } from './registry/proxy/admission.js';
import { Pins } from './registry/proxy/pins.js';
import { Proxy } from './registry/proxy/proxy.js';
import type { Service } from './service.js';
import type { SweepOptions, SweepPlan } from './store/eviction.js';
import { FsBlobStore } from './store/fs/fs-blob-store.js';
import { RetentionService } from './store/retention-service.js';
import type { RecoveryReport } from './store/recovery.js';
import { SqliteMetadataStore } from './store/sqlite/sqlite-metadata-store.js';
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
  readonly blobs: FsBlobStore;
  readonly meta: SqliteMetadataStore;
  readonly pins = new Pins();
  readonly upstreams: Upstreams;
  readonly proxy: Proxy;
  readonly namespace: Namespace;
  readonly hosted: Hosted;
  readonly store: StoreService;
  readonly retention: RetentionService;
  readonly http: HttpService;
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
    this.blobs = new FsBlobStore(config.dataDir);
    this.meta = new SqliteMetadataStore(this.blobs.layout.indexFile, {
      onError: (err) => this.log.warn({ err: err.message }, 'cannot record last-pull times; will retry'),
    });
    this.store = new StoreService(this.blobs, this.meta, now);
    this.upstreams = new Upstreams({
      timeouts: config.upstreamTimeouts, health: config.upstreamHealth, userAgent: USER_AGENT, observer: this.metrics, now,
    });
    this.upstreams.update(config.upstreams);
    this.retention = new RetentionService(config, {
      blobs: this.blobs, meta: this.meta,
      isPinned: (d) => this.pins.has(d) || this.proxy.blobs.isFilling(d),
      onRemoved: (manifests) => this.proxy.manifests.forget(manifests),
    }, this.log, {
      evicted: (plan: SweepPlan) => {
        for (const u of plan.units) this.metrics.evictions.inc({ reason: u.reason });
        this.metrics.evictedBytes.inc(plan.bytesFreed);
      },
    }, now);
    const admission = new Admission({
      used: () => { const t = this.meta.totals(); return t.blobBytes + t.manifestBytes; },
      maxSize: () => this.config.retention.maxSize,
      disk: () => this.blobs.space(),
      evict: (targetSize) => this.retention.sweep({ targetSize }),
    });
    this.proxy = new Proxy({
      config, blobs: this.blobs, meta: this.meta, pins: this.pins, metrics: this.metrics, log: this.log,
      upstreams: this.upstreams, admission, now,
    });
    this.hosted = new Hosted(config, {
      blobs: this.blobs, meta: this.meta, pins: this.pins, log: this.log, now,
      onRemoved: (manifests) => this.proxy.manifests.forget(manifests),
    });
    this.namespace = new Namespace(this.proxy, () => this.config.defaultUpstream, this.hosted);
    // Without `auth` there are no users: pulls are open and nobody may write.
    const access = new Access(config.auth
      ? { ...config.auth, anonymousCatalog: config.catalog.anonymous }
      : { anonymousPull: true, protectMetrics: false, rules: [], anonymousCatalog: config.catalog.anonymous });
    const namespace = this.namespace;
    const deps: HttpDeps = {
      namespace, metrics: this.metrics, log: this.log,
      ready: () => this.ready(),
      catalog: (last, n, upstream) => catalogPage(this.meta, last, n, upstream),
      authorize: (req, r) => {
        const name = 'name' in r.endpoint ? r.endpoint.name : undefined;
        let placed: ReturnType<Namespace['place']> | undefined;
        try {
          if (name !== undefined) placed = namespace.place(r.listener, r.ns, name);
        } catch {
          placed = undefined; // the route answers the naming error
        }
        return access.authorize(req, r.endpoint, r.method, placed?.full, placed !== undefined && placed.kind !== 'proxy');
      },
      canPull: async (req, listener, ns, name) => {
        const id = await access.identify(req);
        if ('refused' in id) return false;
        try {
          return access.mayPull(id.user, namespace.place(listener, ns, name).full);
        } catch {
          return false;
        }
      },
    };
    this.http = new HttpService(config, deps, this.log);
    this.metrics.storeStats = () => {
      for (const c of this.upstreams.all()) this.metrics.upstreamUp.set({ upstream: c.host }, c.health.isDown ? 0 : 1);
      const t = this.meta.totals();
      return { bytes: t.blobBytes + t.manifestBytes, blobs: t.blobs, manifests: t.manifests };
    };
    this.services = [this.store, this.upstreams, this.retention, this.hosted, this.http];
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
