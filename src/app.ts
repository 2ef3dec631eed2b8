/**
 * Builds a running regcache from a Config: store, index, upstream clients, cache, handler
 * and listeners. Used by `regcache serve` and by tests in-process. Touches no process.*.
 */
import { accessSync, constants } from 'node:fs';
import type { Logger } from 'pino';
import { RegistryCache } from './cache/registry.js';
import { Pins } from './cache/pins.js';
import { Upstreams } from './cache/upstreams.js';
import type { Config } from './config/types.js';
import { Access } from './http/access.js';
import { createHandler, type HandlerDeps } from './http/handler.js';
import { closeListener, createServer, listen, type Listener } from './http/listeners.js';
import { Metrics } from './metrics/metrics.js';
import { BlobFiles } from './storage/blob-files.js';
import { IndexDb } from './storage/index-db.js';
import { layout } from './storage/layout.js';
import { recover, type RecoveryReport } from './storage/recovery.js';
import { applySweep, planSweep, type SweepPlan } from './storage/retention.js';
import { USER_AGENT } from './version.js';

export interface AppOptions {
  log: Logger;
  now?: () => number;
  defaultMetrics?: boolean;
}

/** Free space kept on the store's filesystem; fills that would eat into it stream through instead. */
const DISK_RESERVE = 256 * 1024 * 1024;

export class App {
  readonly metrics: Metrics;
  readonly index: IndexDb;
  readonly files: BlobFiles;
  readonly pins = new Pins();
  readonly upstreams: Upstreams;
  readonly registry: RegistryCache;
  readonly log: Logger;
  listeners: Listener[] = [];
  private readonly access: Access | undefined;
  recovery: RecoveryReport | undefined;
  private config: Config;
  private readonly now: () => number;
  private sweeping: Promise<unknown> = Promise.resolve();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(config: Config, opts: AppOptions) {
    this.config = config;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.metrics = new Metrics({ defaultMetrics: opts.defaultMetrics ?? true });
    const lay = layout(config.dataDir);
    this.files = new BlobFiles(lay);
    this.files.initSync();
    this.index = new IndexDb(lay.indexFile, {
      onError: (err) => this.log.warn({ err: err.message }, 'cannot record last-pull times; will retry'),
    });
    this.upstreams = new Upstreams(config.upstreams, {
      timeouts: config.upstreamTimeouts,
      health: config.upstreamHealth,
      userAgent: USER_AGENT,
      observer: this.metrics,
      now: this.now,
    });
    this.registry = new RegistryCache({
      config, index: this.index, files: this.files, pins: this.pins, metrics: this.metrics, log: this.log,
      upstreams: this.upstreams, now: this.now,
      admit: (size, inflight) => this.admit(size, inflight),
    });
    this.access = config.auth ? new Access(config.auth) : undefined;
    this.metrics.storeStats = () => {
      const st = this.index.stats();
      for (const c of this.upstreams.all()) this.metrics.upstreamUp.set({ upstream: c.host }, c.health.isDown ? 0 : 1);
      return { bytes: st.blobBytes + st.manifestBytes, blobs: st.blobs, manifests: st.manifests };
    };
  }

  get currentConfig(): Config {
    return this.config;
  }

  /**
   * Whether a fill of `size` bytes may be stored: evicts least recently pulled images first
   * when it would cross retention.maxSize; false (stream through, do not cache) when
   * nothing more can go or the disk would keep less than its reserve free, counting the
   * bytes already promised to fills in flight.
   */
  private async admit(size: number | undefined, inflight: number): Promise<boolean> {
    const max = this.config.retention.maxSize;
    if (max !== undefined && size !== undefined) {
      if (size > max) return false;
      const used = (): number => { const st = this.index.stats(); return st.blobBytes + st.manifestBytes + inflight; };
      if (used() + size > max) {
        try {
          await this.sweep({ targetSize: Math.max(0, max - size - inflight) });
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'eviction before a fill failed; streaming through');
          return false;
        }
        if (used() + size > max) return false;
      }
    }
    try {
      const { free, total } = await this.files.space();
      // Keep 256 MiB (or 5% of a small filesystem) free for the index and everything else.
      const reserve = Math.min(DISK_RESERVE, total * 0.05);
      return free - inflight - (size ?? 0) > reserve;
    } catch {
      return false;
    }
  }

  /** One retention sweep (serialised with any other); dryRun only plans. */
  sweep(opts: { dryRun?: boolean; targetSize?: number } = {}): Promise<SweepPlan> {
    const run = async (): Promise<SweepPlan> => {
      const isPinned = (d: string): boolean => this.pins.has(d);
      const plan = planSweep(this.index, this.config.retention, this.now(), isPinned, opts.targetSize);
      if (opts.dryRun || plan.units.length === 0) return plan;
      await applySweep(this.index, this.files.layout, plan, isPinned, (manifests) => this.registry.manifests.forget(manifests));
      for (const u of plan.units) this.metrics.evictions.inc({ reason: u.reason });
      this.metrics.evictedBytes.inc(plan.bytesFreed);
      this.log.info({ units: plan.units.length, bytesFreed: plan.bytesFreed, reasons: [...new Set(plan.units.map((u) => u.reason))] }, 'retention sweep');
      return plan;
    };
    const p = this.sweeping.then(run, run);
    this.sweeping = p.catch(() => undefined);
    return p;
  }

  private scheduleSweeps(): void {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    const every = this.config.retention.interval;
    if (every <= 0 || (this.config.retention.maxAge === undefined && this.config.retention.maxSize === undefined)) return;
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'retention sweep failed'));
    }, every);
    this.sweepTimer.unref();
  }

  ready(): { ok: boolean; checks: Record<string, string> } {
    const checks: Record<string, string> = {};
    let ok = true;
    try {
      accessSync(this.files.layout.tmpDir, constants.W_OK);
      checks.store = 'writable';
    } catch {
      checks.store = 'not writable';
      ok = false;
    }
    checks.index = this.index.db.open ? 'open' : 'closed';
    if (!this.index.db.open) ok = false;
    return { ok, checks };
  }

  /** Recovers the store, then binds every listener. */
  async start(): Promise<void> {
    this.recovery = await recover(this.files.layout, this.index, { repair: true });
    this.scheduleSweeps();
    const base = this.handlerBase();
    const cfg = this.config;
    const main = createServer(cfg, createHandler({ ...base, serveMetrics: cfg.metrics.listen === undefined }));
    try {
      this.listeners.push(await listen({ name: 'main', host: cfg.listen.host, port: cfg.listen.port, server: main }));
      for (const u of cfg.upstreams) {
        if (u.port === undefined) continue;
        await this.addPortListener(u.host, u.port);
      }
      if (cfg.metrics.listen) {
        const ms = createServer(cfg, createHandler({ ...base, serveMetrics: true }));
        this.listeners.push(await listen({ name: 'metrics', host: cfg.metrics.listen.host, port: cfg.metrics.listen.port, server: ms }));
      }
    } catch (err) {
      await this.stop(0);
      throw err;
    }
  }

  private handlerBase(): Omit<HandlerDeps, 'serveMetrics'> {
    const base: Omit<HandlerDeps, 'serveMetrics'> = {
      registry: this.registry, metrics: this.metrics, log: this.log,
      ready: () => this.ready(),
      defaultUpstream: () => this.config.defaultUpstream,
    };
    const access = this.access;
    if (access) base.authorize = (req, ep) => access.authorize(req, ep);
    return base;
  }

  private async addPortListener(upstream: string, port: number): Promise<void> {
    const server = createServer(this.config, createHandler({ ...this.handlerBase(), serveMetrics: false }, upstream));
    this.listeners.push(await listen({ name: `upstream ${upstream}`, host: this.config.listen.host, port, server, upstream }));
  }

  /** Applies a changed config: upstreams and their ports, tag TTLs, retention. Other keys need a restart. */
  async reload(next: Config): Promise<{ added: string[]; removed: string[]; changed: string[]; restartNeeded: string[] }> {
    const restartNeeded: string[] = [];
    const prev = this.config;
    for (const k of ['listen', 'dataDir', 'tls', 'metrics', 'server', 'auth', 'upstreamTimeouts', 'upstreamHealth', 'logLevel', 'logFormat'] as const) {
      if (JSON.stringify(prev[k]) !== JSON.stringify(next[k])) restartNeeded.push(k);
    }
    if (prev.cache.maxManifestSize !== next.cache.maxManifestSize) restartNeeded.push('cache.maxManifestSize');
    const diff = this.upstreams.update(next.upstreams);
    this.config = next;
    this.registry.setConfig(next);
    this.scheduleSweeps();
    // Per-host ports: close listeners whose upstream or port went away, open new ones.
    const wanted = new Map(next.upstreams.filter((u) => u.port !== undefined).map((u) => [u.host, u.port!]));
    const keep: Listener[] = [];
    for (const l of this.listeners) {
      if (l.upstream !== undefined && wanted.get(l.upstream) !== l.port) {
        void closeListener(l, next.server.shutdownGrace);
        continue;
      }
      keep.push(l);
    }
    this.listeners = keep;
    for (const [host, port] of wanted) {
      if (this.listeners.some((l) => l.upstream === host)) continue;
      try {
        await this.addPortListener(host, port);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'config reload: cannot open port');
      }
    }
    return { ...diff, restartNeeded };
  }

  /** Stops accepting, lets in-flight responses finish up to `graceMs`, closes the index. */
  async stop(graceMs: number): Promise<void> {
    clearInterval(this.sweepTimer);
    const ls = this.listeners;
    this.listeners = [];
    await Promise.all(ls.map((l) => closeListener(l, graceMs)));
    await this.upstreams.destroy();
    await this.sweeping;
    this.index.close();
  }

  get mainPort(): number | undefined {
    return this.listeners.find((l) => l.name === 'main')?.port;
  }
}
