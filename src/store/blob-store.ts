/**
 * BlobStore: content-addressed bytes, nothing else. Knows no repositories, tags, upstreams
 * or SQL. The filesystem implementation is store/fs/fs-blob-store.ts; an object-store one
 * (S3) implements the same interface and passes the same contract suite
 * (test/contract/blob-store.contract.ts).
 *
 * Writes go through a Spool: a local scratch file that a fill or an upload writes and reads
 * positionally while it grows. A spool becomes a blob only through commit(), which the
 * caller may call only after it has verified that the spool's bytes hash to the digest
 * (fills hash as bytes arrive; put() hashes for callers that have a stream). Nothing
 * unverified is ever visible under a digest.
 */
import type { Readable, Writable } from 'node:stream';

/** A local scratch file being written; readable positionally while it grows. */
export interface Spool {
  readonly path: string;
  write(chunk: Buffer, position: number): Promise<void>;
  /** Writes `chunks` one after the other from `position`, in as few system calls as it can (no copy into one buffer). */
  writev(chunks: readonly Buffer[], position: number): Promise<void>;
  read(into: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Flushes to stable storage. */
  sync(): Promise<void>;
  /** Cuts the spool to `length` bytes (an upload chunk that failed half-way). */
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A committed blob (or a byte range of it) on its way to a client. On a plain writable (an
 * HTTP/1.1 response) it can write itself with pooled buffers; anything else takes stream().
 */
export interface BlobBody {
  readonly length: number;
  canWritePooled(): boolean;
  writeTo(dest: Writable): Promise<number>;
  stream(): Readable;
  /** Runs `fn` once the body is released (sent, discarded or failed). */
  onClose(fn: () => void): void;
  /** Releases a body that will not be read (safe to call at any time, and more than once). */
  discard(): void;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

export interface BlobStore {
  /** Prepares the store (directories, bucket); the only place with start-up I/O. */
  init(): Promise<void>;
  /** Size of a committed blob, or undefined. */
  stat(digest: string): Promise<number | undefined>;
  /** Bytes [start, end] (inclusive; default all) of a committed blob; undefined when absent. */
  open(digest: string, size: number, start?: number, end?: number): Promise<BlobBody | undefined>;
  /** A new, empty spool. */
  createSpool(): Promise<Spool>;
  /** Reopens a spool of an upload session by its file name (after a restart); undefined when gone. */
  openSpool(name: string): Promise<Spool | undefined>;
  /**
   * Makes a verified spool the blob `digest`, atomically (durable before visible). The
   * spool is closed afterwards by the caller.
   */
  commit(spool: Spool, digest: string): Promise<void>;
  /** Removes a spool that will not be committed. */
  discard(spool: Spool): Promise<void>;
  /** Hashes a stream into a spool and commits it only if it matches `digest`. */
  put(digest: string, body: AsyncIterable<Buffer>): Promise<number>;
  delete(digest: string): Promise<void>;
  /** Every committed blob (unordered). */
  list(): AsyncIterable<BlobInfo>;
  /** Hashes a committed blob (fsck). */
  hash(digest: string): Promise<string>;
  /** Spools left behind by an earlier process (start-up recovery removes them). */
  listSpools(): Promise<string[]>;
  removeSpool(name: string): Promise<void>;
  /** Entries under the blob area that are not blobs (fsck removes them). */
  listStray(): Promise<string[]>;
  removeStray(path: string): Promise<void>;
  /** Free and total bytes where blobs are kept; undefined when unbounded (object stores). */
  space(): Promise<{ free: number; total: number } | undefined>;
  /**
   * A time-limited URL clients can GET the committed blob from directly (stores that have
   * one: S3's presigned URLs); absent: blobs are always streamed through regcache.
   */
  redirectUrl?(digest: string, expiresInSeconds: number): Promise<string>;
  /** Whether the store can be written now (readiness). */
  writable(): Promise<boolean>;
  close(): Promise<void>;
}
