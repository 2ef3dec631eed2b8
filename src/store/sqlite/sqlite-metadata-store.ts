/**
 * The SQLite MetadataStore (better-sqlite3, WAL). Statements are prepared once. Last-pull
 * times are batched in memory and written in one transaction per interval; a pull of an
 * index child also refreshes its parents, so a retention unit's recency is its top-level
 * manifest's. Totals live in a one-row table kept by triggers in the same transaction as
 * every insert and delete, and mirrored in memory after each write.
 *
 * No database wait ever blocks the event loop: after start-up the connection runs with
 * busy_timeout 0, and a write that finds the database locked by another process is queued
 * (write-queue.ts) and retried off the request path. Until it lands, reads of what it wrote
 * (manifest, blob size, tag, link, state) are answered from the in-memory overlay below, so
 * pulls go on from what is known; listings (tags, catalog, referrers) show it once written.
 */
import Database from 'better-sqlite3';
import { OciError } from '../../protocol/errors.js';
import {
  HOSTED, UPLOAD_STATE,
  type DigestNames, type EvictionUnit, type HostedManifest, type ManifestLinks, type ManifestRecord, type MetadataStore, type PinWatch, type RepoRef,
  type RepositorySummary, type RepositoryTag, type StoreTotals, type TagRecord,
} from '../metadata-store.js';
import { oldestFirst } from '../eviction-order.js';
import { digestId, digestKey, digestText } from './digest-sql.js';
import { indexOps, OPS_SQL, type IndexOps, type RemovedBlob } from './index-ops.js';
import { IndexWorker } from './index-worker.js';
import { MIGRATIONS } from './schema.js';
import { WriteGate } from './write-gate.js';
import { WriteQueue, isLocked, type QueuedWrite } from './write-queue.js';

type Stmt = Database.Statement;

export interface SqliteOptions {
  touchFlushMs?: number;
  /** Reports a failed batch write (the batch is kept and retried) or a dropped queued write. */
  onError?: (err: Error) => void;
  /** On close, how long queued writes are retried before they are given up (default 10 s). */
  closeDrainMs?: number;
  /** Busy timeout while opening and migrating (default 5 s); 0 afterwards. */
  openBusyTimeoutMs?: number;
  /** WAL checkpoint interval of the worker thread (default 1 s); 0: SQLite's automatic checkpoints in commits. */
  checkpointMs?: number;
  /** How long a durable write waits for another process's lock before its caller gets 503 (default 10 s). */
  durableWaitMs?: number;
}

/** Writes accepted but not yet in the database (the database is locked elsewhere). */
interface Overlay {
  manifests: Map<string, ManifestRecord>;
  blobs: Map<string, number>;
  tags: Map<string, TagRecord>;
  links: Set<string>;
  /** undefined: deleted. */
  state: Map<string, string | undefined>;
}

/**
 * Blob rows deleted per transaction by removeUnits(). Most of a removal's cost is the commit
 * writing the B-tree pages its random digests touch: at 300k blobs an image of 15 layers in
 * one transaction held the event loop for 5-11 ms in bench scenario 8 (a saturated machine;
 * 1.2 ms on an idle one), and the warm-hit p99 went from 21-25 ms to 14-16 ms with this.
 */
const BLOB_ROWS_PER_WRITE = 4;
/** The same on the index worker: its transactions cost the event loop nothing; a main-thread write waits for one at most. */
const BLOB_ROWS_PER_WORKER_WRITE = 16;

/**
 * Pull times written per transaction by flush(). Each costs ~50-80 µs at 300k blobs (three
 * statements on random pages, the recency index too): 1,000 in one transaction held the
 * event loop for ~20 ms in bench scenario 8, 100 hold it for a few.
 */
const TOUCH_BATCH = 100;

/**
 * How long a durable write (submit()) waits while another process holds the index locked
 * (`sqlite3 .backup` of a large index takes seconds) before its client is answered 503.
 */
const DURABLE_WAIT_MS = 10_000;

/** Another process holds the index locked past what a client's request waits: retry. */
function indexBusy(): OciError {
  return new OciError('UNAVAILABLE', 'the index is locked by another process (a backup?); nothing was acknowledged, retry', undefined, { headers: { 'retry-after': '5' } });
}

const repoKey = (r: RepoRef, x: string): string => `${r.upstream}\0${r.repo}\0${x}`;

/** manifest_refs.kind */
const BLOB = 0;
const MANIFEST = 1;

const STATEMENTS = {
  getManifest: 'SELECT digest, media_type AS mediaType, size, body FROM manifests WHERE digest = ?',
  putManifest: `INSERT INTO manifests (digest, media_type, size, body, created_at, last_pulled_at, subject, artifact_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(digest) DO UPDATE SET last_pulled_at = excluded.last_pulled_at`,
  // A manifest's references in two statements, whatever their number: the digests (a JSON
  // array) are interned, then the references inserted in id order (appended, not scattered).
  internDigests: `INSERT INTO digest_ids (digest) SELECT ${digestKey('value')} FROM json_each(?) WHERE true ORDER BY 1
                  ON CONFLICT (digest) DO NOTHING`,
  putRefs: `INSERT OR IGNORE INTO manifest_refs (manifest_id, child_id, kind)
            SELECT ${digestId('?')}, d.id, ? FROM json_each(?) j JOIN digest_ids d ON d.digest = ${digestKey('j.value')} ORDER BY d.id`,
  referrers: 'SELECT digest, media_type AS mediaType, size, artifact_type AS artifactType FROM manifests WHERE subject = ? ORDER BY digest',
  getBlob: 'SELECT size FROM blobs WHERE digest = ?',
  putBlob: `INSERT INTO blobs (digest, size, created_at, last_pulled_at) VALUES (?, ?, ?, ?)
            ON CONFLICT(digest) DO UPDATE SET last_pulled_at = excluded.last_pulled_at`,
  listBlobs: 'SELECT digest, size FROM blobs',
  delBlob: 'DELETE FROM blobs WHERE digest = ?',
  getTag: 'SELECT digest, validated_at AS validatedAt FROM tags WHERE upstream = ? AND repo = ? AND tag = ?',
  putTag: `INSERT INTO tags (upstream, repo, tag, digest, validated_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(upstream, repo, tag) DO UPDATE SET digest = excluded.digest, validated_at = excluded.validated_at`,
  listTags: 'SELECT tag FROM tags WHERE upstream = ? AND repo = ? AND tag > ? ORDER BY tag LIMIT ?',
  link: 'INSERT OR IGNORE INTO repo_links (upstream, repo, digest) VALUES (?, ?, ?)',
  isLinked: 'SELECT 1 FROM repo_links WHERE upstream = ? AND repo = ? AND digest = ?',
  catalog: `SELECT DISTINCT l.upstream || '/' || l.repo AS name FROM repo_links l
            JOIN manifests m ON m.digest = l.digest WHERE name > ? ORDER BY name LIMIT ?`,
  catalogOf: `SELECT DISTINCT l.upstream || '/' || l.repo AS name FROM repo_links l
              JOIN manifests m ON m.digest = l.digest WHERE l.upstream = ? AND name > ? ORDER BY name LIMIT ?`,
  listRepositories: `SELECT r.upstream, r.repo,
                (SELECT count(*) FROM tags t WHERE t.upstream = r.upstream AND t.repo = r.repo) AS tags,
                (SELECT coalesce(sum(coalesce(b.size, m.size, 0)), 0) FROM repo_links l
                   LEFT JOIN blobs b ON b.digest = l.digest LEFT JOIN manifests m ON m.digest = l.digest
                   WHERE l.upstream = r.upstream AND l.repo = r.repo) AS bytes,
                (SELECT max(m.last_pulled_at) FROM repo_links l JOIN manifests m ON m.digest = l.digest
                   WHERE l.upstream = r.upstream AND l.repo = r.repo) AS lastPull
              FROM (SELECT DISTINCT l.upstream, l.repo FROM repo_links l JOIN manifests m ON m.digest = l.digest) r
              WHERE r.upstream || '/' || r.repo > ? AND instr(lower(r.upstream || '/' || r.repo), lower(?)) > 0
              ORDER BY r.upstream || '/' || r.repo LIMIT ?`,
  repositoryTags: `SELECT t.tag, t.digest, t.validated_at AS validatedAt, m.media_type AS mediaType, m.last_pulled_at AS lastPull,
                     coalesce(m.size, 0) + (SELECT coalesce(sum(coalesce(b.size, c.size, 0)), 0) FROM manifest_refs r
                       JOIN digest_ids rd ON rd.id = r.child_id
                       LEFT JOIN blobs b ON b.digest = ${digestText('rd.digest')} LEFT JOIN manifests c ON c.digest = ${digestText('rd.digest')}
                       WHERE r.manifest_id = td.id
                          OR r.manifest_id IN (SELECT child_id FROM manifest_refs WHERE manifest_id = td.id AND kind = ${MANIFEST})) AS bytes
                   FROM tags t LEFT JOIN manifests m ON m.digest = t.digest LEFT JOIN digest_ids td ON td.digest = ${digestKey('t.digest')}
                   WHERE t.upstream = ? AND t.repo = ? AND t.tag > ? ORDER BY t.tag LIMIT ?`,
  delTag: 'DELETE FROM tags WHERE upstream = ? AND repo = ? AND tag = ?',
  totals: 'SELECT blobs, blob_bytes AS blobBytes, manifests, manifest_bytes AS manifestBytes FROM totals WHERE id = 1',
  delRefs: OPS_SQL.delRefs,
  delTags: OPS_SQL.delTags,
  delLinks: OPS_SQL.delLinks,
  restoreBlob: 'INSERT INTO blobs (digest, size, created_at, last_pulled_at) VALUES (?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING',
  tagsOf: `SELECT upstream || '/' || repo || ':' || tag AS name FROM tags WHERE digest = ? ORDER BY name`,
  reposOf: `SELECT upstream || '/' || repo AS name FROM repo_links WHERE digest = ? ORDER BY name`,
  unlink: 'DELETE FROM repo_links WHERE upstream = ? AND repo = ? AND digest = ?',
  delRepoTagsOf: 'DELETE FROM tags WHERE upstream = ? AND repo = ? AND digest = ?',
  hostedManifests: `SELECT m.digest, m.size, m.created_at AS pushedAt, m.last_pulled_at AS pulledAt, m.subject FROM repo_links l
                    JOIN manifests m ON m.digest = l.digest WHERE l.upstream = 'hosted' AND l.repo = ? ORDER BY m.digest`,
  hostedTags: "SELECT tag, digest, validated_at AS at FROM tags WHERE upstream = 'hosted' AND repo = ?",
  hostedParents: `SELECT l.digest AS manifest, ${digestText('c.digest')} AS child FROM repo_links l
                  JOIN digest_ids p ON p.digest = ${digestKey('l.digest')} JOIN manifest_refs r ON r.manifest_id = p.id AND r.kind = ${MANIFEST}
                  JOIN digest_ids c ON c.id = r.child_id WHERE l.upstream = 'hosted' AND l.repo = ?`,
  garbageBlobs: `SELECT b.digest, b.size FROM blobs b WHERE b.refs = 0 AND b.last_pulled_at < ?
                   AND EXISTS (SELECT 1 FROM repo_links h WHERE h.upstream = 'hosted' AND h.digest = b.digest) LIMIT ?`,
  garbageManifests: `SELECT m.digest, m.size FROM manifests m WHERE m.parents = 0
                       AND NOT EXISTS (SELECT 1 FROM repo_links l WHERE l.digest = m.digest) LIMIT ?`,
  delGarbageManifest: `DELETE FROM manifests WHERE digest = ? AND parents = 0
                       AND NOT EXISTS (SELECT 1 FROM repo_links l WHERE l.digest = manifests.digest)`,
  delGarbageBlob: 'DELETE FROM blobs WHERE digest = ? AND refs = 0 AND last_pulled_at < ?',
  hostedReposOf: "SELECT repo FROM repo_links WHERE upstream = 'hosted' AND digest = ? ORDER BY repo",
  getState: 'SELECT value FROM state WHERE ns = ? AND key = ?',
  putState: 'INSERT INTO state (ns, key, value) VALUES (?, ?, ?) ON CONFLICT(ns, key) DO UPDATE SET value = excluded.value',
  delState: 'DELETE FROM state WHERE ns = ? AND key = ?',
  listState: 'SELECT key, value FROM state WHERE ns = ? ORDER BY key',
} as const;

export class SqliteMetadataStore implements MetadataStore {
  private db: Database.Database | undefined;
  private s!: Record<keyof typeof STATEMENTS, Stmt>;
  private readonly pendingTouches = new Map<string, number>();
  /** Pull times the flush in progress has taken and not all written yet (unflushedPull() still reports them). */
  private readonly flushing = new Map<string, number>();
  private flushRun: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  /** The index worker (index-worker.ts): checkpoints, eviction and pull-time writes off the event loop. */
  private worker: IndexWorker | undefined;
  /** The same operations on this connection, when there is no worker. */
  private local!: IndexOps;
  private readonly gate: WriteGate;
  private current: StoreTotals = { blobs: 0, blobBytes: 0, manifests: 0, manifestBytes: 0 };
  private readonly overlay: Overlay = { manifests: new Map(), blobs: new Map(), tags: new Map(), links: new Set(), state: new Map() };
  private readonly writes: WriteQueue;

  constructor(private readonly file: string, private readonly opts: SqliteOptions = {}) {
    this.gate = new WriteGate(() => this.writes.kick());
    this.writes = new WriteQueue({
      gate: this.gate,
      onDropped: (what, err) => this.opts.onError?.(new Error(`index write dropped (${what}): ${err.message}`)),
      onDrained: () => {
        const o = this.overlay;
        o.manifests.clear();
        o.blobs.clear();
        o.tags.clear();
        o.links.clear();
        o.state.clear();
      },
    });
  }

  /**
   * Runs `apply` now, or queues it when the database is locked and records it in the overlay.
   * A cache write resolves at once either way: losing it to a crash costs a fetch (recovery
   * adopts the blob file); so does job state (a run interrupted is run again). A `durable`
   * write (hosted rows, upload sessions: what a client is told 201 or 202 for) resolves only
   * once it is committed, so a crash after the answer loses
   * nothing: it waits for the store's own worker (milliseconds), and for a lock held by
   * another process (a backup) at most DURABLE_WAIT_MS, then fails 503 UNAVAILABLE. It stays
   * queued and may still land: the client's retry of the same push is idempotent.
   */
  private submit(what: string, apply: () => void, remember: (o: Overlay) => void, durable = false): Promise<void> {
    const w: QueuedWrite = { what, apply };
    if (!durable) {
      if (this.writes.submit(w) === 'queued') remember(this.overlay);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      // Settled once by the queue; after a 503 a late settle changes nothing.
      w.settle = (err) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      if (this.writes.submit(w) === 'written') return resolve();
      remember(this.overlay);
      timer = setTimeout(() => reject(indexBusy()), this.opts.durableWaitMs ?? DURABLE_WAIT_MS);
    });
  }

  /** Writes waiting for a lock held elsewhere, or for the index worker's transaction (status, tests). */
  get queuedWrites(): number {
    return this.writes.size;
  }

  /** Whether eviction and pull-time writes run on the index worker now (not on the event loop). */
  get offloaded(): boolean {
    return this.worker?.alive === true;
  }

  async init(): Promise<void> {
    const db = new Database(this.file);
    this.db = db;
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma(`busy_timeout = ${this.opts.openBusyTimeoutMs ?? 5000}`);
    db.pragma('foreign_keys = OFF');
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]!);
        db.pragma(`user_version = ${v + 1}`);
      })();
    }
    if (version > 0 && version < MIGRATIONS.length) this.compactAfterMigration(db);
    // Statement journals (a DELETE that fires triggers inside a transaction keeps one) in
    // memory, not in a temporary file: an eviction batch removes ~30% faster. Set after the
    // VACUUM above, whose transient copy of the whole index must stay a file.
    db.pragma('temp_store = MEMORY');
    const s = {} as Record<keyof typeof STATEMENTS, Stmt>;
    for (const [k, sql] of Object.entries(STATEMENTS)) s[k as keyof typeof STATEMENTS] = db.prepare(sql);
    this.s = s;
    this.refreshTotals();
    // From now on a lock held elsewhere is answered at once (SQLITE_BUSY), never waited for
    // on the event loop: writes queue (write-queue.ts), reads in WAL mode are not blocked.
    db.pragma('busy_timeout = 0');
    this.local = indexOps(db, OPS_SQL, oldestFirst);
    if (this.file !== ':memory:' && this.opts.checkpointMs !== 0) {
      // Checkpoints, eviction and pull-time writes on a worker thread (index-worker.ts).
      db.pragma('wal_autocheckpoint = 0');
      const worker = new IndexWorker(this.file, {
        checkpointMs: this.opts.checkpointMs ?? 1000, gate: this.gate,
        onFailure: (err) => {
          this.opts.onError?.(err);
          // The WAL is checkpointed by the commits again (the work itself goes on here when the worker is gone).
          if (this.db?.open) this.db.pragma('wal_autocheckpoint = 1000');
        },
      });
      worker.start();
      this.worker = worker;
    }
    this.flushTimer = setInterval(() => void this.flush(), this.opts.touchFlushMs ?? 1000);
    this.flushTimer.unref();
  }

  /**
   * A migration that rewrote a table (v3: references) leaves its old pages free inside the
   * file: when they are more than a quarter of it, the file is rewritten once (VACUUM, about
   * 3 s for 400 MB), so an index of 405 MB with 300 MB free becomes 97 MB. A failure (no room
   * for the copy) is reported and start-up goes on: the free pages are reused by new rows.
   */
  private compactAfterMigration(db: Database.Database): void {
    const free = db.pragma('freelist_count', { simple: true }) as number;
    const pages = db.pragma('page_count', { simple: true }) as number;
    if (free * 4 <= pages) return;
    try {
      db.exec('VACUUM');
      db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      this.opts.onError?.(new Error(`index not compacted after its migration: ${(err as Error).message}`));
    }
  }

  private get conn(): Database.Database {
    if (!this.db?.open) throw new Error('metadata store is closed');
    return this.db;
  }

  private refreshTotals(): void {
    this.current = this.s.totals.get() as StoreTotals;
  }

  /** Runs a write transaction, then mirrors the totals it changed. */
  private write<T>(fn: () => T): T {
    const out = this.conn.transaction(fn)();
    this.refreshTotals();
    return out;
  }

  async getManifest(digest: string): Promise<ManifestRecord | undefined> {
    return this.overlay.manifests.get(digest) ?? this.s.getManifest.get(digest) as ManifestRecord | undefined;
  }

  async putManifest(rec: ManifestRecord, links: ManifestLinks, repo: RepoRef, now: number): Promise<void> {
    return this.submit(`manifest ${rec.digest}`, () => this.write(() => {
      this.s.putManifest.run(rec.digest, rec.mediaType, rec.size, rec.body, now, now, links.subject ?? null, links.artifactType ?? null);
      if (links.blobs.length + links.manifests.length > 0) {
        this.s.internDigests.run(JSON.stringify([rec.digest, ...links.blobs, ...links.manifests]));
        // Blobs first: a digest named both ways is a blob reference, as the first one wins.
        if (links.blobs.length) this.s.putRefs.run(rec.digest, BLOB, JSON.stringify(links.blobs));
        if (links.manifests.length) this.s.putRefs.run(rec.digest, MANIFEST, JSON.stringify(links.manifests));
      }
      // Only the manifest itself is linked: its blobs and children are linked to the
      // repository when its upstream serves them (never because a manifest names them).
      this.s.link.run(repo.upstream, repo.repo, rec.digest);
    }), (o) => {
      o.manifests.set(rec.digest, rec);
      o.links.add(repoKey(repo, rec.digest));
    }, repo.upstream === HOSTED);
  }

  async referrers(subject: string): Promise<Array<{ digest: string; mediaType: string; size: number; artifactType?: string }>> {
    const rows = this.s.referrers.all(subject) as Array<{ digest: string; mediaType: string; size: number; artifactType: string | null }>;
    return rows.map((r) => (r.artifactType === null ? { digest: r.digest, mediaType: r.mediaType, size: r.size } : { ...r, artifactType: r.artifactType }));
  }

  async blobSize(digest: string): Promise<number | undefined> {
    return this.overlay.blobs.get(digest) ?? (this.s.getBlob.get(digest) as { size: number } | undefined)?.size;
  }

  async putBlob(digest: string, size: number, repo: RepoRef | undefined, now: number): Promise<void> {
    return this.submit(`blob ${digest}`, () => this.write(() => {
      this.s.putBlob.run(digest, size, now, now);
      if (repo) this.s.link.run(repo.upstream, repo.repo, digest);
    }), (o) => {
      o.blobs.set(digest, size);
      if (repo) o.links.add(repoKey(repo, digest));
    }, repo?.upstream === HOSTED);
  }

  async *listBlobs(): AsyncIterable<{ digest: string; size: number }> {
    const rows = this.s.listBlobs.all() as Array<{ digest: string; size: number }>;
    yield* rows;
  }

  async dropBlobs(digests: string[]): Promise<void> {
    if (digests.length === 0) return;
    this.notWhileQueued('drop blob rows');
    await this.gated(() => this.write(() => {
      for (const d of digests) this.s.delBlob.run(d);
    }));
  }

  async getTag(repo: RepoRef, tag: string): Promise<TagRecord | undefined> {
    return this.overlay.tags.get(repoKey(repo, tag)) ?? this.s.getTag.get(repo.upstream, repo.repo, tag) as TagRecord | undefined;
  }

  async putTag(repo: RepoRef, tag: string, digest: string, now: number): Promise<void> {
    return this.submit(`tag ${repo.repo}:${tag}`, () => void this.s.putTag.run(repo.upstream, repo.repo, tag, digest, now),
      (o) => o.tags.set(repoKey(repo, tag), { digest, validatedAt: now }), repo.upstream === HOSTED);
  }

  async listTags(repo: RepoRef, last: string, n: number): Promise<string[]> {
    return (this.s.listTags.all(repo.upstream, repo.repo, last, n) as Array<{ tag: string }>).map((r) => r.tag);
  }

  async deleteTag(repo: RepoRef, tag: string): Promise<boolean> {
    return this.gatedForClient(() => this.s.delTag.run(repo.upstream, repo.repo, tag).changes > 0);
  }

  async unlink(repo: RepoRef, digest: string): Promise<boolean> {
    return this.gatedForClient(() => this.write(() => {
      this.s.delRepoTagsOf.run(repo.upstream, repo.repo, digest);
      return this.s.unlink.run(repo.upstream, repo.repo, digest).changes > 0;
    }));
  }

  async link(repo: RepoRef, digest: string): Promise<void> {
    return this.submit(`link ${repo.repo}@${digest}`, () => void this.s.link.run(repo.upstream, repo.repo, digest),
      (o) => o.links.add(repoKey(repo, digest)), repo.upstream === HOSTED);
  }

  async isLinked(repo: RepoRef, digest: string): Promise<boolean> {
    return this.overlay.links.has(repoKey(repo, digest)) || this.s.isLinked.get(repo.upstream, repo.repo, digest) !== undefined;
  }

  async catalog(last: string, n: number, upstream?: string): Promise<string[]> {
    const rows = upstream === undefined ? this.s.catalog.all(last, n) : this.s.catalogOf.all(upstream, last, n);
    return (rows as Array<{ name: string }>).map((r) => r.name);
  }

  async listRepositories(opts: { query?: string; after?: string; limit: number }): Promise<RepositorySummary[]> {
    const rows = this.s.listRepositories.all(opts.after ?? '', opts.query ?? '', opts.limit) as Array<RepositorySummary & { lastPull: number | null }>;
    return rows.map((r) => ({ ...r, lastPull: r.lastPull ?? undefined }));
  }

  async repositoryTags(repo: RepoRef, last: string, n: number): Promise<RepositoryTag[]> {
    const rows = this.s.repositoryTags.all(repo.upstream, repo.repo, last, n) as Array<{
      tag: string; digest: string; validatedAt: number; mediaType: string | null; lastPull: number | null; bytes: number;
    }>;
    return rows.map((r) => ({ ...r, mediaType: r.mediaType ?? undefined, lastPull: r.lastPull ?? undefined }));
  }

  touch(digest: string, now: number): void {
    this.pendingTouches.set(digest, now);
  }

  /**
   * Writes the batched last-pull times. A failure (disk full, a lock) is reported and the
   * batch kept for the next try: not recording a pull time never takes the server down.
   */
  async flush(): Promise<void> {
    // One flush at a time: a second (close(), a test) waits for the one in progress, then writes what is left.
    while (this.flushRun) await this.flushRun;
    // While writes queue for a lock, the times wait too (they are in memory, nothing is lost).
    if (this.pendingTouches.size === 0 || !this.db?.open || this.writes.blocked) return;
    const run = this.writeTouches();
    this.flushRun = run;
    try {
      await run;
    } finally {
      if (this.flushRun === run) this.flushRun = undefined;
    }
  }

  private async writeTouches(): Promise<void> {
    const all = [...this.pendingTouches];
    this.pendingTouches.clear();
    for (const [digest, at] of all) this.flushing.set(digest, at);
    try {
      // In transactions of TOUCH_BATCH: on the worker, a main-thread write waits for one at most;
      // here, a turn of the event loop between them, so a busy mirror's second of pulls never
      // becomes one long write on the event loop.
      for (let i = 0; i < all.length; i += TOUCH_BATCH) {
        if (i > 0 && !this.worker?.alive) await new Promise((r) => setImmediate(r));
        const batch = all.slice(i, i + TOUCH_BATCH);
        try {
          await this.run('writeTouches', batch);
        } catch (err) {
          for (const [digest, at] of all.slice(i)) if (!this.pendingTouches.has(digest)) this.pendingTouches.set(digest, at);
          if (!isLocked(err)) this.opts.onError?.(err as Error);
          return;
        }
      }
    } finally {
      for (const [digest, at] of all) if (this.flushing.get(digest) === at) this.flushing.delete(digest);
    }
  }

  /** Runs an index operation on the worker, or here (behind the write gate) when there is none. */
  private async run<K extends keyof IndexOps>(op: K, ...args: Parameters<IndexOps[K]>): Promise<ReturnType<IndexOps[K]>> {
    if (this.worker?.alive) {
      // Writes this thread made before (waiting for the gate) are in the index before the worker reads or writes it.
      while (this.writes.size > 0 && !this.writes.blocked) await Promise.race([this.writes.idle(), this.gate.freed()]);
      if (this.worker?.alive) return this.worker.call(op, ...args);
    }
    if (!this.db?.open) throw new Error('metadata store is closed');
    const fn = this.local[op] as (...a: Parameters<IndexOps[K]>) => ReturnType<IndexOps[K]>;
    return op === 'candidates' ? fn(...args) : this.gated(() => fn(...args));
  }

  /**
   * Runs a write on this connection once the gate is this thread's: at once, unless the
   * worker is in a transaction (then after it, waiting without blocking the event loop).
   */
  private async gated<T>(fn: () => T): Promise<T> {
    while (!this.gate.tryEnter()) await this.gate.freed();
    try {
      return fn();
    } finally {
      this.gate.leave();
    }
  }

  /** gated() for a client's request: another process's lock is a 503 to retry, not an internal error. */
  private async gatedForClient<T>(fn: () => T): Promise<T> {
    try {
      return await this.gated(fn);
    } catch (err) {
      if (isLocked(err)) throw indexBusy();
      throw err;
    }
  }

  totals(): StoreTotals {
    return this.current;
  }

  unflushedPull(digest: string): number | undefined {
    return this.pendingTouches.get(digest) ?? this.flushing.get(digest);
  }

  async evictionCandidates(opts: { before: number; limit: number; after?: { recency: number; digest: string } }): Promise<EvictionUnit[]> {
    return this.run('candidates', opts.before, opts.limit, opts.after);
  }

  async removeUnits(units: EvictionUnit[], keep: (digest: string) => boolean, kept?: (unit: string) => void, watchPins?: () => PinWatch): Promise<string[]> {
    this.notWhileQueued('evict');
    const keptImages = await this.run('removeImages', units);
    this.refreshTotals();
    // The images are gone; their blobs are now loose rows (refs = 0), a state the store
    // knows anyway (a blob pulled without a manifest). They go a few per transaction: here
    // with a turn of the event loop between, so a request waits for at most one small commit.
    const blobs = units.flatMap((u) => u.blobs);
    const looseAt = new Map(units.filter((u) => u.kind === 'blob').map((u) => [u.digest, u.recency]));
    const removed: string[] = [];
    const per = this.worker?.alive ? BLOB_ROWS_PER_WORKER_WRITE : BLOB_ROWS_PER_WRITE;
    for (let i = 0; i < blobs.length; i += per) {
      if (i > 0) {
        if (!this.worker?.alive) await new Promise((r) => setImmediate(r));
        // Closed meanwhile (shutdown) or locked by another process: the rest stay loose rows for the next sweep.
        if (!this.db?.open || this.writes.blocked) break;
      }
      const chunk = blobs.slice(i, i + per);
      // Asked again for each write: a blob served or fetched since the last one stays.
      const watch = watchPins?.();
      let rows: RemovedBlob[];
      let back: RemovedBlob[];
      try {
        try {
          rows = await this.run('removeBlobs', chunk, chunk.filter((b) => looseAt.has(b)).map((b) => [b, looseAt.get(b)!]), chunk.filter(keep));
        } catch (err) {
          // Locked by another process now: the rest stay loose rows for the next sweep, and the
          // caller still learns what went (its files are deleted, its caches dropped).
          if (isLocked(err)) break;
          throw err;
        }
        // Pinned at any moment after it was asked (on the worker the rows go a moment later): a
        // pull that read the row, or a push that checked it from its manifest, goes on with it.
        // Row and links are put back, and the sweep keeps the file.
        back = rows.filter((r) => keep(r.digest) || watch?.pinned(r.digest));
      } finally {
        watch?.end();
      }
      this.refreshTotals();
      if (back.length) this.restoreBlobs(back);
      for (const r of rows) if (!back.includes(r)) removed.push(r.digest);
    }
    if (kept) {
      for (const m of keptImages) kept(m);
      const gone = new Set(removed);
      for (const b of looseAt.keys()) if (!gone.has(b)) kept(b);
    }
    return removed;
  }

  /**
   * Puts back blob rows an eviction removed while they were pinned, with their repository
   * links (their references are recounted by the insert's trigger). Through the write queue:
   * a lock held elsewhere delays it, and reads see the rows meanwhile.
   */
  private restoreBlobs(rows: RemovedBlob[]): void {
    this.submit(`restore ${rows.length} blob rows`, () => this.write(() => {
      for (const r of rows) {
        this.s.restoreBlob.run(r.digest, r.size, r.recency, r.recency);
        for (const [upstream, repo] of r.links) this.s.link.run(upstream, repo, r.digest);
      }
    }), (o) => {
      for (const r of rows) {
        o.blobs.set(r.digest, r.size);
        for (const [upstream, repo] of r.links) o.links.add(repoKey({ upstream, repo }, r.digest));
      }
    });
  }

  async hostedManifests(repo: string): Promise<HostedManifest[]> {
    await this.flush();
    const rows = this.s.hostedManifests.all(repo) as Array<{ digest: string; size: number; pushedAt: number; pulledAt: number; subject: string | null }>;
    const tags = new Map<string, Array<{ tag: string; at: number }>>();
    for (const t of this.s.hostedTags.all(repo) as Array<{ tag: string; digest: string; at: number }>) {
      const list = tags.get(t.digest) ?? [];
      list.push({ tag: t.tag, at: t.at });
      tags.set(t.digest, list);
    }
    const parents = new Map<string, string[]>();
    for (const r of this.s.hostedParents.all(repo) as Array<{ manifest: string; child: string }>) {
      const list = parents.get(r.child) ?? [];
      list.push(r.manifest);
      parents.set(r.child, list);
    }
    return rows.map((r) => ({
      digest: r.digest, size: r.size, pushedAt: r.pushedAt, pulledAt: r.pulledAt,
      tags: tags.get(r.digest) ?? [], parents: parents.get(r.digest) ?? [], ...(r.subject === null ? {} : { subject: r.subject }),
    }));
  }

  async garbage(before: number, limit: number): Promise<{ blobs: Array<{ digest: string; size: number; repos: string[] }>; manifests: Array<{ digest: string; size: number }> }> {
    await this.flush();
    const blobs = (this.s.garbageBlobs.all(before, limit) as Array<{ digest: string; size: number }>).map((b) => ({
      ...b, repos: (this.s.hostedReposOf.all(b.digest) as Array<{ repo: string }>).map((r) => r.repo),
    }));
    const manifests = this.s.garbageManifests.all(limit) as Array<{ digest: string; size: number }>;
    return { blobs, manifests };
  }

  async removeGarbage(blobs: string[], manifests: string[], before: number, keep: (digest: string) => boolean): Promise<{ blobs: string[]; manifests: string[] }> {
    const out = { blobs: [] as string[], manifests: [] as string[] };
    await this.gated(() => this.write(() => {
      for (const m of manifests) {
        if (this.s.delGarbageManifest.run(m).changes === 0) continue;
        this.s.delRefs.run(m);
        this.s.delTags.run(m);
        out.manifests.push(m);
      }
      for (const b of blobs) {
        if (keep(b) || this.s.delGarbageBlob.run(b, before).changes === 0) continue;
        this.s.delLinks.run(b);
        out.blobs.push(b);
      }
    }));
    return out;
  }

  async namesOf(digests: string[]): Promise<DigestNames[]> {
    return digests.map((digest) => {
      const tags = (this.s.tagsOf.all(digest) as Array<{ name: string }>).map((r) => r.name);
      const names = tags.length ? tags : (this.s.reposOf.all(digest) as Array<{ name: string }>).map((r) => r.name);
      return { digest, names };
    });
  }

  async getState<T>(ns: string, key: string): Promise<T | undefined> {
    const k = `${ns}\0${key}`;
    const value = this.overlay.state.has(k) ? this.overlay.state.get(k) : (this.s.getState.get(ns, key) as { value: string } | undefined)?.value;
    return value === undefined ? undefined : (JSON.parse(value) as T);
  }

  async putState(ns: string, key: string, value: unknown): Promise<void> {
    const json = JSON.stringify(value);
    return this.submit(`state ${ns}/${key}`, () => void this.s.putState.run(ns, key, json), (o) => o.state.set(`${ns}\0${key}`, json), ns === UPLOAD_STATE);
  }

  async deleteState(ns: string, key: string): Promise<void> {
    return this.submit(`state ${ns}/${key}`, () => void this.s.delState.run(ns, key), (o) => o.state.set(`${ns}\0${key}`, undefined), ns === UPLOAD_STATE);
  }

  async listState<T>(ns: string): Promise<Array<{ key: string; value: T }>> {
    return (this.s.listState.all(ns) as Array<{ key: string; value: string }>).map((r) => ({ key: r.key, value: JSON.parse(r.value) as T }));
  }

  /**
   * Open and writable now: no write waits for a lock, and the write lock can be taken at
   * once (busy_timeout is 0, so this probe never waits).
   */
  healthy(): boolean {
    if (this.db?.open !== true || this.writes.blocked) return false;
    // The worker is in a transaction: the lock is this process's own.
    if (!this.gate.tryEnter(false)) return true;
    try {
      this.db.exec('BEGIN IMMEDIATE');
      this.db.exec('ROLLBACK');
      return true;
    } catch {
      return false;
    } finally {
      this.gate.leave();
    }
  }

  /** Evictions and recovery need the database itself: refused while writes queue for a lock. */
  private notWhileQueued(what: string): void {
    if (this.writes.blocked) throw Object.assign(new Error(`cannot ${what}: the index is locked by another process`), { code: 'SQLITE_BUSY' });
  }

  /**
   * Drains queued writes and batched pull times (retrying a lock for up to closeDrainMs),
   * then closes. What still cannot be written is reported; recovery adopts its blobs.
   */
  async close(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
    // The worker finishes what it was given (a flush in progress), then stops; what is left is written here.
    while (this.flushRun) await this.flushRun;
    await this.worker?.stop();
    this.worker = undefined;
    if (!this.db?.open) return;
    const lost = await this.writes.close(this.opts.closeDrainMs ?? 10_000);
    if (lost.length) this.opts.onError?.(new Error(`index locked at shutdown: ${lost.length} writes not recorded (${lost.slice(0, 3).map((w) => w.what).join(', ')})`));
    await this.flush();
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Locked elsewhere: the WAL is checkpointed by the next opener.
    }
    this.db.close();
  }
}
