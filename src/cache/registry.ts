/**
 * The cache facade the HTTP layer talks to: the only place that holds both the upstream
 * clients and the store. Everything is built from config by createApp (src/app.ts).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Metrics } from '../metrics/metrics.js';
import type { BlobFiles } from '../storage/blob-files.js';
import type { IndexDb } from '../storage/index-db.js';
import { BlobCache, type AdmitFn, type BlobAnswer } from './blob-cache.js';
import { referrers, tagsList, type ListingAnswer } from './listings.js';
import { ManifestCache, type ManifestAnswer, type TagPolicy } from './manifest-cache.js';
import type { Pins } from './pins.js';
import type { Scope } from './scope.js';
import { tagPolicy } from './tag-policy.js';
import type { Upstreams } from './upstreams.js';

export interface RegistryDeps {
  config: Config;
  index: IndexDb;
  files: BlobFiles;
  pins: Pins;
  metrics: Metrics;
  log: Logger;
  upstreams: Upstreams;
  admit: AdmitFn;
  now: () => number;
}

export class RegistryCache {
  readonly blobs: BlobCache;
  readonly manifests: ManifestCache;
  /** Compiled per client; a config reload makes new clients, so entries never go stale. */
  private policies = new WeakMap<object, TagPolicy>();

  constructor(private readonly d: RegistryDeps) {
    this.blobs = new BlobCache({ index: d.index, files: d.files, pins: d.pins, metrics: d.metrics, log: d.log, admit: d.admit, now: d.now });
    this.manifests = new ManifestCache({ index: d.index, metrics: d.metrics, log: d.log, maxManifestSize: d.config.cache.maxManifestSize, now: d.now });
  }

  get hosts(): ReadonlySet<string> {
    return this.d.upstreams.hosts;
  }

  setConfig(config: Config): void {
    this.d.config = config;
    this.policies = new WeakMap();
  }

  manifest(scope: Scope, reference: string, isDigest: boolean, method: 'GET' | 'HEAD', acceptHeader: string | undefined, accepted: string[]): Promise<ManifestAnswer> {
    const client = this.d.upstreams.get(scope.upstream);
    let policy = this.policies.get(client);
    if (!policy) {
      policy = tagPolicy(client.config, this.d.config.cache.tagTTL);
      this.policies.set(client, policy);
    }
    return this.manifests.get(client, { scope, reference, isDigest, method, accepted, acceptHeader, policy });
  }

  blob(scope: Scope, digest: string, method: 'GET' | 'HEAD', range: string | undefined): Promise<BlobAnswer> {
    return this.blobs.get(this.d.upstreams.get(scope.upstream), scope, digest, method, range);
  }

  tags(scope: Scope, clientName: string, n: number | undefined, last: string | undefined): Promise<ListingAnswer> {
    return tagsList(this.d.upstreams.get(scope.upstream), this.d.index, this.d.metrics, scope, clientName, n, last);
  }

  referrers(scope: Scope, digest: string, artifactType: string | undefined): Promise<ListingAnswer> {
    return referrers(this.d.upstreams.get(scope.upstream), scope, digest, artifactType);
  }

  /** Repositories with cached manifests, as `<upstream>/<repo>`. */
  catalog(n: number, last: string | undefined): string[] {
    return this.d.index.catalog(last ?? '', n);
  }
}
