/**
 * The PostgreSQL schema of the metadata store: the SQLite one (store/sqlite/schema.ts) in
 * PostgreSQL's dialect, plus the tables replicas coordinate through (leases). Each entry runs
 * once, in a transaction, recorded in regcache_migrations (migrate.ts).
 *
 * Text keys are COLLATE "C" so that paging orders by bytes, as SQLite does, whatever the
 * database's default collation is. Times are milliseconds since the epoch (BIGINT).
 */
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE blobs (
    digest          TEXT COLLATE "C" PRIMARY KEY,
    size            BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_pulled_at  BIGINT NOT NULL,
    -- How many manifest_refs rows name this blob (0: loose, a retention unit of its own).
    refs            INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX blobs_loose ON blobs (last_pulled_at, digest) WHERE refs = 0;

  CREATE TABLE manifests (
    digest          TEXT COLLATE "C" PRIMARY KEY,
    media_type      TEXT NOT NULL,
    size            BIGINT NOT NULL,
    body            BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    last_pulled_at  BIGINT NOT NULL,
    subject         TEXT COLLATE "C",
    artifact_type   TEXT,
    -- How many index manifests name this one (0: top-level, a retention unit).
    parents         INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX manifests_top ON manifests (last_pulled_at, digest) WHERE parents = 0;
  CREATE INDEX manifests_subject ON manifests (subject) WHERE subject IS NOT NULL;

  CREATE TABLE manifest_refs (
    manifest  TEXT COLLATE "C" NOT NULL,
    child     TEXT COLLATE "C" NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (manifest, child)
  );
  CREATE INDEX manifest_refs_child ON manifest_refs (child);

  CREATE TABLE tags (
    upstream      TEXT COLLATE "C" NOT NULL,
    repo          TEXT COLLATE "C" NOT NULL,
    tag           TEXT COLLATE "C" NOT NULL,
    digest        TEXT COLLATE "C" NOT NULL,
    validated_at  BIGINT NOT NULL,
    PRIMARY KEY (upstream, repo, tag)
  );
  CREATE INDEX tags_digest ON tags (digest);

  CREATE TABLE repo_links (
    upstream  TEXT COLLATE "C" NOT NULL,
    repo      TEXT COLLATE "C" NOT NULL,
    digest    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (upstream, repo, digest)
  );
  CREATE INDEX repo_links_digest ON repo_links (digest);

  -- Reference counts kept by triggers, in the transaction of the write that changes them.
  CREATE FUNCTION regcache_refs_ins() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE digest = NEW.child;
    IF NEW.kind = 'manifest' THEN UPDATE manifests SET parents = parents + 1 WHERE digest = NEW.child; END IF;
    RETURN NULL;
  END $$;
  CREATE FUNCTION regcache_refs_del() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE digest = OLD.child;
    IF OLD.kind = 'manifest' THEN UPDATE manifests SET parents = parents - 1 WHERE digest = OLD.child; END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER refs_ins AFTER INSERT ON manifest_refs FOR EACH ROW EXECUTE FUNCTION regcache_refs_ins();
  CREATE TRIGGER refs_del AFTER DELETE ON manifest_refs FOR EACH ROW EXECUTE FUNCTION regcache_refs_del();
  CREATE FUNCTION regcache_blob_refs() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    NEW.refs := (SELECT count(*) FROM manifest_refs r WHERE r.child = NEW.digest);
    RETURN NEW;
  END $$;
  CREATE FUNCTION regcache_manifest_parents() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    NEW.parents := (SELECT count(*) FROM manifest_refs r WHERE r.child = NEW.digest AND r.kind = 'manifest');
    RETURN NEW;
  END $$;
  CREATE TRIGGER blobs_refs BEFORE INSERT ON blobs FOR EACH ROW EXECUTE FUNCTION regcache_blob_refs();
  CREATE TRIGGER manifests_parents BEFORE INSERT ON manifests FOR EACH ROW EXECUTE FUNCTION regcache_manifest_parents();

  -- Totals in O(1), kept in the same transaction as every insert and delete.
  CREATE TABLE totals (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    blobs           BIGINT NOT NULL,
    blob_bytes      BIGINT NOT NULL,
    manifests       BIGINT NOT NULL,
    manifest_bytes  BIGINT NOT NULL
  );
  INSERT INTO totals VALUES (1, 0, 0, 0, 0);
  CREATE FUNCTION regcache_totals() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_TABLE_NAME = 'blobs' THEN
      IF TG_OP = 'INSERT' THEN UPDATE totals SET blobs = blobs + 1, blob_bytes = blob_bytes + NEW.size WHERE id = 1;
      ELSE UPDATE totals SET blobs = blobs - 1, blob_bytes = blob_bytes - OLD.size WHERE id = 1; END IF;
    ELSE
      IF TG_OP = 'INSERT' THEN UPDATE totals SET manifests = manifests + 1, manifest_bytes = manifest_bytes + NEW.size WHERE id = 1;
      ELSE UPDATE totals SET manifests = manifests - 1, manifest_bytes = manifest_bytes - OLD.size WHERE id = 1; END IF;
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER totals_blobs AFTER INSERT OR DELETE ON blobs FOR EACH ROW EXECUTE FUNCTION regcache_totals();
  CREATE TRIGGER totals_manifests AFTER INSERT OR DELETE ON manifests FOR EACH ROW EXECUTE FUNCTION regcache_totals();

  -- Small JSON documents: upload sessions, job state.
  CREATE TABLE state (
    ns     TEXT COLLATE "C" NOT NULL,
    key    TEXT COLLATE "C" NOT NULL,
    value  JSONB NOT NULL,
    PRIMARY KEY (ns, key)
  );
  `,
  // v2: leases replicas coordinate through (fills of one digest, the leader).
  `
  CREATE TABLE leases (
    name        TEXT COLLATE "C" PRIMARY KEY,
    holder      TEXT NOT NULL,
    -- Where the holder can be reached (a fill's live stream), opaque to the store.
    address     TEXT NOT NULL DEFAULT '',
    expires_at  BIGINT NOT NULL
  );
  `,
];
