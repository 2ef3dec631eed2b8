/**
 * The SQLite schema of the metadata store (documented in docs/storage.md). Versioned
 * through PRAGMA user_version; each migration runs once, in a transaction.
 */
import { digestKey, digestText } from './digest-sql.js';

/** The digest text of an interned id, for triggers. */
const textOf = (id: string): string => `(SELECT ${digestText('digest')} FROM digest_ids WHERE id = ${id})`;

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
  // v2: O(1) totals and bounded, ordered eviction; referrers; key-value state.
  `
  -- How many manifest_refs rows name this digest: blobs with refs = 0 are loose, manifests
  -- with parents = 0 are top-level (retention units). Kept by the triggers below.
  ALTER TABLE blobs ADD COLUMN refs INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE manifests ADD COLUMN parents INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE manifests ADD COLUMN subject TEXT;
  ALTER TABLE manifests ADD COLUMN artifact_type TEXT;
  UPDATE blobs SET refs = (SELECT count(*) FROM manifest_refs r WHERE r.child = blobs.digest);
  UPDATE manifests SET parents = (SELECT count(*) FROM manifest_refs r WHERE r.child = manifests.digest AND r.kind = 'manifest');
  CREATE INDEX blobs_loose ON blobs (last_pulled_at, digest) WHERE refs = 0;
  CREATE INDEX manifests_top ON manifests (last_pulled_at, digest) WHERE parents = 0;
  CREATE INDEX manifests_subject ON manifests (subject) WHERE subject IS NOT NULL;

  CREATE TRIGGER refs_ins AFTER INSERT ON manifest_refs BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE digest = NEW.child;
    UPDATE manifests SET parents = parents + 1 WHERE digest = NEW.child AND NEW.kind = 'manifest';
  END;
  CREATE TRIGGER refs_del AFTER DELETE ON manifest_refs BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE digest = OLD.child;
    UPDATE manifests SET parents = parents - 1 WHERE digest = OLD.child AND OLD.kind = 'manifest';
  END;
  CREATE TRIGGER blobs_refs AFTER INSERT ON blobs BEGIN
    UPDATE blobs SET refs = (SELECT count(*) FROM manifest_refs r WHERE r.child = NEW.digest) WHERE digest = NEW.digest;
  END;
  CREATE TRIGGER manifests_parents AFTER INSERT ON manifests BEGIN
    UPDATE manifests SET parents = (SELECT count(*) FROM manifest_refs r WHERE r.child = NEW.digest AND r.kind = 'manifest') WHERE digest = NEW.digest;
  END;

  -- Totals in O(1), kept in the same transaction as every insert and delete.
  CREATE TABLE totals (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    blobs           INTEGER NOT NULL,
    blob_bytes      INTEGER NOT NULL,
    manifests       INTEGER NOT NULL,
    manifest_bytes  INTEGER NOT NULL
  );
  INSERT INTO totals VALUES (1,
    (SELECT count(*) FROM blobs), (SELECT coalesce(sum(size), 0) FROM blobs),
    (SELECT count(*) FROM manifests), (SELECT coalesce(sum(size), 0) FROM manifests));
  CREATE TRIGGER totals_blob_ins AFTER INSERT ON blobs BEGIN
    UPDATE totals SET blobs = blobs + 1, blob_bytes = blob_bytes + NEW.size WHERE id = 1;
  END;
  CREATE TRIGGER totals_blob_del AFTER DELETE ON blobs BEGIN
    UPDATE totals SET blobs = blobs - 1, blob_bytes = blob_bytes - OLD.size WHERE id = 1;
  END;
  CREATE TRIGGER totals_manifest_ins AFTER INSERT ON manifests BEGIN
    UPDATE totals SET manifests = manifests + 1, manifest_bytes = manifest_bytes + NEW.size WHERE id = 1;
  END;
  CREATE TRIGGER totals_manifest_del AFTER DELETE ON manifests BEGIN
    UPDATE totals SET manifests = manifests - 1, manifest_bytes = manifest_bytes - OLD.size WHERE id = 1;
  END;

  -- Small JSON documents: upload sessions, job state.
  CREATE TABLE state (
    ns     TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (ns, key)
  ) WITHOUT ROWID;
  `,
  // v3: references by interned digest (issue 10 item 14). A v2 reference row held both
  // digests as text and was indexed again by child: ~350 bytes each. Now each digest a
  // reference names is stored once in digest_ids (raw hash bytes, digest-sql.ts), and a
  // reference is (manifest_id, child_id, kind) integers; kind 0 = blob, 1 = manifest.
  `
  DROP TRIGGER refs_ins;
  DROP TRIGGER refs_del;
  DROP TRIGGER blobs_refs;
  DROP TRIGGER manifests_parents;

  -- Exactly the digests manifest_refs names (as manifest or child): a digest is added with
  -- its first reference and removed with its last (trigger refs_del).
  CREATE TABLE digest_ids (
    id      INTEGER PRIMARY KEY,
    digest  BLOB NOT NULL UNIQUE
  );
  INSERT INTO digest_ids (digest)
    SELECT ${digestKey('d')} FROM (SELECT manifest AS d FROM manifest_refs UNION SELECT child FROM manifest_refs) ORDER BY 1;

  ALTER TABLE manifest_refs RENAME TO manifest_refs_v2;
  CREATE TABLE manifest_refs (
    manifest_id  INTEGER NOT NULL,
    child_id     INTEGER NOT NULL,
    kind         INTEGER NOT NULL CHECK (kind IN (0, 1)),
    PRIMARY KEY (manifest_id, child_id)
  ) WITHOUT ROWID;
  INSERT INTO manifest_refs (manifest_id, child_id, kind)
    SELECT m.id, c.id, r.kind = 'manifest' FROM manifest_refs_v2 r
    JOIN digest_ids m ON m.digest = ${digestKey('r.manifest')} JOIN digest_ids c ON c.digest = ${digestKey('r.child')}
    ORDER BY 1, 2;
  DROP TABLE manifest_refs_v2;
  CREATE INDEX manifest_refs_child ON manifest_refs (child_id, kind);

  CREATE TRIGGER refs_ins AFTER INSERT ON manifest_refs BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE digest = ${textOf('NEW.child_id')};
    UPDATE manifests SET parents = parents + 1 WHERE NEW.kind = 1 AND digest = ${textOf('NEW.child_id')};
  END;
  CREATE TRIGGER refs_del AFTER DELETE ON manifest_refs BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE digest = ${textOf('OLD.child_id')};
    UPDATE manifests SET parents = parents - 1 WHERE OLD.kind = 1 AND digest = ${textOf('OLD.child_id')};
    DELETE FROM digest_ids WHERE id IN (OLD.child_id, OLD.manifest_id)
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.manifest_id = digest_ids.id)
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child_id = digest_ids.id);
  END;
  -- A digest is interned only while a reference names it: nothing to count otherwise.
  CREATE TRIGGER blobs_refs AFTER INSERT ON blobs
  WHEN EXISTS (SELECT 1 FROM digest_ids WHERE digest = ${digestKey('NEW.digest')}) BEGIN
    UPDATE blobs SET refs = (SELECT count(*) FROM manifest_refs r JOIN digest_ids d ON d.id = r.child_id
      WHERE d.digest = ${digestKey('NEW.digest')}) WHERE digest = NEW.digest;
  END;
  CREATE TRIGGER manifests_parents AFTER INSERT ON manifests
  WHEN EXISTS (SELECT 1 FROM digest_ids WHERE digest = ${digestKey('NEW.digest')}) BEGIN
    UPDATE manifests SET parents = (SELECT count(*) FROM manifest_refs r JOIN digest_ids d ON d.id = r.child_id
      WHERE d.digest = ${digestKey('NEW.digest')} AND r.kind = 1) WHERE digest = NEW.digest;
  END;
  `,
];
