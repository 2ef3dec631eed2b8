/**
 * The SQLite index: manifests (with their bodies), blobs, tags, references and repository
 * links. Synchronous better-sqlite3 calls, prepared once. Last-pull times are batched in
 * memory and flushed in one transaction per interval, not written per request.
 */
import Database from 'better-sqlite3';
import { MIGRATIONS } from './schema.js';

export interface ManifestRow {
  digest: string;
  mediaType: string;
  size: number;
  body: Buffer;
}

export interface TagRow {
  digest: string;
  validatedAt: number;
}

export interface StoreStats {
  blobs: number;
  blobBytes: number;
  manifests: number;
  manifestBytes: number;
}

type Stmt = Database.Statement;

export class IndexDb {
  readonly db: Database.Database;
  private readonly pendingTouches = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly s: Record<string, Stmt>;

  private readonly onError: (err: Error) => void;

  constructor(file: string, opts: { touchFlushMs?: number; onError?: (err: Error) => void } = {}) {
    this.onError = opts.onError ?? (() => undefined);
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = OFF');
    this.migrate();
    const p = (sql: string): Stmt => this.db.prepare(sql);
    this.s = {
      getManifest: p('SELECT digest, media_type AS mediaType, size, body FROM manifests WHERE digest = ?'),
      putManifest: p(`INSERT INTO manifests (digest, media_type, size, body, created_at, last_pulled_at) VALUES (?, ?, ?, ?, ?, ?)
                      ON CONFLICT(digest) DO UPDATE SET last_pulled_at = excluded.last_pulled_at`),
      putRef: p('INSERT OR IGNORE INTO manifest_refs (manifest, child, kind) VALUES (?, ?, ?)'),
      getBlob: p('SELECT size FROM blobs WHERE digest = ?'),
      putBlob: p(`INSERT INTO blobs (digest, size, created_at, last_pulled_at) VALUES (?, ?, ?, ?)
                  ON CONFLICT(digest) DO UPDATE SET last_pulled_at = excluded.last_pulled_at`),
      getTag: p('SELECT digest, validated_at AS validatedAt FROM tags WHERE upstream = ? AND repo = ? AND tag = ?'),
      putTag: p(`INSERT INTO tags (upstream, repo, tag, digest, validated_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT(upstream, repo, tag) DO UPDATE SET digest = excluded.digest, validated_at = excluded.validated_at`),
      link: p('INSERT OR IGNORE INTO repo_links (upstream, repo, digest) VALUES (?, ?, ?)'),
      isLinked: p('SELECT 1 FROM repo_links WHERE upstream = ? AND repo = ? AND digest = ?'),
      touchBlob: p('UPDATE blobs SET last_pulled_at = max(last_pulled_at, ?) WHERE digest = ?'),
      touchManifest: p('UPDATE manifests SET last_pulled_at = max(last_pulled_at, ?) WHERE digest = ?'),
      catalog: p(`SELECT DISTINCT l.upstream || '/' || l.repo AS name FROM repo_links l
                  JOIN manifests m ON m.digest = l.digest WHERE name > ? ORDER BY name LIMIT ?`),
      listTags: p('SELECT tag FROM tags WHERE upstream = ? AND repo = ? AND tag > ? ORDER BY tag LIMIT ?'),
      stats: p(`SELECT (SELECT count(*) FROM blobs) AS blobs, (SELECT coalesce(sum(size), 0) FROM blobs) AS blobBytes,
                       (SELECT count(*) FROM manifests) AS manifests, (SELECT coalesce(sum(size), 0) FROM manifests) AS manifestBytes`),
    };
    const flushMs = opts.touchFlushMs ?? 1000;
    this.flushTimer = setInterval(() => this.flushTouches(), flushMs);
    this.flushTimer.unref();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  getManifest(digest: string): ManifestRow | undefined {
    return this.s.getManifest!.get(digest) as ManifestRow | undefined;
  }

  /** Stores a verified manifest with what it references, links it to the repository. */
  putManifest(row: ManifestRow, refs: { blobs: string[]; manifests: string[] }, scope: { upstream: string; repo: string }, now: number): void {
    this.db.transaction(() => {
      this.s.putManifest!.run(row.digest, row.mediaType, row.size, row.body, now, now);
      for (const b of refs.blobs) this.s.putRef!.run(row.digest, b, 'blob');
      for (const m of refs.manifests) this.s.putRef!.run(row.digest, m, 'manifest');
      this.s.link!.run(scope.upstream, scope.repo, row.digest);
      for (const b of refs.blobs) this.s.link!.run(scope.upstream, scope.repo, b);
      for (const m of refs.manifests) this.s.link!.run(scope.upstream, scope.repo, m);
    })();
  }

  blobSize(digest: string): number | undefined {
    const r = this.s.getBlob!.get(digest) as { size: number } | undefined;
    return r?.size;
  }

  putBlob(digest: string, size: number, scope: { upstream: string; repo: string }, now: number): void {
    this.db.transaction(() => {
      this.s.putBlob!.run(digest, size, now, now);
      this.s.link!.run(scope.upstream, scope.repo, digest);
    })();
  }

  getTag(upstream: string, repo: string, tag: string): TagRow | undefined {
    return this.s.getTag!.get(upstream, repo, tag) as TagRow | undefined;
  }

  putTag(upstream: string, repo: string, tag: string, digest: string, now: number): void {
    this.s.putTag!.run(upstream, repo, tag, digest, now);
  }

  link(upstream: string, repo: string, digest: string): void {
    this.s.link!.run(upstream, repo, digest);
  }

  isLinked(upstream: string, repo: string, digest: string): boolean {
    return this.s.isLinked!.get(upstream, repo, digest) !== undefined;
  }

  /** Records a pull; written in the next batch. */
  touch(digest: string, now: number): void {
    this.pendingTouches.set(digest, now);
  }

  /**
   * Writes the batched last-pull times. A failure (e.g. disk full) is reported and the batch
   * kept for the next try: not recording a pull time must never take the server down.
   */
  flushTouches(): void {
    if (this.pendingTouches.size === 0 || !this.db.open) return;
    const batch = [...this.pendingTouches];
    this.pendingTouches.clear();
    try {
      this.db.transaction(() => {
        for (const [digest, at] of batch) {
          this.s.touchBlob!.run(at, digest);
          this.s.touchManifest!.run(at, digest);
        }
      })();
    } catch (err) {
      for (const [digest, at] of batch) if (!this.pendingTouches.has(digest)) this.pendingTouches.set(digest, at);
      this.onError(err as Error);
    }
  }

  catalog(last: string, n: number): string[] {
    return (this.s.catalog!.all(last, n) as Array<{ name: string }>).map((r) => r.name);
  }

  listTags(upstream: string, repo: string, last: string, n: number): string[] {
    return (this.s.listTags!.all(upstream, repo, last, n) as Array<{ tag: string }>).map((r) => r.tag);
  }

  stats(): StoreStats {
    return this.s.stats!.get() as StoreStats;
  }

  close(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.db.open) return;
    this.flushTouches();
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
  }
}
