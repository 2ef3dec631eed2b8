/**
 * WAL checkpoints run on a worker thread (src/store/sqlite/index-worker.ts), not inside a
 * commit on the event loop: the commits themselves never copy the WAL into index.db.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteMetadataStore } from '../../src/store/sqlite/sqlite-metadata-store.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

async function fill(store: SqliteMetadataStore, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await store.putBlob(`sha256:${i.toString(16).padStart(64, '0')}`, 1024 + i, { upstream: 'u', repo: `r/${i % 50}` }, Date.now());
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return cond();
}

describe('SQLite WAL checkpoints', () => {
  it('commits leave the WAL to the worker, which copies it into index.db', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regcache-ckpt-'));
    dirs.push(dir);
    const file = join(dir, 'index.db');
    // A long interval first: 20,000 commits (far past SQLite's 1,000-page automatic threshold) do not touch index.db.
    const store = new SqliteMetadataStore(file, { checkpointMs: 60_000 });
    await store.init();
    const before = statSync(file).size;
    await fill(store, 20_000);
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(4 * 1024 * 1024);
    expect(statSync(file).size).toBe(before);
    await store.close();
    // Reopened with a short interval: the worker checkpoints while nothing commits.
    const again = new SqliteMetadataStore(file, { checkpointMs: 50 });
    await again.init();
    const base = statSync(file).size;
    await fill(again, 2_000);
    expect(await until(() => statSync(file).size > base, 5_000)).toBe(true);
    expect((await again.blobSize(`sha256:${(1999).toString(16).padStart(64, '0')}`))).toBe(1024 + 1999);
    await again.close();
  });

  it('checkpointMs 0 keeps SQLite\'s automatic checkpoints (the WAL is copied by the commits)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regcache-ckpt-'));
    dirs.push(dir);
    const file = join(dir, 'index.db');
    const store = new SqliteMetadataStore(file, { checkpointMs: 0 });
    await store.init();
    const before = statSync(file).size;
    await fill(store, 20_000);
    expect(statSync(file).size).toBeGreaterThan(before);
    await store.close();
  });
});
