/** The validated, fully defaulted configuration every other module is built from. */

export interface HostPort { host: string; port: number }

export interface UpstreamConfig {
  /** Registry host as clients and image names use it (`docker.io`, `ghcr.io`). */
  host: string;
  /** Base URL of the registry API (without `/v2`). */
  url: string;
  username?: string;
  password?: string;
  /** Extra CA bundle (PEM path) trusted for this upstream. */
  ca?: string;
  insecureSkipVerify: boolean;
  /** Dedicated listener port: every request there goes to this upstream. */
  port?: number;
  /** Per-upstream override of cache.tagTTL (ms). */
  tagTTL?: number;
  /** Glob patterns of tags trusted forever once cached. */
  immutableTags: string[];
  /**
   * Host names, addresses and CIDRs that redirect targets and token realms may use even
   * when the address policy would refuse them (loopback, link-local, private).
   */
  allowedHosts: string[];
  /** How blob GET bodies are read: regcache's socket reader (upstream/socket-get.ts) or undici. */
  blobReader: 'socket' | 'undici';
}

/** When a job (sync job or scheduled copy) runs: the keys both kinds share. */
export interface JobSchedule {
  interval: number;
  /** First run not before this time (ms since the epoch). */
  startAt?: number;
  /** Longest run (ms). */
  timeout: number;
  enabled: boolean;
  retries: number;
  /** First retry delay (ms); doubles per retry. */
  retryDelay: number;
}

/** `sync.<name>`: one sync job (docs/sync.md). */
export interface SyncJobConfig extends JobSchedule {
  name: string;
  /** As written: `host/repo` or `host/namespace/*`. */
  source: string;
  /** Comma list of Quay tag patterns. */
  tags: string;
  excludeTags?: string;
  semver?: string;
  /** `os/arch[/variant]`; empty: every platform. */
  platforms: string[];
  /** `cache`, or `hosted:<repository>`: a mirror in that hosted repository (jobs/hosted-target.ts). */
  target: 'cache' | `hosted:${string}`;
  rollback: boolean;
}

/** `copy.<name>`: one scheduled copy (docs/copy.md). */
export interface CopyJobConfig extends JobSchedule {
  name: string;
  /** Inline mapping lines (`SRC DST [DST...]` or `SRC=DST`). */
  mappings: string[];
  /** Mapping files, read at each run. */
  files: string[];
  dryRun: boolean;
  /** `os/arch[/variant]`; empty: every platform. */
  platforms: string[];
  keepManifestList: boolean;
  continueOnError: boolean;
  skipMissing: boolean;
  force: boolean;
  /** Credentials file for the registries (docker config.json format). */
  registryConfig?: string;
  /** Hosts spoken to over plain HTTP. */
  insecure: string[];
}

/** `syncLimits.<host>`: what sync jobs may ask of one upstream. */
export interface SyncLimitsConfig {
  host: string;
  concurrency: number;
  perMinute?: number;
  rateLimitFloor?: number;
}

/** `webhooks.<name>`: where job events are sent. */
export interface WebhookConfig {
  name: string;
  url: string;
  events: string[];
  /** Job names; absent: every job. */
  jobs?: string[];
  secret?: string;
  timeout: number;
  retries: number;
  retryDelay: number;
}

/** One `hostedRepositories.<pattern>` entry: repository names (glob) that accept pushes. */
export interface HostedRepositoryConfig {
  pattern: string;
  deleteManifests: boolean;
  deleteTags: boolean;
  deleteBlobs: boolean;
  /** An index may be pushed while its children are absent. */
  sparseIndex: boolean;
  /** Hosted retention (ms; all off by default): images neither pulled nor pushed for this long go. */
  maxAge?: number;
  /** Only the newest N tags stay. */
  keepTags?: number;
  /** Untagged manifests go this long after their push (ms). */
  untaggedGrace?: number;
}

export type AccessAction = 'pull' | 'push' | 'delete' | 'admin';

/** One `auth.rules` entry: these users (or `anonymous`) may do these actions on these repositories. */
export interface AccessRule {
  users: string[];
  repositories: string[];
  actions: AccessAction[];
}

export interface Config {
  listen: HostPort;
  dataDir: string;
  logLevel: string;
  logFormat: 'json' | 'pretty' | 'auto';
  tls?: { cert: string; key: string };
  cache: {
    /** How long a cached tag is trusted before revalidation (ms). */
    tagTTL: number;
    /** Largest manifest accepted from an upstream (bytes). */
    maxManifestSize: number;
    /** Most descriptors (config, layers, children) an upstream manifest may name. */
    maxManifestReferences: number;
    /** Largest tags/list answer accepted from an upstream (bytes). */
    maxTagListSize: number;
  };
  defaultUpstream?: string;
  /** In file order. */
  upstreams: UpstreamConfig[];
  retention: {
    maxAge?: number;
    maxSize?: number;
    /** Sweep interval (ms); 0 disables the periodic sweep. */
    interval: number;
  };
  metrics: { listen?: HostPort };
  hosted: {
    /** Registry names of regcache itself. */
    names: string[];
    /** Idle upload sessions are removed after this (ms). */
    uploadExpiry: number;
    maxManifestSize: number;
    /** A pushed blob no manifest references is kept this long (ms) before GC removes it. */
    gcGrace: number;
    /** How often hosted retention and GC run (ms); 0: only `regcache gc`. */
    gcInterval: number;
  };
  /** In file order: the first matching pattern decides. */
  hostedRepositories: HostedRepositoryConfig[];
  auth?: {
    htpasswd: string;
    anonymousPull: boolean;
    /** Whether /metrics needs credentials. */
    protectMetrics: boolean;
    /** Whether the admin status and page need no credentials. */
    publicStatus: boolean;
    /** Who may push, delete (and pull, beyond the defaults) where. */
    rules: AccessRule[];
  };
  catalog: {
    /** Whether callers without credentials may list /v2/_catalog (filtered to what they may pull). */
    anonymous: boolean;
  };
  upstreamTimeouts: {
    connect: number;
    headers: number;
    /** Longest pause between two body chunks from an upstream. */
    idle: number;
    /** Whole answer (headers and body, tokens included) for manifests, referrers, tag lists and tokens. */
    manifestTotal: number;
  };
  /** After this many consecutive failures an upstream is marked down ... */
  upstreamHealth: { maxFails: number; failTimeout: number };
  sync: SyncJobConfig[];
  copy: CopyJobConfig[];
  syncLimits: SyncLimitsConfig[];
  webhooks: WebhookConfig[];
  server: {
    headersTimeout: number;
    requestTimeout: number;
    keepAliveTimeout: number;
    /** A response that sends nothing to a client for this long is aborted. */
    idleTimeout: number;
    maxConnections: number;
    shutdownGrace: number;
    /** An HTTP/2 stream whose pending write makes no progress for this long is reset (ms). */
    streamStallTimeout: number;
  };
  /** Where blobs and metadata live (schema/storage.ts). */
  storage: {
    blobs: 'filesystem' | 's3';
    metadata: 'sqlite' | 'postgres';
    postgresUrl?: string;
    s3Bucket?: string;
    s3Prefix?: string;
    s3Endpoint?: string;
    s3Region: string;
    s3ForcePathStyle: boolean;
    /** Presigned redirect lifetime (ms); undefined: off. */
    s3Redirect?: number;
  };
  /** Several replicas on shared storage (schema/replicas.ts); absent: a single process. */
  replicas?: {
    listen: HostPort;
    advertise: string;
    secret: string;
    id?: string;
    evictionGrace: number;
    leaseTTL: number;
  };
}
