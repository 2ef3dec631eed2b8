/** The filesystem BlobStore runs the BlobStore contract, plus what only a filesystem has. */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { FsBlobStore } from '../../src/store/fs/fs-blob-store.js';
import { runBlobStoreContract } from '../contract/blob-store.contract.js';

runBlobStoreContract('filesystem', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'regcache-fsblob-'));
  return { store: new FsBlobStore(dir), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

it('filesystem: entries in blobs/ that are not blobs are stray, and removable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'regcache-fsblob-'));
  try {
    const s = new FsBlobStore(dir);
    await s.init();
    mkdirSync(join(dir, 'blobs', 'sha256', 'zz'), { recursive: true });
    writeFileSync(join(dir, 'blobs', 'sha256', 'zz', 'not-a-digest'), 'x');
    expect(await s.listStray()).toEqual(['sha256/zz/not-a-digest']);
    await s.removeStray('sha256/zz/not-a-digest');
    expect(await s.listStray()).toEqual([]);
    await s.removeStray('../../etc/passwd'); // never outside blobs/
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
