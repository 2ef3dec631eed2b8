/**
 * Leases in the shared PostgreSQL database (table `leases`, store/postgres/schema.ts): the
 * fill of one digest (`fill:<digest>`) and the cluster's leader (`leader`). A lease names
 * its holder and where the holder can be reached, and expires unless renewed; times come
 * from the database's clock, so replicas' clocks may disagree.
 */
import type pg from 'pg';

export interface LeaseHolder {
  holder: string;
  address: string;
}

/** The database's now, in ms. */
const NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

export class Leases {
  constructor(private readonly pool: pg.Pool, readonly me: LeaseHolder, private readonly ttlMs: number) {}

  /** Takes `name` when it is free, expired or already ours; otherwise says who holds it. */
  async acquire(name: string): Promise<LeaseHolder | undefined> {
    const { rows } = await this.pool.query<LeaseHolder>(
      `INSERT INTO leases (name, holder, address, expires_at) VALUES ($1, $2, $3, ${NOW} + $4)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, address = excluded.address, expires_at = excluded.expires_at
         WHERE leases.expires_at < ${NOW} OR leases.holder = excluded.holder
       RETURNING holder`,
      [name, this.me.holder, this.me.address, this.ttlMs],
    );
    if (rows.length > 0) return undefined;
    const cur = await this.pool.query<LeaseHolder>(`SELECT holder, address FROM leases WHERE name = $1`, [name]);
    // Released between the two statements: try once more.
    return cur.rows[0] ?? (await this.acquire(name));
  }

  /** Takes `name` from `from` (a holder found unreachable) if it still holds it; true when now ours. */
  async takeOver(name: string, from: string): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE leases SET holder = $2, address = $3, expires_at = ${NOW} + $4 WHERE name = $1 AND holder = $5`,
      [name, this.me.holder, this.me.address, this.ttlMs, from],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** Extends every lease in `names` that is still ours; returns the names we no longer hold. */
  async renew(names: string[]): Promise<string[]> {
    if (names.length === 0) return [];
    const { rows } = await this.pool.query<{ name: string }>(
      `UPDATE leases SET expires_at = ${NOW} + $3 WHERE name = ANY($1::text[]) AND holder = $2 RETURNING name`,
      [names, this.me.holder, this.ttlMs],
    );
    const kept = new Set(rows.map((r) => r.name));
    return names.filter((n) => !kept.has(n));
  }

  async release(name: string): Promise<void> {
    await this.pool.query('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, this.me.holder]);
  }

  async releaseAll(): Promise<void> {
    await this.pool.query('DELETE FROM leases WHERE holder = $1', [this.me.holder]);
  }
}
