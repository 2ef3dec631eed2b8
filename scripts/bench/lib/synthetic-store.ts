/**
 * A large synthetic store for the admission-at-scale scenario: `blobs` small blob files
 * (real content, named by their digest) and `manifests` manifests each referencing
 * blobs/manifests of them, written straight into the first-release SQLite schema (the
 * server migrates it at start, as it would an old store). Bench-only: it writes the schema
 * the store owns, to build in seconds what would take hours of pulls.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
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

export function seedSyntheticStore(dataDir: string, opts: { blobs: number; manifests: number; blobSize: number; now: number; hot: number }): SyntheticStore {
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
  const made = new Set<string>();
  let blobBytes = 0;
  db.transaction(() => {
    for (let i = 0; i < opts.blobs; i++) {
      const bytes = randomBytes(opts.blobSize);
      const hex = sha256(bytes);
      const dir = join(dataDir, 'blobs', 'sha256', hex.slice(0, 2));
      if (!made.has(dir)) {
        mkdirSync(dir, { recursive: true });
        made.add(dir);
      }
      writeFileSync(join(dir, hex), bytes);
      const d = `sha256:${hex}`;
      // Older blobs first; the hot manifests' blobs are the most recent.
      insBlob.run(d, bytes.length, opts.now - 86_400_000, opts.now - 86_400_000 + i);
      insLink.run(upstream, repo, d);
      digests.push(d);
      blobBytes += bytes.length;
    }
  })();
  const per = Math.max(1, Math.floor(opts.blobs / opts.manifests));
  const hot: string[] = [];
  let manifestBytes = 0;
  db.transaction(() => {
    for (let m = 0; m < opts.manifests; m++) {
      const layers = digests.slice(m * per, (m + 1) * per).map((digest) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: opts.blobSize }));
      const body = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: layers[0]!.digest, size: opts.blobSize }, layers,
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
