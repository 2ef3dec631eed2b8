/**
 * One upstream fetch of one blob, written to a temp file while any number of readers
 * stream it (see docs/cache.md, "Blob fills").
 *
 * - The upstream body is hashed once as it arrives and appended to the temp file; `written`
 *   only grows after a write completed, so readers never read past durable-in-page-cache data.
 * - Readers use positional reads on the shared file handle, each at its own pace; a slow
 *   reader costs no memory, and a reader that goes away does not stop the fill.
 * - No reader ever receives the final byte of its response before the digest is verified:
 *   on a mismatch or an upstream failure every reader is destroyed (the client sees an
 *   aborted response, never a clean end), the temp file is removed and nothing is committed.
 * - A reader with nothing to read puts one callback in a set; every progress (bytes received,
 *   bytes written, verified, failed) takes the whole set and calls each once. Waking N readers
 *   costs O(N) per chunk; EventEmitter listeners added and removed per chunk cost O(N^2)
 *   (1,000 readers of one 64 MiB fill: seconds of CPU instead of a fraction of one).
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestAlgorithm } from '../../protocol/grammar.js';
import type { Spool } from '../../store/blob-store.js';

export type FillState = 'filling' | 'verifying' | 'done' | 'failed';

export class FillError extends Error {
  override name = 'FillError';
  constructor(readonly reason: 'digest' | 'size' | 'upstream' | 'disk', message: string) {
    super(message);
  }
}

const READ_CHUNK = 256 * 1024;
/**
 * The most recent upstream chunks stay in memory (shared, never copied) so readers at the
 * live edge are served without reading back what was just written.
 */
const RECENT_WINDOW = 4 * 1024 * 1024;

export interface FillCallbacks {
  /** Called with the verified temp file; must move it into the store. */
  commit(temp: Spool, size: number): Promise<void>;
  /** Removes the temp file; must not close the handle (readers may still use it). */
  discard(temp: Spool): Promise<void>;
  onBytes?(n: number): void;
}

export class BlobFill {
  state: FillState = 'filling';
  /** Bytes received from the upstream (hashed, in the memory window). */
  received = 0;
  /** Bytes written to the temp file (<= received). */
  written = 0;
  /** After `done`: whether the verified blob made it into the store (disk full: no). */
  committed = false;
  commitError: Error | undefined;
  error: Error | undefined;
  private readers = 0;
  /** Readers waiting for progress; each is called once, then must wait again if still starved. */
  private waiters = new Set<() => void>();
  private readonly recent: Array<{ offset: number; buf: Buffer }> = [];
  private recentBytes = 0;
  private handleClosed = false;
  /** True once nothing but readers needs the temp file handle (commit attempted, or failed). */
  private settled = false;
  private markSettled!: () => void;
  /** Resolves when the fill is over: committed, not kept, or failed. */
  readonly settledPromise = new Promise<void>((resolve) => { this.markSettled = resolve; });
  private readonly hash: Hash;

  constructor(
    readonly digest: string,
    /** From the upstream's Content-Length; undefined for a chunked answer. */
    readonly size: number | undefined,
    private readonly temp: Spool,
    private readonly callbacks: FillCallbacks,
  ) {
    this.hash = createHash(digestAlgorithm(digest));
  }

  /** False once the temp file handle is closed: then readers must use the committed file. */
  get isOpen(): boolean {
    return !this.handleClosed;
  }

  /** Pumps the upstream body into the temp file. Never throws; the outcome is `state`. */
  async run(body: Readable): Promise<void> {
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (this.size !== undefined && this.received + chunk.length > this.size) {
          throw new FillError('size', `upstream sent more than the announced ${this.size} bytes`);
        }
        this.hash.update(chunk);
        // Readers at the live edge may take the chunk from memory at once ...
        const offset = this.received;
        this.recent.push({ offset, buf: chunk });
        this.recentBytes += chunk.length;
        while (this.recentBytes - this.recent[0]!.buf.length >= RECENT_WINDOW) this.recentBytes -= this.recent.shift()!.buf.length;
        this.received += chunk.length;
        this.callbacks.onBytes?.(chunk.length);
        this.wake();
        // ... while readers behind the window read the file only up to what was written.
        try {
          await this.writeAll(chunk, offset);
        } catch (err) {
          throw new FillError('disk', `cannot write to the store: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        this.written += chunk.length;
        this.wake();
      }
      if (this.size !== undefined && this.written !== this.size) {
        throw new FillError('size', `upstream ended after ${this.written} of ${this.size} bytes`);
      }
      this.state = 'verifying';
      const actual = `${digestAlgorithm(this.digest)}:${this.hash.digest('hex')}`;
      if (actual !== this.digest) {
        throw new FillError('digest', `digest mismatch: upstream sent ${actual}`);
      }
      // Verified: every reader may finish now. The commit (fsync, rename, index row) follows;
      // a request arriving meanwhile still joins this fill. A commit that fails (disk full)
      // costs nothing to the readers: the bytes are good, they are just not kept.
      this.state = 'done';
      this.wake();
      try {
        await this.callbacks.commit(this.temp, this.written);
        this.committed = true;
      } catch (err) {
        this.commitError = err as Error;
        await this.callbacks.discard(this.temp).catch(() => undefined);
      }
    } catch (err) {
      body.destroy();
      const e = err instanceof FillError ? err
        : new FillError('upstream', `upstream body failed: ${(err as Error).message}`);
      this.fail(e);
    }
    this.settled = true;
    this.markSettled();
    this.maybeCloseHandle();
  }

  private fail(err: Error): void {
    this.state = 'failed';
    this.error = err;
    void this.callbacks.discard(this.temp).catch(() => undefined);
    this.wake();
  }

  /** Calls every waiting reader once. A reader that waits again joins the next round. */
  private wake(): void {
    if (this.waiters.size === 0) return;
    const waiting = this.waiters;
    this.waiters = new Set();
    for (const w of waiting) w();
  }

  private writeAll(chunk: Buffer, position: number): Promise<void> {
    return this.temp.write(chunk, position);
  }

  /** Bytes at `pos` (up to `max`) from the in-memory window, or undefined if not there. */
  private fromRecent(pos: number, max: number): Buffer | undefined {
    const r = this.recent;
    if (r.length === 0 || pos < r[0]!.offset) return undefined;
    for (let i = r.length - 1; i >= 0; i--) {
      const c = r[i]!;
      if (pos >= c.offset) {
        const from = pos - c.offset;
        if (from >= c.buf.length) return undefined;
        return c.buf.subarray(from, Math.min(c.buf.length, from + max));
      }
    }
    return undefined;
  }

  private maybeCloseHandle(): void {
    if (this.handleClosed || this.readers > 0 || !this.settled) return;
    this.handleClosed = true;
    this.recent.length = 0;
    this.recentBytes = 0;
    void this.temp.close();
  }

  /** Bytes a reader may take now: all once verified, otherwise all but the last byte. */
  private readable(): number {
    if (this.state === 'done') return this.received;
    if (this.size !== undefined) return Math.min(this.received, this.size - 1);
    return this.received;
  }

  /**
   * A stream of bytes [start, end] (inclusive; end undefined = to the end of the blob).
   * It ends only after the fill is verified, and errors if the fill fails.
   */
  createReader(start = 0, end?: number): Readable {
    this.readers++;
    const spool = this.temp;
    const fill = this;
    let pos = start;
    let busy = false;
    let waiting = false;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.readers--;
      this.maybeCloseHandle();
    };
    const stream = new Readable({
      // Small: a reader at the live edge takes shared chunks; nothing needs to queue here.
      highWaterMark: 64 * 1024,
      read(): void {
        void pump();
      },
      destroy(err, cb): void {
        unsubscribe();
        release();
        cb(err);
      },
    });
    const wake = (): void => {
      waiting = false;
      void pump();
    };
    const unsubscribe = (): void => {
      if (!waiting) return;
      waiting = false;
      fill.waiters.delete(wake);
    };
    const wait = (): void => {
      waiting = true;
      fill.waiters.add(wake);
    };
    // One pump at a time: positional reads must not overlap or repeat.
    const pump = async (): Promise<void> => {
      if (busy || waiting || stream.destroyed) return;
      busy = true;
      try {
        for (;;) {
          if (stream.destroyed) return;
          if (fill.state === 'failed') {
            stream.destroy(fill.error);
            return;
          }
          const last = end ?? (fill.size !== undefined ? fill.size - 1 : undefined);
          if (fill.state === 'done' && pos > (last ?? fill.received - 1)) {
            stream.push(null);
            release();
            return;
          }
          // Until verified, hold back the last byte of the blob and of the range.
          let limit = fill.readable();
          if (last !== undefined) limit = Math.min(limit, fill.state === 'done' ? last + 1 : last);
          if (limit - pos <= 0) {
            wait();
            return;
          }
          const mem = fill.fromRecent(pos, limit - pos);
          if (mem) {
            pos += mem.length;
            if (!stream.push(mem)) return;
            continue;
          }
          // Behind the memory window: from the file, up to what is written.
          const avail = Math.min(limit, fill.written) - pos;
          if (avail <= 0) {
            wait();
            return;
          }
          const len = Math.min(avail, READ_CHUNK);
          const buf = Buffer.allocUnsafe(len);
          const bytesRead = await spool.read(buf, 0, len, pos);
          if (stream.destroyed) return;
          if (bytesRead === 0) {
            stream.destroy(new FillError('disk', 'temp file shorter than written'));
            return;
          }
          pos += bytesRead;
          if (!stream.push(bytesRead === len ? buf : buf.subarray(0, bytesRead))) return;
        }
      } catch (err) {
        stream.destroy(err as Error);
      } finally {
        busy = false;
      }
    };
    return stream;
  }
}
