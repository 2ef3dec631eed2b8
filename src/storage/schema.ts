/**
 * The SQLite schema of the index (documented in docs/storage.md). Versioned through
 * PRAGMA user_version; each migration runs once, in a transaction.
 */
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE blobs (
    digest          TEXT PRIMARY KEY,
    size            INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    last_pulled_at  INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE manifests (
    digest          TEXT PRIMARY KEY,
    media_type      TEXT NOT NULL,
    size            INTEGER NOT NULL,
    body            BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    last_pulled_at  INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- What a manifest references: kind 'blob' (config, layers) or 'manifest' (index children).
  CREATE TABLE manifest_refs (
    manifest  TEXT NOT NULL,
    child     TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (manifest, child)
  ) WITHOUT ROWID;
  CREATE INDEX manifest_refs_child ON manifest_refs (child);

  -- Tag -> digest per upstream repository; validated_at is when upstream last confirmed it.
  CREATE TABLE tags (
    upstream      TEXT NOT NULL,
    repo          TEXT NOT NULL,
    tag           TEXT NOT NULL,
    digest        TEXT NOT NULL,
    validated_at  INTEGER NOT NULL,
    PRIMARY KEY (upstream, repo, tag)
  ) WITHOUT ROWID;
  CREATE INDEX tags_digest ON tags (digest);

  -- Repository scope: a digest is served under upstream/repo only when linked here.
  CREATE TABLE repo_links (
    upstream  TEXT NOT NULL,
    repo      TEXT NOT NULL,
    digest    TEXT NOT NULL,
    PRIMARY KEY (upstream, repo, digest)
  ) WITHOUT ROWID;
  CREATE INDEX repo_links_digest ON repo_links (digest);
  `,
];
