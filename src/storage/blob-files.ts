/**
 * Blob files on disk: temp files for fills, atomic commit by rename, reads, removal.
 * Knows nothing about upstreams or the index.
 */
import { randomBytes } from 'node:crypto';
import { constants, mkdirSync } from 'node:fs';
import { mkdir, open, rename, rm, statfs, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FileBody } from './file-body.js';
import type { Layout } from './layout.js';

export interface TempFile {
  path: string;
  handle: FileHandle;
}

export class BlobFiles {
  constructor(readonly layout: Layout) {}

  initSync(): void {
    mkdirSync(this.layout.blobsDir, { recursive: true });
    mkdirSync(this.layout.tmpDir, { recursive: true });
  }

  /** A new, exclusively created temp file under tmp/. */
  async createTemp(): Promise<TempFile> {
    const path = join(this.layout.tmpDir, `${randomBytes(12).toString('hex')}.part`);
    const handle = await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR, 0o644);
    return { path, handle };
  }

  /**
   * Moves a verified temp file into place. fsync first so a crash after the rename can
   * never leave a committed name pointing at unwritten data.
   */
  async commit(temp: TempFile, digest: string): Promise<void> {
    await temp.handle.sync();
    const dest = this.layout.blobPath(digest);
    await mkdir(dirname(dest), { recursive: true });
    await rename(temp.path, dest);
  }

  async discard(path: string): Promise<void> {
    await rm(path, { force: true });
  }

  /**
   * Opens a committed blob for bytes [start, end] (inclusive; default all); undefined when
   * it is not there (e.g. evicted meanwhile).
   */
  async openRead(digest: string, size: number, start = 0, end = size - 1): Promise<FileBody | undefined> {
    try {
      const handle = await open(this.layout.blobPath(digest), 'r');
      return new FileBody(handle, start, end);
    } catch {
      return undefined;
    }
  }

  /** Free and total bytes of the filesystem holding the store. */
  async space(): Promise<{ free: number; total: number }> {
    const s = await statfs(this.layout.root);
    return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
  }
}
