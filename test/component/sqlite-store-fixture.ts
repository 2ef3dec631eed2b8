/**
 * SqliteMetadataStores on index files in temporary directories, for component tests of the
 * SQLite store (the index worker, durable writes): open() as many as a test needs; every
 * one is closed and its directory removed after each test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { SqliteMetadataStore } from '../../src/store/sqlite/sqlite-metadata-store.js';

export type SqliteStoreOptions = ConstructorParameters<typeof SqliteMetadataStore>[1];

/** Call at the top of a test file; pull times are not flushed on a timer unless `opts` says so. */
export function sqliteStores(prefix: string): (opts?: SqliteStoreOptions) => Promise<{ s: SqliteMetadataStore; file: string }> {
  const dirs: string[] = [];
  const stores: SqliteMetadataStore[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return async (opts = {}) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    const file = join(dir, 'index.db');
    const s = new SqliteMetadataStore(file, { touchFlushMs: 60_000, ...opts });
    stores.push(s);
    await s.init();
    return { s, file };
  };
}
