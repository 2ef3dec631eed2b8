/**
 * A large synthetic store for the admission-at-scale scenario: `blobs` blob files and
 * `manifests` manifests each referencing blobs/manifests of them, written straight into the
 * first-release SQLite schema (the server migrates it at start, as it would an old store).
 * Bench-only: it writes the schema the store owns, to build in seconds what would take hours
 * of pulls.
 *
 * Blob sizes (`blobSizes`):
 * - 'mixed' (the scenario's default): sizes spread log-uniformly from 4 KiB to 64 MiB (median
 *   512 KiB, mean ~5.9 MiB), as layers and configs are, so the store is ~1.7 TB at 300k blobs
 *   and 40 cold 4 MiB fills are a small part of it, as in a deployed cache. The files are
 *   sparse (1 KiB of random bytes, then a hole up to the size): the digest is of those 1 KiB,
 *   not of the file. The scenario never GETs these blobs (only manifests), and a start
 *   checks sizes, not content.
 * - 'tiny' (`--scale-blob-sizes tiny`): every blob 1 KiB of real content named by its digest.
 *   The store is then ~300 MB, so 40 cold 4 MiB fills turn over half of it: a cache thrashing
 *   at ~1,000 times a deployed cache's eviction rate (~190k blob files deleted in a minute).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../../src/store/sqlite/schema.js';

export interface SyntheticStore {
  blobBytes: number;
  manifestBytes: number;
  /** Manifests pulled most recently (never evicted first): warm hits are timed on these. */
  hot: string[];
  repo: string;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export type BlobSizes = 'mixed' | 'tiny';

const MIN_MIXED = 4 * 1024;
const MAX_MIXED = 64 * 1024 * 1024;

/** Blob i's size: 'mixed' spreads them log-uniformly (a fixed low-discrepancy sequence, so every seed is alike). */
export function syntheticBlobSize(i: number, sizes: BlobSizes): number {
  if (sizes === 'tiny') return 1024;
  const u = (i * 0.6180339887498949) % 1;
  return Math.round(MIN_MIXED * Math.pow(MAX_MIXED / MIN_MIXED, u));
}

export function seedSyntheticStore(dataDir: string, opts: { blobs: number; manifests: number; blobSizes: BlobSizes; now: number; hot: number }): SyntheticStore {
  mkdirSync(join(dataDir, 'tmp'), { recursive: true });
  const db = new Database(join(dataDir, 'index.db'));
  db.pragma('journal_mode = WAL');
  db.exec(MIGRATIONS[0]!);
  db.pragma('user_version = 1');
  const upstream = 'bench.upstream';
  const repo = 'synthetic/app';
  const insBlob = db.prepare('INSERT INTO blobs (digest, size, created_at, last_pulled_at) VALUES (?, ?, ?, ?)');
  const insManifest = db.prepare('INSERT INTO manifests (digest, media_type, size, body, created_at, last_pulled_at) VALUES (?, ?, ?, ?, ?, ?)');
  const insRef = db.prepare("INSERT OR IGNORE INTO manifest_refs (manifest, child, kind) VALUES (?, ?, 'blob')");
  const insLink = db.prepare('INSERT OR IGNORE INTO repo_links (upstream, repo, digest) VALUES (?, ?, ?)');
  const insTag = db.prepare('INSERT INTO tags (upstream, repo, tag, digest, validated_at) VALUES (?, ?, ?, ?, ?)');
  const digests: string[] = [];
  const sizes: number[] = [];
  const made = new Set<string>();
  let blobBytes = 0;
  db.transaction(() => {
    for (let i = 0; i < opts.blobs; i++) {
      const bytes = randomBytes(1024);
      const size = syntheticBlobSize(i, opts.blobSizes);
      const hex = sha256(bytes);
      const dir = join(dataDir, 'blobs', 'sha256', hex.slice(0, 2));
      if (!made.has(dir)) {
        mkdirSync(dir, { recursive: true });
        made.add(dir);
      }
      writeFileSync(join(dir, hex), bytes);
      if (size > bytes.length) truncateSync(join(dir, hex), size);
      const d = `sha256:${hex}`;
      // Older blobs first; the hot manifests' blobs are the most recent.
      insBlob.run(d, size, opts.now - 86_400_000, opts.now - 86_400_000 + i);
      insLink.run(upstream, repo, d);
      digests.push(d);
      sizes.push(size);
      blobBytes += size;
    }
  })();
  const per = Math.max(1, Math.floor(opts.blobs / opts.manifests));
  const hot: string[] = [];
  let manifestBytes = 0;
  db.transaction(() => {
    for (let m = 0; m < opts.manifests; m++) {
      const layers = digests.slice(m * per, (m + 1) * per).map((digest, k) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: sizes[m * per + k]! }));
      const body = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: layers[0]!.digest, size: layers[0]!.size }, layers,
      }));
      const d = `sha256:${sha256(body)}`;
      const pulled = opts.now - 86_400_000 + m * per + per;
      insManifest.run(d, 'application/vnd.oci.image.manifest.v1+json', body.length, body, pulled, pulled);
      for (const l of layers) insRef.run(d, l.digest);
      insLink.run(upstream, repo, d);
      insTag.run(upstream, repo, `t${m}`, d, opts.now);
      manifestBytes += body.length;
      if (m >= opts.manifests - opts.hot) hot.push(d);
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return { blobBytes, manifestBytes, hot, repo };
}
