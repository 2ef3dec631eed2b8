/**
 * Reading a Spool in bounded pieces, and copying a prefix of one into a new spool (upload
 * sessions: hashing a spool again, leaving a shared spool, resuming after a restart).
 */
import type { BlobStore, Spool } from './blob-store.js';

const PIECE = 1024 * 1024;

/** Reads `length` bytes at `position` into `into` (from 0); fewer only where the spool ends. */
export async function readFully(spool: Spool, into: Buffer, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await spool.read(into, got, length - got, position + got);
    if (n <= 0) break;
    got += n;
  }
  return got;
}

/** Reads bytes [0, size) of a spool through `fn`, one reused 1 MiB buffer at a time. */
export async function readSpool(spool: Spool, size: number, fn: (chunk: Buffer) => void | Promise<void>): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(PIECE, Math.max(size, 1)));
  for (let pos = 0; pos < size;) {
    const n = await spool.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (n <= 0) throw new Error('the spool is shorter than its recorded size');
    await fn(buf.subarray(0, n));
    pos += n;
  }
}

/** Writes `body` into a new spool of `blobs` (at most `size` bytes, exactly `size` expected); discarded on failure. */
export async function spoolFrom(blobs: BlobStore, size: number, body: (write: (chunk: Buffer) => Promise<void>) => Promise<void>): Promise<Spool> {
  const to = await blobs.createSpool();
  try {
    let pos = 0;
    await body(async (chunk) => {
      if (pos + chunk.length > size) throw new Error(`got more than the ${size} bytes expected`);
      await to.write(chunk, pos);
      pos += chunk.length;
    });
    if (pos !== size) throw new Error(`got ${pos} of the ${size} bytes expected`);
    return to;
  } catch (err) {
    await to.close();
    await blobs.discard(to).catch(() => undefined);
    throw err;
  }
}

/** A new spool of `blobs` holding bytes [0, size) of `from`. */
export function copySpool(blobs: BlobStore, from: Spool, size: number): Promise<Spool> {
  return spoolFrom(blobs, size, (write) => readSpool(from, size, write));
}
