/**
 * Schema v3 of the SQLite index stores manifest references by interned digest (digest_ids,
 * src/store/sqlite/digest-sql.ts). An index written by v2 (references as two digest strings)
 * migrates in place, in one transaction, and then answers every query exactly as an index
 * filled through the v3 store with the same content; a failed migration leaves it as it was.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { digestText } from '../../src/store/sqlite/digest-sql.js';
import { MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { SqliteMetadataStore } from '../../src/store/sqlite/sqlite-metadata-store.js';
import { fakeDigest } from '../contract/metadata-store.contract.js';
import { expectMigratedAsWritten, writeScene, writeV2Rows, type SceneRows, type V2Rows } from '../contract/references-scene.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempFile = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'regcache-refs-'));
  dirs.push(dir);
  return join(dir, 'index.db');
};

/**
 * The v1 and v2 schemas are the first two migrations; applied migrations never change (an
 * index in the field was written by exactly this text), so the fixture is pinned by hash.
 */
it('the v1 and v2 migrations are unchanged, so a v2 fixture built from them is what v2 wrote', () => {
  expect(MIGRATIONS.length).toBeGreaterThanOrEqual(3);
  expect(createHash('sha256').update(MIGRATIONS.slice(0, 2).join('\0')).digest('hex'))
    .toBe('5485dacd9e59f32143b5fee2bd87edb87dca1c801a61dbf6170c0a7ccf1498d1');
});

/** Writes the scene into a v2 index with the statements the v2 store ran. */
async function writeV2(file: string): Promise<void> {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.transaction(() => {
    for (const [v, sql] of MIGRATIONS.slice(0, 2).entries()) {
      db.exec(sql);
      db.pragma(`user_version = ${v + 1}`);
    }
  })();
  await writeV2Rows((sql, params) => void db.prepare(sql).run(...params));
  db.close();
}

/** The rows a second connection reads: counts kept by triggers, references decoded, interned digests. */
function rows(file: string): SceneRows & { version: number } {
  const db = new Database(file, { readonly: true });
  try {
    return {
      version: db.pragma('user_version', { simple: true }) as number,
      refs: db.prepare('SELECT digest, refs FROM blobs ORDER BY digest').all() as SceneRows['refs'],
      parents: db.prepare('SELECT digest, parents FROM manifests ORDER BY digest').all() as SceneRows['parents'],
      references: db.prepare(`SELECT ${digestText('p.digest')} AS manifest, ${digestText('c.digest')} AS child, r.kind FROM manifest_refs r
                              JOIN digest_ids p ON p.id = r.manifest_id JOIN digest_ids c ON c.id = r.child_id ORDER BY 1, 2`).all() as SceneRows['references'],
      interned: db.prepare(`SELECT count(*) AS total, coalesce(sum(id NOT IN (SELECT manifest_id FROM manifest_refs UNION SELECT child_id FROM manifest_refs)), 0) AS unreferenced
                            FROM digest_ids`).get() as SceneRows['interned'],
    };
  } finally {
    db.close();
  }
}

it('a v2 index migrates in place and answers every query as an index written by v3 does, before and after evictions and GC', async () => {
  const v2 = tempFile();
  await writeV2(v2);
  const before = new Database(v2, { readonly: true });
  const v2Rows: V2Rows = {
    references: before.prepare('SELECT manifest, child, kind FROM manifest_refs ORDER BY 1, 2').all() as V2Rows['references'],
    refs: before.prepare('SELECT digest, refs FROM blobs ORDER BY digest').all() as V2Rows['refs'],
    parents: before.prepare('SELECT digest, parents FROM manifests ORDER BY digest').all() as V2Rows['parents'],
  };
  before.close();
  const migrated = new SqliteMetadataStore(v2, { touchFlushMs: 60_000 });
  const v3 = tempFile();
  const written = new SqliteMetadataStore(v3, { touchFlushMs: 60_000 });
  try {
    await migrated.init();
    expect(rows(v2).version).toBe(MIGRATIONS.length);
    await written.init();
    await writeScene(written);
    await expectMigratedAsWritten(v2Rows, { store: migrated, rows: async () => rows(v2) }, { store: written, rows: async () => rows(v3) });
  } finally {
    await migrated.close();
    await written.close();
  }
});

it('an empty v2 index migrates, and a migration that fails leaves the v2 index as it was', async () => {
  const empty = tempFile();
  const db0 = new Database(empty);
  for (const sql of MIGRATIONS.slice(0, 2)) db0.exec(sql);
  db0.pragma('user_version = 2');
  db0.close();
  const s0 = new SqliteMetadataStore(empty);
  await s0.init();
  expect(rows(empty)).toMatchObject({ version: MIGRATIONS.length, references: [], interned: { total: 0, unreferenced: 0 } });
  await s0.close();

  const file = tempFile();
  await writeV2(file);
  // Something in the way of one of its statements: the transaction rolls all of it back.
  const db = new Database(file);
  db.exec('CREATE TABLE manifest_refs_v2 (x)');
  db.close();
  const s = new SqliteMetadataStore(file);
  await expect(s.init()).rejects.toThrow(/manifest_refs_v2/);
  await s.close();
  const check = new Database(file, { readonly: true });
  expect(check.pragma('user_version', { simple: true })).toBe(2);
  expect(check.prepare('SELECT count(*) AS n FROM manifest_refs WHERE kind = ?').get('blob')).toEqual({ n: 10 });
  expect(check.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name IN ('digest_ids', 'refs_ins', 'refs_del', 'blobs_refs', 'manifests_parents')").get()).toEqual({ n: 4 });
  check.close();
});

it('the pages the migration frees are given back: a large v2 index is rewritten once, smaller', async () => {
  const file = tempFile();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  for (const sql of MIGRATIONS.slice(0, 2)) db.exec(sql);
  db.pragma('user_version = 2');
  const ref = db.prepare("INSERT INTO manifest_refs (manifest, child, kind) VALUES (?, ?, 'blob')");
  db.transaction(() => {
    for (let i = 0; i < 50; i++) for (let j = 0; j < 400; j++) ref.run(fakeDigest(`manifest ${i}`), fakeDigest(`manifest ${i} layer ${j}`));
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const before = statSync(file).size;
  const s = new SqliteMetadataStore(file);
  await s.init();
  await s.close();
  const after = new Database(file, { readonly: true });
  expect(after.pragma('freelist_count', { simple: true })).toBe(0);
  expect(after.prepare('SELECT count(*) AS n FROM manifest_refs').get()).toEqual({ n: 20_000 });
  after.close();
  // 20,000 references of distinct digests: ~350 bytes each in v2, ~120 in v3.
  expect(statSync(file).size).toBeLessThan(before / 2);
});
