/**
 * The filesystem BlobStore: blobs/<alg>/<2 hex>/<hex> committed by rename after fsync,
 * spools under tmp/ on the same filesystem (so the rename is atomic). Layout in layout.ts.
 * Knows nothing about upstreams, repositories or the metadata store.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, mkdir, open, readdir, rename, rm, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { digestAlgorithm, isValidDigest } from '../../protocol/grammar.js';
import type { BlobInfo, BlobStore, Spool } from '../blob-store.js';
import { putVerified } from '../put-verified.js';
import { BufferPool, FileBody } from './file-body.js';
import { digestFromRelative, layout, type Layout } from './layout.js';

/** A spool in a local file (also the S3 store's spools: fills are always local). */
export class FileSpool implements Spool {
  constructor(readonly path: string, readonly handle: FileHandle) {}

  /** A new, empty spool with a random name in `dir` (never an existing file). */
  static async create(dir: string): Promise<FileSpool> {
    const path = join(dir, `${randomBytes(12).toString('hex')}.part`);
    return new FileSpool(path, await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR, 0o644));
  }

  async write(chunk: Buffer, position: number): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, off, chunk.length - off, position + off);
      off += bytesWritten;
    }
  }

  async writev(chunks: readonly Buffer[], position: number): Promise<void> {
    let rest = chunks;
    let pos = position;
    while (rest.length > 0) {
      // pwritev may take fewer bytes than asked (and at most IOV_MAX buffers): go on from where it stopped.
      let { bytesWritten } = await this.handle.writev(rest as Buffer[], pos);
      pos += bytesWritten;
      let i = 0;
      while (i < rest.length && bytesWritten >= rest[i]!.length) bytesWritten -= rest[i++]!.length;
      rest = i < rest.length && bytesWritten > 0 ? [rest[i]!.subarray(bytesWritten), ...rest.slice(i + 1)] : rest.slice(i);
    }
  }

  async read(into: Buffer, offset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(into, offset, length, position);
    return bytesRead;
  }

  sync(): Promise<void> {
    return this.handle.sync();
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

/** Removes a file; one that is not there is fine (one unlink, where rm() also stats it first). */
async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

export class FsBlobStore implements BlobStore {
  readonly layout: Layout;
  private readonly pool = new BufferPool();

  constructor(dataDir: string) {
    this.layout = layout(dataDir);
  }

  async init(): Promise<void> {
    await mkdir(this.layout.blobsDir, { recursive: true });
    await mkdir(this.layout.tmpDir, { recursive: true });
  }

  async stat(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.layout.blobPath(digest))).size;
    } catch {
      return undefined;
    }
  }

  async open(digest: string, size: number, start = 0, end = size - 1): Promise<FileBody | undefined> {
    try {
      const handle = await open(this.layout.blobPath(digest), 'r');
      return new FileBody(handle, start, end, this.pool);
    } catch {
      return undefined;
    }
  }

  createSpool(): Promise<FileSpool> {
    return FileSpool.create(this.layout.tmpDir);
  }

  async openSpool(name: string): Promise<FileSpool | undefined> {
    if (!/^[0-9a-f]{24}\.part$/.test(name)) return undefined;
    const path = join(this.layout.tmpDir, name);
    try {
      return new FileSpool(path, await open(path, 'r+'));
    } catch {
      return undefined;
    }
  }

  /** fsync first, so a crash after the rename never leaves a name pointing at unwritten data. */
  async commit(spool: Spool, digest: string): Promise<void> {
    await spool.sync();
    const dest = this.layout.blobPath(digest);
    await mkdir(dirname(dest), { recursive: true });
    await rename(spool.path, dest);
  }

  async discard(spool: Spool): Promise<void> {
    await removeFile(spool.path);
  }

  put(digest: string, body: AsyncIterable<Buffer>): Promise<number> {
    return putVerified(this, digest, body);
  }

  async delete(digest: string): Promise<void> {
    await removeFile(this.layout.blobPath(digest));
  }

  async *list(): AsyncIterable<BlobInfo> {
    const root = this.layout.blobsDir;
    for (const alg of await list(root)) {
      for (const prefix of await list(join(root, alg))) {
        for (const name of await list(join(root, alg, prefix))) {
          const digest = digestFromRelative([alg, prefix, name]);
          if (!digest || !isValidDigest(digest)) continue;
          try {
            const st = await stat(join(root, alg, prefix, name));
            if (st.isFile()) yield { digest, size: st.size };
          } catch {
            // Removed meanwhile.
          }
        }
      }
    }
  }

  async hash(digest: string): Promise<string> {
    const alg = digestAlgorithm(digest);
    const h = createHash(alg);
    for await (const chunk of createReadStream(this.layout.blobPath(digest), { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
    return `${alg}:${h.digest('hex')}`;
  }

  listSpools(): Promise<string[]> {
    return list(this.layout.tmpDir);
  }

  async removeSpool(name: string): Promise<void> {
    if (name.includes('/') || name === '..' || name === '.') return;
    await rm(join(this.layout.tmpDir, name), { force: true, recursive: true });
  }

  async listStray(): Promise<string[]> {
    const root = this.layout.blobsDir;
    const out: string[] = [];
    for (const alg of await list(root)) {
      for (const prefix of await list(join(root, alg))) {
        for (const name of await list(join(root, alg, prefix))) {
          const digest = digestFromRelative([alg, prefix, name]);
          if (!digest || !isValidDigest(digest)) out.push(join(alg, prefix, name));
        }
      }
    }
    return out;
  }

  async removeStray(path: string): Promise<void> {
    if (path.split('/').includes('..')) return;
    await rm(join(this.layout.blobsDir, path), { force: true, recursive: true });
  }

  async space(): Promise<{ free: number; total: number }> {
    const s = await statfs(this.layout.root);
    return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
  }

  async writable(): Promise<boolean> {
    try {
      await access(this.layout.tmpDir, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    // Nothing held open: every body and spool closes its own handle.
  }
}
