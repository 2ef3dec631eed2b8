/**
 * The pull-through cache shared by every proxied repository: the blob fills, the manifest
 * and tag cache, listings, and the upstream clients. It hands out ProxyRepository objects
 * (cheap, one per request) that carry the repository's scope.
 */
import type { Logger } from 'pino';
import type { EventBus } from '../../events/event-bus.js';
import type { Config } from '../../config/types.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { FillCluster } from '../../replicas/fill-cluster.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { MetadataStore } from '../../store/metadata-store.js';
import type { RegistryClient } from '../../upstream/registry-client.js';
import type { Upstreams } from '../../upstream/upstreams.js';
import type { RepositoryName } from '../repository.js';
import type { Admission } from './admission.js';
import { BlobCache } from './blob-cache.js';
import { Listings } from './listings.js';
import { ManifestCache, type TagPolicy } from './manifest-cache.js';
import type { Pins } from './pins.js';
import { ProxyRepository } from './proxy-repository.js';
import { tagPolicy } from './tag-policy.js';

export interface ProxyDeps {
  config: Config;
  blobs: BlobStore;
  meta: MetadataStore;
  pins: Pins;
  metrics: Metrics;
  log: Logger;
  upstreams: Upstreams;
  admission: Admission;
  now: () => number;
  events?: EventBus;
  /** Replicas: fills coordinated across the cluster, tags always read from the shared store. */
  cluster?: FillCluster | undefined;
}

export class Proxy {
  readonly blobs: BlobCache;
  readonly manifests: ManifestCache;
  readonly listings: Listings;
  /** Compiled per client; a config reload makes new clients, so entries never go stale. */
  private policies = new WeakMap<object, TagPolicy>();
  private config: Config;

  constructor(private readonly d: ProxyDeps) {
    this.config = d.config;
    this.blobs = new BlobCache({
      blobs: d.blobs, meta: d.meta, pins: d.pins, metrics: d.metrics, log: d.log, admission: d.admission, now: d.now, events: d.events, cluster: d.cluster,
      redirectSeconds: d.config.storage.s3Redirect === undefined ? undefined : Math.ceil(d.config.storage.s3Redirect / 1000),
    });
    this.manifests = new ManifestCache({
      meta: d.meta, metrics: d.metrics, log: d.log, maxManifestSize: d.config.cache.maxManifestSize,
      maxManifestReferences: d.config.cache.maxManifestReferences, now: d.now, events: d.events, sharedTags: d.cluster !== undefined,
    });
    this.listings = new Listings(d.meta, d.metrics, d.config.cache.maxTagListSize);
  }

  get upstreams(): Upstreams {
    return this.d.upstreams;
  }

  setConfig(config: Config): void {
    this.config = config;
    this.policies = new WeakMap();
  }

  client(upstream: string): RegistryClient {
    return this.d.upstreams.get(upstream);
  }

  policy(client: RegistryClient): TagPolicy {
    let p = this.policies.get(client);
    if (!p) {
      p = tagPolicy(client.transport.config, this.config.cache.tagTTL);
      this.policies.set(client, p);
    }
    return p;
  }

  repository(name: RepositoryName): ProxyRepository {
    return new ProxyRepository(this, name);
  }
}
