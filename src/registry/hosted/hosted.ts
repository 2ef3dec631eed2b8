/**
 * Hosted repositories as a service: which names are hosted (the `hostedRepositories`
 * patterns, first match wins, re-read on every reload), the one set of upload sessions, and
 * the periodic removal of abandoned sessions (`hosted.uploadExpiry`).
 */
import type { Logger } from 'pino';
import type { Config, HostedRepositoryConfig } from '../../config/types.js';
import { GlobSet } from '../../protocol/glob.js';
import { hostedTargetOf } from '../../protocol/sync-source.js';
import { NOTHING_TO_RELOAD, type ReloadResult, type Service } from '../../service.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { MetadataStore } from '../../store/metadata-store.js';
import type { Pins } from '../proxy/pins.js';
import { collectHosted, type HostedGcReport } from './hosted-gc.js';
import { HostedRepository } from './hosted-repository.js';
import { UploadSessions, type UploadCluster } from './upload-sessions.js';

export interface HostedServiceDeps {
  blobs: BlobStore;
  meta: MetadataStore;
  pins: Pins;
  log: Logger;
  now: () => number;
  /** Called with the manifests GC removed (memory caches drop them). */
  onRemoved?(manifests: string[]): void;
  /** With replicas: upload sessions move to the replica that gets their next chunk. */
  cluster?: UploadCluster;
  /** With replicas: periodic hosted retention and GC run only on the leader (once in the cluster). */
  isLeader?: () => boolean;
}

export class Hosted implements Service {
  readonly name = 'hosted';
  readonly sessions: UploadSessions;
  private patterns: GlobSet<HostedRepositoryConfig>;
  private ownNames: ReadonlySet<string>;
  private timer: NodeJS.Timeout | undefined;
  private gcTimer: NodeJS.Timeout | undefined;
  private collecting: Promise<unknown> = Promise.resolve();

  constructor(private config: Config, private readonly d: HostedServiceDeps) {
    this.sessions = new UploadSessions({ blobs: d.blobs, meta: d.meta, now: d.now, ...(d.cluster ? { cluster: d.cluster } : {}) });
    this.patterns = compile(config);
    this.ownNames = new Set(config.hosted.names);
  }

  /** regcache's own registry names (`hosted.names`). */
  get names(): ReadonlySet<string> {
    return this.ownNames;
  }

  /** The config of the first pattern matching a full repository name, if it is hosted. */
  match(fullName: string): HostedRepositoryConfig | undefined {
    return this.patterns.first(fullName)?.value;
  }

  repository(fullName: string, policy: HostedRepositoryConfig): HostedRepository {
    return new HostedRepository({
      blobs: this.d.blobs, meta: this.d.meta, sessions: this.sessions, pins: this.d.pins, now: this.d.now,
      maxManifestSize: () => this.config.hosted.maxManifestSize,
    }, fullName, policy, this.mirroredBy(fullName));
  }

  /** The sync job that keeps `fullName` as its mirror (`target: hosted:<name>`): clients may not write there. */
  mirroredBy(fullName: string): string | undefined {
    return this.config.sync.find((j) => hostedTargetOf(j) === fullName)?.name;
  }

  /** Removes upload sessions idle for longer than hosted.uploadExpiry; returns how many. */
  async expireUploads(): Promise<number> {
    const n = await this.sessions.expire(this.d.now() - this.config.hosted.uploadExpiry);
    if (n > 0) this.d.log.info({ sessions: n }, 'expired upload sessions removed');
    return n;
  }

  /** Hosted retention and GC now, serialised with any other run. */
  collect(opts: { dryRun?: boolean } = {}): Promise<HostedGcReport> {
    const run = (): Promise<HostedGcReport> => collectHosted(
      { blobs: this.d.blobs, meta: this.d.meta, pins: this.d.pins, ...(this.d.onRemoved ? { onRemoved: this.d.onRemoved } : {}) },
      this.config.hostedRepositories, this.config.hosted.gcGrace, this.d.now(), opts,
    );
    const p = this.collecting.then(run, run);
    this.collecting = p.catch(() => undefined);
    return p;
  }

  private scheduleGc(): void {
    if (this.gcTimer) clearInterval(this.gcTimer);
    this.gcTimer = undefined;
    const every = this.config.hosted.gcInterval;
    if (every <= 0) return;
    this.gcTimer = setInterval(() => {
      if (this.d.isLeader && !this.d.isLeader()) return;
      this.collect().then((r) => {
        if (r.tags.length + r.unlinked.length + r.blobs.length + r.manifests.length > 0) {
          this.d.log.info({ tags: r.tags.length, unlinked: r.unlinked.length, manifests: r.manifests.length, blobs: r.blobs.length, bytesFreed: r.bytesFreed }, 'hosted retention and gc');
        }
      }, (err: unknown) => this.d.log.warn({ err: (err as Error).message }, 'hosted gc failed'));
    }, every);
    this.gcTimer.unref();
  }

  async start(): Promise<void> {
    this.scheduleGc();
    const every = Math.min(Math.max(this.config.hosted.uploadExpiry / 4, 1000), 3_600_000);
    this.timer = setInterval(() => {
      this.expireUploads().catch((err: unknown) => this.d.log.warn({ err: (err as Error).message }, 'cannot expire upload sessions'));
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.gcTimer) clearInterval(this.gcTimer);
    this.gcTimer = undefined;
    await this.collecting;
    await this.sessions.close();
  }

  async reload(next: Config, prev: Config): Promise<ReloadResult> {
    this.config = next;
    this.patterns = compile(next);
    if (next.hosted.gcInterval !== prev.hosted.gcInterval) this.scheduleGc();
    return NOTHING_TO_RELOAD;
  }

  async status(): Promise<Record<string, unknown>> {
    return { patterns: this.config.hostedRepositories.map((p) => p.pattern) };
  }
}

function compile(config: Config): GlobSet<HostedRepositoryConfig> {
  return new GlobSet(config.hostedRepositories.map((p) => [p.pattern, p] as [string, HostedRepositoryConfig]));
}
