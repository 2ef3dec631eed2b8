/**
 * Brings a PostgreSQL database to the newest schema. Several replicas may start at once
 * against one database: a session-level advisory lock, taken before anything else (even the
 * CREATE TABLE IF NOT EXISTS of the version table, which races on the catalog otherwise),
 * makes them migrate one after the other; each migration is applied once, in its own
 * transaction with its version row.
 */
import type pg from 'pg';
import { MIGRATIONS } from './schema.js';

/** An arbitrary constant naming regcache's migration lock among the database's advisory locks. */
const MIGRATION_LOCK = 7_261_533_001;

/** Returns the schema version the database is at afterwards. */
export async function migrate(pool: pg.Pool): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS regcache_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
      for (;;) {
        const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM regcache_migrations');
        const current = rows[0]?.v ?? 0;
        if (current >= MIGRATIONS.length) return current;
        await client.query('BEGIN');
        try {
          await client.query(MIGRATIONS[current]!);
          await client.query('INSERT INTO regcache_migrations (version, applied_at) VALUES ($1, $2)', [current + 1, Date.now()]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}
