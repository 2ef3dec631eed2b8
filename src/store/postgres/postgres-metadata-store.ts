/**
 * The PostgreSQL MetadataStore (node-postgres), for several replicas sharing one database.
 * Same model as the SQLite store: reference counts and totals are kept by triggers in the
 * transaction of each write (schema.ts); last-pull times are batched in memory and written in
 * one statement per interval; a pull of an index child also refreshes its parents.
 *
 * totals() is synchronous and reads memory: refreshed in every write transaction of this
 * replica and, for other replicas' writes, at each flush interval.
 *
 * Replicas race where a single process never did: a blob row and a manifest naming it may be
 * inserted at once by two replicas, so a reference count can miss the other's row; removal
 * therefore re-checks that nothing references a blob (NOT EXISTS), not just its count.
 */
import type pg from 'pg';
import type {
  DigestNames, EvictionUnit, ManifestLinks, ManifestRecord, MetadataStore, HostedManifest, PinWatch, RepoRef, RepositorySummary, RepositoryTag, StoreTotals, TagRecord,
} from '../metadata-store.js';
import { oldestFirst } from '../eviction-order.js';
import { digestKey } from './digest-key.js';
import { migrate } from './migrate.js';
import { createPool } from './pool.js';
import { DIGEST_IDS_LOCK } from './schema.js';

export interface PostgresOptions {
  url?: string | undefined;
  /** Pool size (default 10). */
  maxConnections?: number;
  touchFlushMs?: number;
  /** Reports a failed batch write or a broken connection (the batch is kept and retried). */
  onError?: (err: Error) => void;
}

type Q = Pick<pg.PoolClient, 'query'>;

/** SQL: the interned id of the digest text `p` (schema v3), NULL when no reference names it. */
const idOf = (p: string): string => `(SELECT id FROM digest_ids WHERE digest = regcache_digest_key(${p}))`;
/** SQL: no reference names the digest text `p`, whatever the counts say (another replica's rows). */
/** SQL: no hosted repository links the digest parameter `p`. */
const notHosted = (p: string): string => `NOT EXISTS (SELECT 1 FROM repo_links h WHERE h.upstream = 'hosted' AND h.digest = ${p})`;
const unreferenced = (p: string): string =>
  `NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN digest_ids d ON d.id = r.child_id WHERE d.digest = regcache_digest_key(${p}))`;

/** Serialization failures and deadlocks: the transaction is safe to run again. */
const RETRYABLE = new Set(['40001', '40P01']);

export class PostgresMetadataStore implements MetadataStore {
  readonly pool: pg.Pool;
  private readonly pendingTouches = new Map<string, number>();
  /** Pull times a flush is writing (unflushedPull() still reports them). */
  private readonly flushing = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private current: StoreTotals = { blobs: 0, blobBytes: 0, manifests: 0, manifestBytes: 0 };
  private open = false;
  private reachable = false;

  constructor(private readonly opts: PostgresOptions = {}) {
    this.pool = createPool({
      url: opts.url, max: opts.maxConnections ?? 10,
      onError: (err) => { this.reachable = false; opts.onError?.(err); },
    });
  }

  async init(): Promise<void> {
    if (this.open) return;
    await migrate(this.pool);
    this.open = true;
    this.reachable = true;
    await this.refreshTotals(this.pool);
    this.flushTimer = setInterval(() => void this.tick(), this.opts.touchFlushMs ?? 1000);
    this.flushTimer.unref();
  }

  /** Each interval: write pull times, learn other replicas' totals, notice an outage. */
  private async tick(): Promise<void> {
    await this.flush();
    try {
      await this.refreshTotals(this.pool);
      this.reachable = true;
    } catch (err) {
      this.reachable = false;
      this.opts.onError?.(err as Error);
    }
  }

  private async refreshTotals(q: Q): Promise<void> {
    const { rows } = await q.query<StoreTotals>('SELECT blobs, blob_bytes AS "blobBytes", manifests, manifest_bytes AS "manifestBytes" FROM totals WHERE id = 1');
    if (rows[0]) this.current = { ...rows[0] };
  }

  private get q(): pg.Pool {
    if (!this.open) throw new Error('metadata store is closed');
    return this.pool;
  }

  /** Runs a write transaction (again on a deadlock), then mirrors the totals it left. */
  private async write<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const c = await this.q.connect();
      try {
        await c.query('BEGIN');
        const out = await fn(c);
        await this.refreshTotals(c);
        await c.query('COMMIT');
        return out;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        if (attempt < 5 && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
        throw err;
      } finally {
        c.release();
      }
    }
  }

  async getManifest(digest: string): Promise<ManifestRecord | undefined> {
    const { rows } = await this.q.query<ManifestRecord>('SELECT digest, media_type AS "mediaType", size, body FROM manifests WHERE digest = $1', [digest]);
    return rows[0];
  }

  async putManifest(rec: ManifestRecord, links: ManifestLinks, repo: RepoRef, now: number): Promise<void> {
    const children = [...links.blobs, ...links.manifests];
    await this.write(async (c) => {
      // First, before any row lock (so it cannot close a cycle with a removal, which takes it
      // exclusively first too), held until commit: no digest these references name is forgotten
      // meanwhile (schema.ts).
      if (children.length) await c.query('SELECT pg_advisory_xact_lock_shared($1)', [DIGEST_IDS_LOCK]);
      await c.query(
        `INSERT INTO manifests (digest, media_type, size, body, created_at, last_pulled_at, subject, artifact_type) VALUES ($1, $2, $3, $4, $5, $5, $6, $7)
         ON CONFLICT (digest) DO UPDATE SET last_pulled_at = GREATEST(manifests.last_pulled_at, excluded.last_pulled_at)`,
        [rec.digest, rec.mediaType, rec.size, rec.body, now, links.subject ?? null, links.artifactType ?? null],
      );
      if (children.length) {
        const own = digestKey(rec.digest);
        const keys = children.map(digestKey);
        await c.query('INSERT INTO digest_ids (digest) SELECT DISTINCT k FROM unnest($1::bytea[]) AS t(k) ORDER BY 1 ON CONFLICT DO NOTHING', [[own, ...keys]]);
        // A digest named twice keeps its first kind (blobs come first), as in the SQLite store.
        await c.query(
          `INSERT INTO manifest_refs (manifest_id, child_id, kind)
           SELECT DISTINCT ON (c.id) m.id, c.id, t.kind FROM unnest($2::bytea[], $3::smallint[]) WITH ORDINALITY AS t(k, kind, n)
           JOIN digest_ids c ON c.digest = t.k JOIN digest_ids m ON m.digest = $1
           ORDER BY c.id, t.n ON CONFLICT DO NOTHING`,
          [own, keys, [...links.blobs.map(() => 0), ...links.manifests.map(() => 1)]],
        );
      }
      // Only the manifest itself is linked (scope): its blobs are linked when served.
      await linkWith(c, repo, rec.digest);
    });
  }

  async referrers(subject: string): Promise<Array<{ digest: string; mediaType: string; size: number; artifactType?: string }>> {
    const { rows } = await this.q.query<{ digest: string; mediaType: string; size: number; artifactType: string | null }>(
      'SELECT digest, media_type AS "mediaType", size, artifact_type AS "artifactType" FROM manifests WHERE subject = $1 ORDER BY digest', [subject],
    );
    return rows.map((r) => (r.artifactType === null ? { digest: r.digest, mediaType: r.mediaType, size: r.size } : { ...r, artifactType: r.artifactType }));
  }

  async blobSize(digest: string): Promise<number | undefined> {
    const { rows } = await this.q.query<{ size: number }>('SELECT size FROM blobs WHERE digest = $1', [digest]);
    return rows[0]?.size;
  }

  async putBlob(digest: string, size: number, repo: RepoRef | undefined, now: number): Promise<void> {
    await this.write(async (c) => {
      await c.query(
        `INSERT INTO blobs (digest, size, created_at, last_pulled_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (digest) DO UPDATE SET last_pulled_at = GREATEST(blobs.last_pulled_at, excluded.last_pulled_at)`,
        [digest, size, now],
      );
      if (repo) await linkWith(c, repo, digest);
    });
  }

  async *listBlobs(): AsyncIterable<{ digest: string; size: number }> {
    // Paged by key so a large table is never held in memory at once.
    let after = '';
    for (;;) {
      const { rows } = await this.q.query<{ digest: string; size: number }>('SELECT digest, size FROM blobs WHERE digest > $1 ORDER BY digest LIMIT 1000', [after]);
      yield* rows;
      if (rows.length < 1000) return;
      after = rows[rows.length - 1]!.digest;
    }
  }

  async dropBlobs(digests: string[]): Promise<void> {
    if (digests.length === 0) return;
    await this.write((c) => c.query('DELETE FROM blobs WHERE digest = ANY($1::text[])', [digests]));
  }

  async getTag(repo: RepoRef, tag: string): Promise<TagRecord | undefined> {
    const { rows } = await this.q.query<TagRecord>(
      'SELECT digest, validated_at AS "validatedAt" FROM tags WHERE upstream = $1 AND repo = $2 AND tag = $3', [repo.upstream, repo.repo, tag],
    );
    return rows[0];
  }

  async putTag(repo: RepoRef, tag: string, digest: string, now: number): Promise<void> {
    await this.q.query(
      `INSERT INTO tags (upstream, repo, tag, digest, validated_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (upstream, repo, tag) DO UPDATE SET digest = excluded.digest, validated_at = excluded.validated_at`,
      [repo.upstream, repo.repo, tag, digest, now],
    );
  }

  async listTags(repo: RepoRef, last: string, n: number): Promise<string[]> {
    const { rows } = await this.q.query<{ tag: string }>(
      'SELECT tag FROM tags WHERE upstream = $1 AND repo = $2 AND tag > $3 ORDER BY tag LIMIT $4', [repo.upstream, repo.repo, last, n],
    );
    return rows.map((r) => r.tag);
  }

  async listRepositories(opts: { query?: string; after?: string; limit: number }): Promise<RepositorySummary[]> {
    const { rows } = await this.q.query<{ upstream: string; repo: string; tags: string; bytes: string; lastPull: string | null }>(
      `SELECT r.upstream, r.repo,
         (SELECT count(*) FROM tags t WHERE t.upstream = r.upstream AND t.repo = r.repo) AS tags,
         (SELECT coalesce(sum(coalesce(b.size, m.size, 0)), 0) FROM repo_links l
            LEFT JOIN blobs b ON b.digest = l.digest LEFT JOIN manifests m ON m.digest = l.digest
            WHERE l.upstream = r.upstream AND l.repo = r.repo) AS bytes,
         (SELECT max(m.last_pulled_at) FROM repo_links l JOIN manifests m ON m.digest = l.digest
            WHERE l.upstream = r.upstream AND l.repo = r.repo) AS "lastPull"
       FROM (SELECT DISTINCT l.upstream, l.repo FROM repo_links l JOIN manifests m ON m.digest = l.digest) r
       WHERE (r.upstream || '/' || r.repo) COLLATE "C" > $1 AND position(lower($2) in lower(r.upstream || '/' || r.repo)) > 0
       ORDER BY (r.upstream || '/' || r.repo) COLLATE "C" LIMIT $3`,
      [opts.after ?? '', opts.query ?? '', opts.limit],
    );
    return rows.map((r) => ({ upstream: r.upstream, repo: r.repo, tags: Number(r.tags), bytes: Number(r.bytes), lastPull: r.lastPull === null ? undefined : Number(r.lastPull) }));
  }

  async repositoryTags(repo: RepoRef, last: string, n: number): Promise<RepositoryTag[]> {
    const { rows } = await this.q.query<{ tag: string; digest: string; validatedAt: string; mediaType: string | null; lastPull: string | null; bytes: string }>(
      `SELECT t.tag, t.digest, t.validated_at AS "validatedAt", m.media_type AS "mediaType", m.last_pulled_at AS "lastPull",
         coalesce(m.size, 0) + (SELECT coalesce(sum(coalesce(b.size, c.size, 0)), 0) FROM manifest_refs r JOIN digest_ids rd ON rd.id = r.child_id
           LEFT JOIN blobs b ON b.digest = regcache_digest_text(rd.digest) LEFT JOIN manifests c ON c.digest = regcache_digest_text(rd.digest)
           WHERE r.manifest_id = td.id
              OR r.manifest_id IN (SELECT child_id FROM manifest_refs WHERE manifest_id = td.id AND kind = 1)) AS bytes
       FROM tags t LEFT JOIN manifests m ON m.digest = t.digest LEFT JOIN digest_ids td ON td.digest = regcache_digest_key(t.digest)
       WHERE t.upstream = $1 AND t.repo = $2 AND t.tag > $3 ORDER BY t.tag LIMIT $4`,
      [repo.upstream, repo.repo, last, n],
    );
    return rows.map((r) => ({
      tag: r.tag, digest: r.digest, validatedAt: Number(r.validatedAt), mediaType: r.mediaType ?? undefined,
      lastPull: r.lastPull === null ? undefined : Number(r.lastPull), bytes: Number(r.bytes),
    }));
  }

  async deleteTag(repo: RepoRef, tag: string): Promise<boolean> {
    const r = await this.q.query('DELETE FROM tags WHERE upstream = $1 AND repo = $2 AND tag = $3', [repo.upstream, repo.repo, tag]);
    return (r.rowCount ?? 0) > 0;
  }

  async unlink(repo: RepoRef, digest: string): Promise<boolean> {
    return this.write(async (c) => {
      await c.query('DELETE FROM tags WHERE upstream = $1 AND repo = $2 AND digest = $3', [repo.upstream, repo.repo, digest]);
      const r = await c.query('DELETE FROM repo_links WHERE upstream = $1 AND repo = $2 AND digest = $3', [repo.upstream, repo.repo, digest]);
      return (r.rowCount ?? 0) > 0;
    });
  }

  async hostedManifests(repo: string): Promise<HostedManifest[]> {
    await this.flush();
    const rows = (await this.q.query<{ digest: string; size: string; pushedAt: string; pulledAt: string; subject: string | null }>(
      `SELECT m.digest, m.size, m.created_at AS "pushedAt", m.last_pulled_at AS "pulledAt", m.subject FROM repo_links l
       JOIN manifests m ON m.digest = l.digest WHERE l.upstream = 'hosted' AND l.repo = $1 ORDER BY m.digest COLLATE "C"`, [repo],
    )).rows;
    const tags = new Map<string, Array<{ tag: string; at: number }>>();
    for (const t of (await this.q.query<{ tag: string; digest: string; at: string }>(
      `SELECT tag, digest, validated_at AS at FROM tags WHERE upstream = 'hosted' AND repo = $1`, [repo],
    )).rows) {
      const list = tags.get(t.digest) ?? [];
      list.push({ tag: t.tag, at: Number(t.at) });
      tags.set(t.digest, list);
    }
    const parents = new Map<string, string[]>();
    for (const r of (await this.q.query<{ manifest: string; child: string }>(
      `SELECT l.digest AS manifest, regcache_digest_text(c.digest) AS child FROM repo_links l
       JOIN digest_ids p ON p.digest = regcache_digest_key(l.digest) JOIN manifest_refs r ON r.manifest_id = p.id AND r.kind = 1
       JOIN digest_ids c ON c.id = r.child_id WHERE l.upstream = 'hosted' AND l.repo = $1`, [repo],
    )).rows) {
      const list = parents.get(r.child) ?? [];
      list.push(r.manifest);
      parents.set(r.child, list);
    }
    return rows.map((r) => ({
      digest: r.digest, size: Number(r.size), pushedAt: Number(r.pushedAt), pulledAt: Number(r.pulledAt),
      tags: tags.get(r.digest) ?? [], parents: parents.get(r.digest) ?? [], ...(r.subject === null ? {} : { subject: r.subject }),
    }));
  }

  async garbage(before: number, limit: number): Promise<{ blobs: Array<{ digest: string; size: number; repos: string[] }>; manifests: Array<{ digest: string; size: number }> }> {
    await this.flush();
    const blobRows = (await this.q.query<{ digest: string; size: string }>(
      `SELECT b.digest, b.size FROM blobs b WHERE b.refs = 0 AND b.last_pulled_at < $1
         AND EXISTS (SELECT 1 FROM repo_links h WHERE h.upstream = 'hosted' AND h.digest = b.digest) LIMIT $2`, [before, limit],
    )).rows;
    const blobs = [];
    for (const b of blobRows) {
      const repos = (await this.q.query<{ repo: string }>(
        `SELECT repo FROM repo_links WHERE upstream = 'hosted' AND digest = $1 ORDER BY repo COLLATE "C"`, [b.digest],
      )).rows.map((r) => r.repo);
      blobs.push({ digest: b.digest, size: Number(b.size), repos });
    }
    const manifests = (await this.q.query<{ digest: string; size: string }>(
      `SELECT m.digest, m.size FROM manifests m WHERE m.parents = 0
         AND NOT EXISTS (SELECT 1 FROM repo_links l WHERE l.digest = m.digest) LIMIT $1`, [limit],
    )).rows.map((m) => ({ digest: m.digest, size: Number(m.size) }));
    return { blobs, manifests };
  }

  async removeGarbage(blobs: string[], manifests: string[], before: number, keep: (digest: string) => boolean): Promise<{ blobs: string[]; manifests: string[] }> {
    const out = { blobs: [] as string[], manifests: [] as string[] };
    await this.write(async (c) => {
      await lockDigestIds(c);
      for (const m of manifests) {
        const r = await c.query(
          `DELETE FROM manifests WHERE digest = $1 AND parents = 0 AND NOT EXISTS (SELECT 1 FROM repo_links l WHERE l.digest = manifests.digest)`, [m],
        );
        if ((r.rowCount ?? 0) === 0) continue;
        await c.query(`DELETE FROM manifest_refs WHERE manifest_id = ${idOf('$1')}`, [m]);
        await c.query('DELETE FROM tags WHERE digest = $1', [m]);
        out.manifests.push(m);
      }
      for (const b of blobs) {
        if (keep(b)) continue;
        const r = await c.query(
          `DELETE FROM blobs WHERE digest = $1 AND refs = 0 AND last_pulled_at < $2 AND ${unreferenced('$1')}`, [b, before],
        );
        if ((r.rowCount ?? 0) === 0) continue;
        await c.query('DELETE FROM repo_links WHERE digest = $1', [b]);
        out.blobs.push(b);
      }
    });
    return out;
  }

  async link(repo: RepoRef, digest: string): Promise<void> {
    await linkWith(this.q, repo, digest);
  }

  async isLinked(repo: RepoRef, digest: string): Promise<boolean> {
    const { rowCount } = await this.q.query('SELECT 1 FROM repo_links WHERE upstream = $1 AND repo = $2 AND digest = $3', [repo.upstream, repo.repo, digest]);
    return (rowCount ?? 0) > 0;
  }

  async catalog(last: string, n: number, upstream?: string): Promise<string[]> {
    const { rows } = await this.q.query<{ name: string }>(
      `SELECT DISTINCT name FROM (
         SELECT (l.upstream || '/' || l.repo) COLLATE "C" AS name FROM repo_links l
         JOIN manifests m ON m.digest = l.digest WHERE ($3::text IS NULL OR l.upstream = $3)
       ) t WHERE name > $1 ORDER BY name LIMIT $2`,
      [last, n, upstream ?? null],
    );
    return rows.map((r) => r.name);
  }

  touch(digest: string, now: number): void {
    this.pendingTouches.set(digest, now);
  }

  /**
   * Writes the batched last-pull times. A failure (database unreachable) is reported and the
   * batch kept for the next try: not recording a pull time never takes the server down.
   */
  async flush(): Promise<void> {
    if (this.pendingTouches.size === 0 || !this.open) return;
    const batch = [...this.pendingTouches].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [digest, at] of batch) this.flushing.set(digest, at);
    this.pendingTouches.clear();
    const digests = batch.map((b) => b[0]);
    const times = batch.map((b) => b[1]);
    try {
      await this.write(async (c) => {
        const args = [digests, times];
        const v = 'unnest($1::text[], $2::bigint[]) AS v(digest, at)';
        await c.query(`UPDATE blobs b SET last_pulled_at = GREATEST(b.last_pulled_at, v.at) FROM ${v} WHERE b.digest = v.digest`, args);
        await c.query(`UPDATE manifests m SET last_pulled_at = GREATEST(m.last_pulled_at, v.at) FROM ${v} WHERE m.digest = v.digest`, args);
        // Parents of a pulled index child (their recency is the unit's).
        await c.query(
          `UPDATE manifests m SET last_pulled_at = GREATEST(m.last_pulled_at, p.at) FROM (
             SELECT regcache_digest_text(pd.digest) AS manifest, max(v.at) AS at FROM ${v}
             JOIN manifests c ON c.digest = v.digest JOIN digest_ids cd ON cd.digest = regcache_digest_key(v.digest)
             JOIN manifest_refs r ON r.child_id = cd.id AND r.kind = 1 JOIN digest_ids pd ON pd.id = r.manifest_id GROUP BY pd.digest
           ) p WHERE m.digest = p.manifest`,
          args,
        );
      });
    } catch (err) {
      for (const [digest, at] of batch) if (!this.pendingTouches.has(digest)) this.pendingTouches.set(digest, at);
      this.opts.onError?.(err as Error);
    } finally {
      for (const [digest, at] of batch) if (this.flushing.get(digest) === at) this.flushing.delete(digest);
    }
  }

  totals(): StoreTotals {
    return this.current;
  }

  unflushedPull(digest: string): number | undefined {
    return this.pendingTouches.get(digest) ?? this.flushing.get(digest);
  }

  async evictionCandidates(opts: { before: number; limit: number; after?: { recency: number; digest: string } }): Promise<EvictionUnit[]> {
    const after = opts.after ?? { recency: -1, digest: '' };
    const args = [opts.before, after.recency, after.digest, opts.limit];
    const tops = await this.q.query<{ digest: string; recency: number }>(
      `SELECT digest, last_pulled_at AS recency FROM manifests
       WHERE parents = 0 AND last_pulled_at < $1 AND (last_pulled_at, digest) > ($2, $3)
         AND NOT EXISTS (SELECT 1 FROM repo_links h WHERE h.upstream = 'hosted' AND h.digest = manifests.digest)
       ORDER BY last_pulled_at, digest LIMIT $4`, args,
    );
    const loose = await this.q.query<{ digest: string; recency: number; size: number }>(
      `SELECT digest, last_pulled_at AS recency, size FROM blobs
       WHERE refs = 0 AND last_pulled_at < $1 AND (last_pulled_at, digest) > ($2, $3)
         AND NOT EXISTS (SELECT 1 FROM repo_links h WHERE h.upstream = 'hosted' AND h.digest = blobs.digest)
       ORDER BY last_pulled_at, digest LIMIT $4`, args,
    );
    const merged = oldestFirst(tops.rows, loose.rows, opts.limit);
    // Units in this batch are planned as if removed in order: a child or blob shared by two
    // of them goes with the second.
    const gone = new Set<string>();
    const units: EvictionUnit[] = [];
    for (const c of merged) {
      if (c.kind === 'blob') units.push({ kind: 'blob', digest: c.digest, recency: c.recency, manifests: [], blobs: [c.digest], bytes: c.size });
      else units.push(await this.planImage(c.digest, c.recency, gone));
    }
    return units;
  }

  /** The manifests and blobs that go with a top-level manifest, given what already goes. */
  private async planImage(digest: string, recency: number, gone: Set<string>): Promise<EvictionUnit> {
    const q = this.q;
    const unit: EvictionUnit = { kind: 'image', digest, recency, manifests: [], blobs: [], bytes: 0 };
    // Hosted content is never a cache retention unit, nor part of one.
    const isHosted = async (d: string): Promise<boolean> =>
      (await q.query("SELECT 1 FROM repo_links WHERE upstream = 'hosted' AND digest = $1", [d])).rowCount! > 0;
    const usersOf = async (d: string, kind?: 'manifest'): Promise<string[]> =>
      (await q.query<{ manifest: string }>(
        `SELECT regcache_digest_text(p.digest) AS manifest FROM manifest_refs r JOIN digest_ids p ON p.id = r.manifest_id
         WHERE r.child_id = ${idOf('$1')}${kind ? ' AND r.kind = 1' : ''}`, [d],
      )).rows.map((r) => r.manifest);
    const stack = [digest];
    const seen = new Set<string>();
    while (stack.length) {
      const m = stack.pop()!;
      if (seen.has(m)) continue;
      seen.add(m);
      if (m !== digest && !(await usersOf(m, 'manifest')).every((p) => gone.has(p))) continue;
      if (m !== digest && await isHosted(m)) continue;
      const row = (await q.query<{ size: number }>('SELECT size FROM manifests WHERE digest = $1', [m])).rows[0];
      if (!row) continue;
      gone.add(m);
      unit.manifests.push(m);
      unit.bytes += row.size;
      const kids = await q.query<{ digest: string }>(
        `SELECT m.digest FROM manifest_refs r JOIN digest_ids c ON c.id = r.child_id JOIN manifests m ON m.digest = regcache_digest_text(c.digest)
         WHERE r.manifest_id = ${idOf('$1')} AND r.kind = 1`, [m],
      );
      for (const k of kids.rows) stack.push(k.digest);
    }
    for (const m of unit.manifests) {
      const refs = await q.query<{ digest: string; size: number | null }>(
        `SELECT regcache_digest_text(c.digest) AS digest, b.size FROM manifest_refs r JOIN digest_ids c ON c.id = r.child_id
         LEFT JOIN blobs b ON b.digest = regcache_digest_text(c.digest) WHERE r.manifest_id = ${idOf('$1')} AND r.kind = 0`, [m],
      );
      for (const b of refs.rows) {
        if (b.size === null || gone.has(b.digest) || await isHosted(b.digest)) continue;
        if (!(await usersOf(b.digest)).every((u) => gone.has(u))) continue;
        gone.add(b.digest);
        unit.blobs.push(b.digest);
        unit.bytes += b.size;
      }
    }
    return unit;
  }

  async removeUnits(units: EvictionUnit[], keep: (digest: string) => boolean, kept?: (unit: string) => void, watchPins?: () => PinWatch): Promise<string[]> {
    const keptUnits: string[] = [];
    // keep() is asked before each DELETE, which runs a round trip later: a blob pinned
    // meanwhile (a pull that read the row, a push that checked it) gets row and links back.
    const watch = watchPins?.();
    try {
      return await this.removeRows(units, keep, keptUnits, watch);
    } finally {
      watch?.end();
      for (const u of keptUnits) kept?.(u);
    }
  }

  private async removeRows(units: EvictionUnit[], keep: (digest: string) => boolean, keptUnits: string[], watch: PinWatch | undefined): Promise<string[]> {
    const removed = await this.write(async (c) => {
      keptUnits.length = 0;
      await lockDigestIds(c);
      const removed: Array<{ digest: string; size: number; recency: number; links: RepoRef[] }> = [];
      for (const u of units) {
        // Parents first: deleting a manifest's refs is what makes its children top-level.
        for (const m of u.manifests) {
          // A pull of the image written since it was planned (here or by another replica) keeps it, and so its children and blobs.
          // Never what a hosted repository linked since the unit was planned (a push, a mount).
          const del = m === u.digest
            ? await c.query(`DELETE FROM manifests WHERE digest = $1 AND parents = 0 AND last_pulled_at <= $2 AND ${notHosted('$1')}`, [m, u.recency])
            : await c.query(`DELETE FROM manifests WHERE digest = $1 AND parents = 0 AND ${notHosted('$1')}`, [m]);
          if ((del.rowCount ?? 0) === 0) {
            if (m === u.digest) keptUnits.push(m);
            continue;
          }
          await c.query(`DELETE FROM manifest_refs WHERE manifest_id = ${idOf('$1')}`, [m]);
          await c.query('DELETE FROM tags WHERE digest = $1', [m]);
          await c.query('DELETE FROM repo_links WHERE digest = $1', [m]);
        }
      }
      for (const u of units) {
        for (const b of u.blobs) {
          if (keep(b)) {
            if (u.kind === 'blob') keptUnits.push(b);
            continue;
          }
          // A manifest committed meanwhile (here or on another replica) may reference it again;
          // a loose blob unit pulled since it was planned stays.
          const del = u.kind === 'blob'
            ? await c.query<{ size: number; recency: number }>(
              `DELETE FROM blobs WHERE digest = $1 AND refs = 0 AND last_pulled_at <= $2 AND ${unreferenced('$1')} AND ${notHosted('$1')}
               RETURNING size, last_pulled_at AS recency`, [b, u.recency])
            : await c.query<{ size: number; recency: number }>(
              `DELETE FROM blobs WHERE digest = $1 AND refs = 0 AND ${unreferenced('$1')} AND ${notHosted('$1')} RETURNING size, last_pulled_at AS recency`, [b]);
          const row = del.rows[0];
          if (!row) {
            if (u.kind === 'blob') keptUnits.push(b);
            continue;
          }
          const links = await c.query<RepoRef>('DELETE FROM repo_links WHERE digest = $1 RETURNING upstream, repo', [b]);
          removed.push({ digest: b, size: Number(row.size), recency: Number(row.recency), links: links.rows });
        }
      }
      return removed;
    });
    const back = removed.filter((r) => keep(r.digest) || watch?.pinned(r.digest));
    if (back.length) {
      await this.write(async (c) => {
        // As the removal: a manifest naming the blob commits before or after, never alongside
        // (each insert would miss the other's uncommitted row, and the blob's refs be short).
        await lockDigestIds(c);
        for (const r of back) {
          await c.query('INSERT INTO blobs (digest, size, created_at, last_pulled_at) VALUES ($1, $2, $3, $3) ON CONFLICT (digest) DO NOTHING', [r.digest, r.size, r.recency]);
          for (const l of r.links) await linkWith(c, l, r.digest);
        }
      });
      for (const r of back) if (units.some((u) => u.kind === 'blob' && u.digest === r.digest)) keptUnits.push(r.digest);
    }
    return removed.filter((r) => !back.includes(r)).map((r) => r.digest);
  }

  async namesOf(digests: string[]): Promise<DigestNames[]> {
    const out: DigestNames[] = [];
    for (const digest of digests) {
      const tags = await this.q.query<{ name: string }>(
        `SELECT (upstream || '/' || repo || ':' || tag) COLLATE "C" AS name FROM tags WHERE digest = $1 ORDER BY name`, [digest],
      );
      let names = tags.rows.map((r) => r.name);
      if (names.length === 0) {
        const repos = await this.q.query<{ name: string }>(`SELECT (upstream || '/' || repo) COLLATE "C" AS name FROM repo_links WHERE digest = $1 ORDER BY name`, [digest]);
        names = repos.rows.map((r) => r.name);
      }
      out.push({ digest, names });
    }
    return out;
  }

  async getState<T>(ns: string, key: string): Promise<T | undefined> {
    const { rows } = await this.q.query<{ value: T }>('SELECT value FROM state WHERE ns = $1 AND key = $2', [ns, key]);
    return rows[0]?.value;
  }

  async putState(ns: string, key: string, value: unknown): Promise<void> {
    await this.q.query(
      'INSERT INTO state (ns, key, value) VALUES ($1, $2, $3::jsonb) ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value',
      [ns, key, JSON.stringify(value)],
    );
  }

  async deleteState(ns: string, key: string): Promise<void> {
    await this.q.query('DELETE FROM state WHERE ns = $1 AND key = $2', [ns, key]);
  }

  async listState<T>(ns: string): Promise<Array<{ key: string; value: T }>> {
    const { rows } = await this.q.query<{ key: string; value: T }>('SELECT key, value FROM state WHERE ns = $1 ORDER BY key', [ns]);
    return rows;
  }

  /** Open, and the last query of the interval reached the database. */
  healthy(): boolean {
    return this.open && this.reachable;
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
    if (this.open) await this.flush();
    this.open = false;
    await this.pool.end().catch(() => undefined);
  }
}

/**
 * A removal deletes references, and with the last one a digest (trigger refs_del, which takes
 * this lock anyway): taken first, before any row lock, it waits for transactions adding
 * references instead of deadlocking with them.
 */
function lockDigestIds(q: Q): Promise<unknown> {
  return q.query('SELECT pg_advisory_xact_lock($1)', [DIGEST_IDS_LOCK]);
}

function linkWith(q: Q, repo: RepoRef, digest: string): Promise<unknown> {
  return q.query('INSERT INTO repo_links (upstream, repo, digest) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [repo.upstream, repo.repo, digest]);
}
