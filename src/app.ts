/**
 * The composition root: builds a running regcache from a Config as a list of services
 * (stores, upstreams, retention, listeners), starts them in order and stops them in
 * reverse. Policy lives in the services and the registry, not here. Touches no process.*
 * and does no I/O before start().
 */
import type { Logger } from 'pino';
import { restartNeededKeys } from './config/reload.js';
import type { Config } from './config/types.js';
import { EventBus } from './events/event-bus.js';
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
import type { JobControl } from './jobs/job-control.js';
import { ReplicaService } from './replicas/replica-service.js';
import type { Service } from './service.js';
import { AdminService } from './status/admin-service.js';
import type { SweepOptions, SweepPlan } from './store/eviction.js';
import { createStores } from './store/backends.js';
import type { BlobStore } from './store/blob-store.js';
import type { MetadataStore } from './store/metadata-store.js';
import { PostgresMetadataStore } from './store/postgres/postgres-metadata-store.js';
import { RetentionService, SERVER_PACE } from './store/retention-service.js';
import type { RecoveryReport } from './store/recovery.js';
import { StoreService } from './store/store-service.js';
import { SyncService } from './jobs/sync-service.js';
import { Upstreams } from './upstream/upstreams.js';
import { USER_AGENT, VERSION } from './version.js';

export interface AppOptions {
  log: Logger;
  /** The sync and copy jobs, when their service runs: the admin API and page show and drive them. */
  jobs?: JobControl;
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
  readonly hosted: Hosted;
  readonly store: StoreService;
  readonly retention: RetentionService;
  readonly http: HttpService;
  /** Upstream up/down, evictions, digest mismatches (and sync/copy runs): the admin API's events. */
  readonly events: EventBus;
  readonly admin: AdminService;
  readonly sync: SyncService;
  /** Present when this process is one replica of a cluster (config `replicas`). */
  readonly replicas: ReplicaService | undefined;
  private readonly services: Service[];
  /** Access control (reads the htpasswd file at start). */
  private access: Access | undefined;
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
    this.events = new EventBus(1000, now);
    const stores = createStores(config, (err) => this.log.warn({ err: err.message }, 'metadata store write failed; will retry'));
    this.blobs = stores.blobs;
    this.meta = stores.meta;
    this.store = new StoreService(this.blobs, this.meta, now, { shared: stores.shared });
    this.upstreams = new Upstreams({
      timeouts: config.upstreamTimeouts, health: config.upstreamHealth, userAgent: USER_AGENT, now,
      observer: {
        request: (upstream, method, status, seconds) => this.metrics.request(upstream, method, status, seconds),
        failed: (upstream, cause, message) => this.log.warn({ upstream, cause, err: message }, 'upstream request failed'),
        health: (upstream, state, cause) => {
          this.metrics.upstreamUp.set({ upstream }, state === 'down' ? 0 : 1);
          if (state === 'down') this.log.warn({ upstream, cause }, 'upstream marked down: failing fast until it answers again');
          else this.log.info({ upstream }, 'upstream is up again');
          this.events.emit(state === 'down' ? 'upstream.down' : 'upstream.up', state === 'up' ? { upstream } : { upstream, cause }, upstream);
        },
      },
    }, config.upstreams);
    if (config.replicas) {
      // validate.ts guarantees storage.metadata is postgres when replicas is set.
      if (!(this.meta instanceof PostgresMetadataStore)) throw new Error('replicas need storage.metadata: postgres');
      const meta = this.meta;
      this.replicas = new ReplicaService(config.replicas, {
        pool: meta.pool, liveFill: (d) => this.proxy.blobs.liveFill(d), log: this.log, blobs: this.blobs,
        inUse: async (d) => this.pins.has(d) || this.proxy.blobs.isFilling(d) || (await meta.blobSize(d)) !== undefined,
        uploadBytes: (id) => this.hosted.sessions.bytesOf(id),
      });
    }
    const replicas = this.replicas;
    this.retention = new RetentionService(config, {
      blobs: replicas?.deletes ?? this.blobs, meta: this.meta,
      isPinned: (d) => this.pins.has(d) || this.proxy.blobs.isFilling(d),
      watchPins: () => this.pins.watch(),
      markDeleting: (d) => {
        this.pins.markDeleting(d);
        return () => this.pins.unmarkDeleting(d);
      },
      isHeld: (d) => this.sync.holds(d),
      onRemoved: (manifests) => this.proxy.manifests.forget(manifests),
    }, this.log, {
      removed: (units) => {
        for (const u of units) {
          this.metrics.evictions.inc({ reason: u.reason });
          this.metrics.evictedBytes.inc(u.bytes);
        }
      },
      evicted: (plan: SweepPlan) => {
        const { units, age, size } = plan.counts;
        if (units > 0) this.events.emit('retention.evicted', { units, bytesFreed: plan.bytesFreed, reasons: { age, size } });
      },
    }, now, () => replicas?.isLeader() ?? true);
    const admission = new Admission({
      used: () => { const t = this.meta.totals(); return t.blobBytes + t.manifestBytes; },
      maxSize: () => this.config.retention.maxSize,
      disk: () => this.blobs.space(),
      evict: (targetSize, progress) => this.retention.sweep({ targetSize, onUnits: progress, summaryOnly: true, pace: SERVER_PACE }).catch((err: unknown) => {
        this.log.error({ err: (err as Error).message }, 'retention sweep started by admission failed');
      }),
    });
    this.proxy = new Proxy({
      config, blobs: this.blobs, meta: this.meta, pins: this.pins, metrics: this.metrics, log: this.log,
      upstreams: this.upstreams, admission, now, events: this.events, cluster: replicas?.fills,
    });
    this.sync = new SyncService(config, { meta: this.meta, proxy: this.proxy, events: this.events, metrics: this.metrics, log: this.log, now, ...(replicas ? { leader: replicas } : {}) });
    this.hosted = new Hosted(config, {
      blobs: this.blobs, meta: this.meta, pins: this.pins, log: this.log, now,
      onRemoved: (manifests) => this.proxy.manifests.forget(manifests),
      ...(replicas ? { cluster: replicas.uploads, isLeader: () => replicas.isLeader() } : {}),
    });
    this.namespace = new Namespace(this.proxy, () => this.config.defaultUpstream, this.hosted);
    this.admin = new AdminService({
      version: VERSION, startedAt: now(), now, meta: this.meta, proxy: this.proxy, upstreams: this.upstreams,
      metrics: this.metrics, events: this.events, jobs: opts.jobs ?? this.sync, maxSize: () => this.config.retention.maxSize,
    });
    const namespace = this.namespace;
    const deps: HttpDeps = {
      namespace, metrics: this.metrics, log: this.log,
      ready: () => this.ready(),
      catalog: (last, n, upstream) => catalogPage(this.meta, last, n, upstream),
      admin: this.admin,
      jobs: this.sync,
      authorize: (req, r) => {
        const name = 'name' in r.endpoint ? r.endpoint.name : undefined;
        // Placed only when a rule needs the repository: an open pull (the hot path) never is.
        const place = (): { name: string; hosted: boolean } | undefined => {
          if (name === undefined) return undefined;
          try {
            const p = namespace.place(r.listener, r.ns, name);
            return { name: p.full, hosted: p.kind !== 'proxy' };
          } catch {
            return undefined; // the route answers the naming error
          }
        };
        return this.access!.authorize(req, r.endpoint, r.method, place);
      },
      canPull: async (req, listener, ns, name) => {
        const id = await this.access!.identify(req);
        if ('refused' in id) return false;
        try {
          return this.access!.mayPull(id.user, namespace.place(listener, ns, name).full);
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
    if (replicas) this.metrics.replicaStats = () => ({ leader: replicas.isLeader(), fillLeases: replicas.fills.holding });
    this.metrics.storeMaxSize = () => this.config.retention.maxSize;
    this.metrics.declare(config.upstreams.map((u) => u.host));
    this.services = [this.store, this.upstreams, ...(replicas ? [replicas] : []), this.retention, this.hosted, this.sync, this.http];
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
    // Reads the htpasswd file. Without `auth` there are no users: pulls are open and nobody may write.
    const c = this.config;
    this.access = new Access(c.auth
      ? { ...c.auth, anonymousCatalog: c.catalog.anonymous }
      : { anonymousPull: true, protectMetrics: false, rules: [], anonymousCatalog: c.catalog.anonymous });
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
    this.metrics.declare(next.upstreams.map((u) => u.host));
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
    // Live event streams would otherwise hold the listeners open for the whole grace.
    this.admin.close();
    const until = performance.now() + graceMs;
    for (const s of [...this.services].reverse()) {
      await s.stop(graceMs);
      // Responses are over, but a fill verified for its last client may still be
      // committing (rename, index row): let it land before the upstreams and the stores
      // close, or its blob is lost (issue 10, item 7). The store then drains its writes.
      if (s === this.http) await this.proxy.blobs.idleWithin(Math.max(0, until - performance.now()));
    }
  }
}
