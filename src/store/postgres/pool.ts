/**
 * A pg connection pool as regcache uses it: BIGINT columns (sizes, times in ms, counts) come
 * back as numbers, not strings (every value regcache stores is far below 2^53), and a broken
 * idle connection is reported instead of crashing the process.
 */
import pg from 'pg';

const INT8_OID = 20;

const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export interface PoolOptions {
  /** postgres://user@host:port/db; unset: the libpq environment (PGHOST, PGUSER, PGPASSWORD, ...). */
  url?: string | undefined;
  max?: number;
  onError?: (err: Error) => void;
}

export function createPool(opts: PoolOptions): pg.Pool {
  const config: pg.PoolConfig = { max: opts.max ?? 10, types, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 };
  if (opts.url) config.connectionString = opts.url;
  const pool = new pg.Pool(config);
  pool.on('error', (err) => opts.onError?.(err));
  return pool;
}

/** A URL with its password replaced, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
