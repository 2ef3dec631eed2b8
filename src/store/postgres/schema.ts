/**
 * The PostgreSQL schema of the metadata store: the SQLite one (store/sqlite/schema.ts) in
 * PostgreSQL's dialect, plus the tables replicas coordinate through (leases). Each entry runs
 * once, in a transaction, recorded in regcache_migrations (migrate.ts).
 *
 * Text keys are COLLATE "C" so that paging orders by bytes, as SQLite does, whatever the
 * database's default collation is. Times are milliseconds since the epoch (BIGINT).
 */
/**
 * The advisory lock that orders interning against forgetting (v3): a transaction adding
 * references holds it shared, the trigger deleting digests no reference names takes it
 * exclusively, so no digest is forgotten while another replica's uncommitted references name
 * it (a reference to a forgotten id would name nothing). The totals row happens to serialize
 * these writers as well; this lock does not rely on it.
 */
export const DIGEST_IDS_LOCK = 7_261_533_002;

/**
 * regcache_refs_del() (statement-level, over the deleted references): counts each blob and
 * child manifest down (`less` gives the new value of a count), then forgets digests no
 * reference names any more. v3 subtracts; v4 never goes below zero.
 */
function refsDel(less: (count: string) => string): string {
  return `
  CREATE OR REPLACE FUNCTION regcache_refs_del() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE blobs b SET refs = ${less('b.refs')} FROM (
      SELECT regcache_digest_text(d.digest) AS digest, count(*) AS n FROM old_refs r JOIN digest_ids d ON d.id = r.child_id GROUP BY d.digest
    ) n WHERE b.digest = n.digest;
    UPDATE manifests m SET parents = ${less('m.parents')} FROM (
      SELECT regcache_digest_text(d.digest) AS digest, count(*) AS n FROM old_refs r JOIN digest_ids d ON d.id = r.child_id WHERE r.kind = 1 GROUP BY d.digest
    ) n WHERE m.digest = n.digest;
    -- Waits for transactions adding references (they hold the lock shared); the DELETE then
    -- sees what they committed.
    PERFORM pg_advisory_xact_lock(${DIGEST_IDS_LOCK});
    DELETE FROM digest_ids d WHERE d.id IN (SELECT manifest_id FROM old_refs UNION SELECT child_id FROM old_refs)
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.manifest_id = d.id)
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child_id = d.id);
    RETURN NULL;
  END $$;`;
}

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
  // v3: references by interned digest, as in the SQLite index (store/sqlite/schema.ts v3): each
  // digest a reference names is stored once in digest_ids, keyed by a tag byte (1: sha256,
  // 2: sha512, 0: any other string as UTF-8) and the raw hash; a reference is three integers.
  // Counts are kept per statement (transition tables), not per reference row.
  `
  -- STABLE (convert_to/convert_from are) and not STRICT, so that the planner inlines them;
  -- lower-case hex is checked with ltrim (a regular expression costs ten times more).
  CREATE FUNCTION regcache_digest_key(d text) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN length(d) = (CASE left(d, 7) WHEN 'sha256:' THEN 71 WHEN 'sha512:' THEN 135 END)
                     AND ltrim(substr(d, 8), '0123456789abcdef') = ''
                THEN decode(CASE left(d, 7) WHEN 'sha256:' THEN '01' ELSE '02' END, 'hex') || decode(substr(d, 8), 'hex')
                ELSE decode('00', 'hex') || convert_to(d, 'UTF8') END
  $$;
  CREATE FUNCTION regcache_digest_text(k bytea) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE get_byte(k, 0) WHEN 1 THEN 'sha256:' || encode(substr(k, 2), 'hex')
                               WHEN 2 THEN 'sha512:' || encode(substr(k, 2), 'hex')
                               ELSE convert_from(substr(k, 2), 'UTF8') END
  $$;

  -- Exactly the digests manifest_refs names: added with a first reference, removed with the last.
  CREATE TABLE digest_ids (
    id      INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    digest  BYTEA NOT NULL UNIQUE
  );
  INSERT INTO digest_ids (digest)
    SELECT regcache_digest_key(d) FROM (SELECT manifest FROM manifest_refs UNION SELECT child FROM manifest_refs) t(d) ORDER BY 1;

  ALTER TABLE manifest_refs RENAME TO manifest_refs_v2;
  ALTER INDEX manifest_refs_child RENAME TO manifest_refs_v2_child;
  ALTER TABLE manifest_refs_v2 RENAME CONSTRAINT manifest_refs_pkey TO manifest_refs_v2_pkey;
  -- kind 0: blob (config, layers), 1: manifest (index children).
  CREATE TABLE manifest_refs (
    manifest_id  INTEGER NOT NULL,
    child_id     INTEGER NOT NULL,
    kind         SMALLINT NOT NULL CHECK (kind IN (0, 1)),
    PRIMARY KEY (manifest_id, child_id)
  );
  INSERT INTO manifest_refs (manifest_id, child_id, kind)
    SELECT m.id, c.id, (r.kind = 'manifest')::int FROM manifest_refs_v2 r
    JOIN digest_ids m ON m.digest = regcache_digest_key(r.manifest) JOIN digest_ids c ON c.digest = regcache_digest_key(r.child)
    ORDER BY 1, 2;
  DROP TABLE manifest_refs_v2;
  CREATE INDEX manifest_refs_child ON manifest_refs (child_id, kind, manifest_id);

  CREATE OR REPLACE FUNCTION regcache_refs_ins() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE blobs b SET refs = b.refs + n.n FROM (
      SELECT regcache_digest_text(d.digest) AS digest, count(*) AS n FROM new_refs r JOIN digest_ids d ON d.id = r.child_id GROUP BY d.digest
    ) n WHERE b.digest = n.digest;
    UPDATE manifests m SET parents = m.parents + n.n FROM (
      SELECT regcache_digest_text(d.digest) AS digest, count(*) AS n FROM new_refs r JOIN digest_ids d ON d.id = r.child_id WHERE r.kind = 1 GROUP BY d.digest
    ) n WHERE m.digest = n.digest;
    RETURN NULL;
  END $$;
${refsDel((count) => `${count} - n.n`)}
  CREATE TRIGGER refs_ins AFTER INSERT ON manifest_refs REFERENCING NEW TABLE AS new_refs FOR EACH STATEMENT EXECUTE FUNCTION regcache_refs_ins();
  CREATE TRIGGER refs_del AFTER DELETE ON manifest_refs REFERENCING OLD TABLE AS old_refs FOR EACH STATEMENT EXECUTE FUNCTION regcache_refs_del();
  CREATE OR REPLACE FUNCTION regcache_blob_refs() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    NEW.refs := (SELECT count(*) FROM manifest_refs r JOIN digest_ids d ON d.id = r.child_id WHERE d.digest = regcache_digest_key(NEW.digest));
    RETURN NEW;
  END $$;
  CREATE OR REPLACE FUNCTION regcache_manifest_parents() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    NEW.parents := (SELECT count(*) FROM manifest_refs r JOIN digest_ids d ON d.id = r.child_id
                    WHERE d.digest = regcache_digest_key(NEW.digest) AND r.kind = 1);
    RETURN NEW;
  END $$;
  `,
  // v4: counts never go below zero. A blob (or child manifest) row inserted while another
  // replica's transaction adds a reference to it commits with that reference uncounted (each
  // transaction misses the other's row); when the reference went, the count went to -1 and the
  // row was never loose again (never evicted: a disk that only fills). Clamped, the count is
  // exact again once the last reference is gone; meanwhile the eviction DELETE's own check
  // (no reference at all) keeps a row that is still referenced.
  `
${refsDel((count) => `greatest(${count} - n.n, 0)`)}
  UPDATE blobs SET refs = 0 WHERE refs < 0;
  UPDATE manifests SET parents = 0 WHERE parents < 0;
  `,
];
