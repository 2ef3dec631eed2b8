/**
 * MetadataStore: everything about content except its bytes: manifests with what they
 * reference and their `subject`, tags, repository links, blob sizes, batched last-pull
 * times, store totals (O(1), kept in the same transactions as the writes), eviction
 * candidates in bounded ordered batches, and a small key-value area for upload sessions
 * and job state. SQLite first (store/sqlite/); a PostgreSQL implementation implements the
 * same interface and passes the same contract suite (test/contract/metadata-store.contract.ts).
 *
 * Every method that may wait on the database returns a Promise, so an implementation can
 * move its work off the event loop (a worker, a network client) without touching callers.
 * `totals()` and `touch()` are synchronous on purpose: they read or write memory only.
 */

/**
 * The `upstream` of every hosted repository (content pushed into regcache): its `repo` is the
 * full name the hosted patterns match (`team/app`, `docker.io/myorg/app`). Cache retention
 * never evicts a manifest or blob linked under it, nor anything a hosted manifest references.
 */
export const HOSTED = 'hosted';

/** State namespace of upload sessions; each value names its spool (recovery keeps those). */
export const UPLOAD_STATE = 'uploads';

export interface UploadSessionState {
  /** Hosted repository name. */
  repo: string;
  /**
   * The spool's file name (BlobStore.openSpool). Sessions of the same content share one
   * spool (registry/hosted/shared-spools.ts): several records may name one file.
   */
  spool: string;
  /** Bytes received so far. */
  size: number;
  startedAt: number;
  /** Last request on the session (expiry counts from here). */
  activeAt: number;
  /** With replicas: the internal address of the replica whose local spool holds the bytes. */
  owner?: string;
  /** The shared spool was committed as this blob (and may be gone): the session's bytes are its first `size`. */
  committedAs?: string;
}

/** A repository as the store keys it: `<upstream or "hosted">` and the repository name there. */
export interface RepoRef {
  upstream: string;
  repo: string;
}

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  body: Buffer;
}

export interface ManifestLinks {
  /** Config and layers. */
  blobs: string[];
  /** Index children. */
  manifests: string[];
  subject?: string | undefined;
  artifactType?: string | undefined;
}

export interface TagRecord {
  digest: string;
  /** When an upstream last confirmed the tag (ms). */
  validatedAt: number;
}

export interface StoreTotals {
  blobs: number;
  blobBytes: number;
  manifests: number;
  manifestBytes: number;
}

/** A retention unit: a top-level manifest with its index children, or a loose blob. */
/** Pins seen since a moment (Pins.watch()). */
export interface PinWatch {
  /** Pinned now, or at any moment since the watch began. */
  pinned(digest: string): boolean;
  end(): void;
}

export interface EvictionUnit {
  kind: 'image' | 'blob';
  digest: string;
  /** Latest pull of any manifest of the unit (ms). */
  recency: number;
  /** Manifests that go with the unit (not those another retained index still references). */
  manifests: string[];
  /** Blobs that no manifest outside the unit references. */
  blobs: string[];
  bytes: number;
}

/** A repository with content, for the admin API's browser. */
export interface RepositorySummary {
  upstream: string;
  repo: string;
  tags: number;
  /** Bytes of the manifests and blobs linked to the repository (shared content counts in each). */
  bytes: number;
  /** Latest pull of any of its manifests (ms); undefined when none was pulled. */
  lastPull: number | undefined;
}

/** One tag of a repository with what the store knows of its manifest. */
export interface RepositoryTag {
  tag: string;
  digest: string;
  validatedAt: number;
  /** Undefined when the tag names a manifest not cached (yet). */
  mediaType: string | undefined;
  /** Cached bytes of the image: its manifest, its blobs and, for an index, its children's. */
  bytes: number;
  lastPull: number | undefined;
}

/** A manifest of one hosted repository, for hosted retention (registry/hosted/hosted-retention.ts). */
export interface HostedManifest {
  digest: string;
  size: number;
  pushedAt: number;
  pulledAt: number;
  tags: Array<{ tag: string; at: number }>;
  /** Manifests linked to the same repository that list it as a child. */
  parents: string[];
  subject?: string | undefined;
}

/** Tags and repositories naming a digest, for operators' output (gc, fsck). */
export interface DigestNames {
  digest: string;
  names: string[];
}

export interface MetadataStore {
  /** Opens and migrates; the only place with start-up I/O. */
  init(): Promise<void>;

  getManifest(digest: string): Promise<ManifestRecord | undefined>;
  /** Stores a verified manifest with what it references, linked to `repo`. */
  putManifest(rec: ManifestRecord, links: ManifestLinks, repo: RepoRef, now: number): Promise<void>;
  /** Manifests whose subject is `digest`, with their descriptors' fields. */
  referrers(subject: string): Promise<Array<{ digest: string; mediaType: string; size: number; artifactType?: string }>>;

  blobSize(digest: string): Promise<number | undefined>;
  /** Records a committed blob, linked to `repo` (the repository whose upstream served it). */
  putBlob(digest: string, size: number, repo: RepoRef | undefined, now: number): Promise<void>;
  /** Every blob row (recovery and fsck). */
  listBlobs(): AsyncIterable<{ digest: string; size: number }>;
  /** Drops blob rows (recovery: file missing or wrong size). */
  dropBlobs(digests: string[]): Promise<void>;

  getTag(repo: RepoRef, tag: string): Promise<TagRecord | undefined>;
  putTag(repo: RepoRef, tag: string, digest: string, now: number): Promise<void>;
  listTags(repo: RepoRef, last: string, n: number): Promise<string[]>;

  /** Removes one tag; false when it did not exist. */
  deleteTag(repo: RepoRef, tag: string): Promise<boolean>;
  /** Unlinks a digest from one repository (and drops that repository's tags naming it); false when it was not linked. */
  unlink(repo: RepoRef, digest: string): Promise<boolean>;
  link(repo: RepoRef, digest: string): Promise<void>;
  isLinked(repo: RepoRef, digest: string): Promise<boolean>;
  /** Repositories with manifests, as `<upstream>/<repo>`, after `last`, at most n; optionally under one upstream. */
  catalog(last: string, n: number, upstream?: string): Promise<string[]>;

  /**
   * Repositories with manifests, ordered by `<upstream>/<repo>`, after `after`, whose name
   * contains `query` (case-insensitive); at most `limit`.
   */
  listRepositories(opts: { query?: string; after?: string; limit: number }): Promise<RepositorySummary[]>;
  /** The tags of one repository after `last`, ordered by tag, at most n. */
  repositoryTags(repo: RepoRef, last: string, n: number): Promise<RepositoryTag[]>;
  /** Drops one tag (admin "forget"); its content stays until retention. False when there was none. */
  deleteTag(repo: RepoRef, tag: string): Promise<boolean>;

  /** Records a pull (memory); written in the next batch. */
  touch(digest: string, now: number): void;
  /** Writes the batched pull times now. */
  flush(): Promise<void>;
  /**
   * The time of a pull of `digest` recorded in memory and not yet written (touch() since the
   * last flush, or in a flush still being written), else undefined. Retention sweeps judge
   * units by it instead of flushing before each batch (eviction.ts).
   */
  unflushedPull(digest: string): number | undefined;

  /** Current totals, from memory: O(1). */
  totals(): StoreTotals;
  /**
   * The least recently pulled units, oldest first (never hosted content, see HOSTED), with recency < `before` and after the
   * cursor (recency, digest); at most `limit`. Ordered by the written pull times: pulls not yet flushed are not seen
   * (unflushedPull() tells them; a sweep judges those units by it).
   */
  evictionCandidates(opts: { before: number; limit: number; after?: { recency: number; digest: string } }): Promise<EvictionUnit[]>;
  /**
   * Removes the rows of evicted units (manifests, their references, tags, links, blobs),
   * skipping blobs for which `keep` is true; returns the blobs removed. The manifests go in
   * one transaction; the blobs may follow in several (SQLite: a few per transaction, so the
   * event loop is never held long), and a blob a manifest references again by then stays.
   * A unit whose top-level manifest (or, for a loose blob, the blob) has a pull written since
   * it was planned (a last pull time later than the unit's `recency`) stays, with all it holds.
   * Interrupted between the two, the blobs are loose rows a later sweep removes. `kept` is told
   * the digest of each unit that stayed (its top-level manifest or loose blob was not removed,
   * for whatever reason), so a sweep reports only what went. A store that removes blob rows
   * away from the caller's thread (SQLite's index worker) asks `keep` when it sends them and,
   * with `watchPins`, puts back (row and repository links) each blob pinned at any moment
   * until they were gone: a pull or push that read the row in between goes on with it.
   */
  removeUnits(units: EvictionUnit[], keep: (digest: string) => boolean, kept?: (unit: string) => void, watchPins?: () => PinWatch): Promise<string[]>;
  /** The manifests linked to hosted repository `repo`, with their tags and in-repository parents. */
  hostedManifests(repo: string): Promise<HostedManifest[]>;
  /**
   * Garbage: blobs linked to a hosted repository that no manifest references, last pushed
   * (or pulled) before `before`; and manifests no repository links and no index lists.
   * At most `limit` of each.
   */
  garbage(before: number, limit: number): Promise<{ blobs: Array<{ digest: string; size: number; repos: string[] }>; manifests: Array<{ digest: string; size: number }> }>;
  /**
   * Removes garbage rows in one transaction, re-checking each condition inside it: a
   * manifest only while no repository links it and no index lists it; a blob only while no
   * manifest references it, it was not pushed or pulled since `before`, and `keep` is false
   * (pinned: a manifest PUT checking it). Returns what was removed.
   */
  removeGarbage(blobs: string[], manifests: string[], before: number, keep: (digest: string) => boolean): Promise<{ blobs: string[]; manifests: string[] }>;
  /** Tags and repositories that name each digest (operators' output). */
  namesOf(digests: string[]): Promise<DigestNames[]>;

  /** Small JSON state (upload sessions, job state) under a namespace. */
  getState<T>(ns: string, key: string): Promise<T | undefined>;
  putState(ns: string, key: string, value: unknown): Promise<void>;
  deleteState(ns: string, key: string): Promise<void>;
  listState<T>(ns: string): Promise<Array<{ key: string; value: T }>>;

  /** Whether the store answers (readiness). */
  healthy(): boolean;
  close(): Promise<void>;
}
