/**
 * One upstream fetch of one blob, written to a temp file while any number of readers
 * stream it (see docs/cache.md, "Blob fills").
 *
 * - The upstream body is hashed once as it arrives and appended to the temp file; `written`
 *   only grows after a write completed, so readers never read past durable-in-page-cache data.
 *   The chunks of one event-loop turn, and those that arrive during a write, are written
 *   together by one write.
 * - Readers take recent chunks from a shared in-memory window, and older bytes by positional
 *   reads on the shared file handle, each at its own pace; a slow reader costs no memory, and
 *   a reader that goes away does not stop the fill. Two kinds of reader: createReader() (a
 *   Readable, for HTTP/2 and chunked answers) and FillBody (fill-body.ts, for HTTP/1.1).
 * - No reader ever receives the final byte of its response before the digest is verified:
 *   on a mismatch or an upstream failure every reader is destroyed (the client sees an
 *   aborted response, never a clean end), the temp file is removed and nothing is committed.
 * - A reader with nothing to read puts one callback in a set; every progress (a write batch
 *   starts or completes, verified, failed) takes the whole set and calls each once. Waking N readers
 *   costs O(N) per chunk; EventEmitter listeners added and removed per chunk cost O(N^2)
 *   (1,000 readers of one 64 MiB fill: seconds of CPU instead of a fraction of one).
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { OciError, type ErrorCode } from '../../protocol/errors.js';
import { digestAlgorithm } from '../../protocol/grammar.js';
import type { Spool } from '../../store/blob-store.js';
import { classify } from '../../upstream/classify.js';
import { SocketBody } from '../../upstream/socket-body.js';
import type { Slab, SlabPool } from './slabs.js';

export type FillState = 'filling' | 'verifying' | 'done' | 'failed';

export type FillFailure = 'digest' | 'size' | 'upstream' | 'disk';

/**
 * Why a fill failed. An OciError, so a client that has not received a byte yet gets an
 * error answer with the right status (routes/blobs.ts): a stalled upstream body 504, a
 * failed one 502, bytes that do not match the digest or the size 502, the store 500.
 */
export class FillError extends OciError {
  override name = 'FillError';
  /** `cause`: what the upstream body failed with (a timeout answers 504). */
  constructor(readonly reason: FillFailure, message: string, cause?: unknown) {
    super(fillErrorCode(reason, cause), message);
  }
}

function fillErrorCode(reason: FillFailure, cause: unknown): ErrorCode {
  if (reason === 'disk') return 'INTERNAL';
  if (reason === 'upstream') return classify(cause).class === 'timeout' ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_ERROR';
  return 'UPSTREAM_BLOB_INVALID';
}

/** Size of one read back from the temp file (readers behind the memory window). */
export const READ_CHUNK = 256 * 1024;
/**
 * The most recent upstream chunks stay in memory (shared, never copied) so readers at the
 * live edge are served without reading back what was just written.
 */
const RECENT_WINDOW = 4 * 1024 * 1024;
/**
 * Received bytes not yet written that pause the upstream body. Well inside the window, so a
 * byte leaves memory only after it is in the file (a reader behind never finds a gap for long).
 */
const MAX_UNWRITTEN = 1024 * 1024;

export interface FillCallbacks {
  /** Called with the verified temp file; must move it into the store. */
  commit(temp: Spool, size: number): Promise<void>;
  /** Removes the temp file; must not close the handle (readers may still use it). */
  discard(temp: Spool): Promise<void>;
  /** Bytes received from the upstream, once per temp file write batch (at most ~1 MiB late). */
  onBytes?(n: number): void;
}

/** Bytes of the fill at `offset`: a socket chunk of the body, or a view of a counted slab. */
interface Chunk {
  offset: number;
  buf: Buffer;
  slab: Slab | undefined;
}

/** Bytes at hand in the memory window; a slab view must be retained while a socket holds it. */
export interface RecentBytes {
  buf: Buffer;
  slab: Slab | undefined;
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
  /** One per reader, called once if the fill fails. */
  private readonly aborts = new Set<() => void>();
  private readonly recent: Chunk[] = [];
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
    /** Where the bytes of a lent body (upstream/socket-body.ts) are copied; without it, bodies are read as streams. */
    private readonly slabs?: SlabPool,
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
      await this.pump(body);
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
        : new FillError('upstream', `upstream body failed: ${(err as Error).message}`, err);
      this.fail(e);
    }
    this.settled = true;
    this.markSettled();
    this.maybeCloseHandle();
  }

  /**
   * Writes the body to the temp file in order, one positional write at a time. Chunks of one
   * event-loop turn, and chunks that arrive while a write is in flight, go out together in one
   * pwritev (one thread-pool job per batch instead of one per socket read, and no copy: the
   * chunks are the window's buffers), and the readers are woken once per batch, so each sends
   * the batch in one socket write. `onBytes` is called once per batch. Resolves when every
   * byte is written; rejects on a size overrun, a body error or a write error.
   *
   * Two ways in. A lent body (upstream/socket-body.ts, with `slabs`): each socket read is a
   * view valid during the call only, hashed, then copied once into the current slab, whose
   * views are the window's chunks and the file's writes, each holding the slab until it leaves
   * the window or is written (slabs.ts). Any other Readable: its 'data' chunks (no async
   * iterator: no promise per chunk) are kept as they are.
   */
  private pump(body: Readable): Promise<void> {
    // Failed (a reset, a timeout) before the fill got to it: its 'error' and 'close' are past.
    if (body.destroyed) return Promise.reject(body.errored ?? new Error('upstream body closed before the fill started'));
    const slabs = body instanceof SocketBody && body.lendable ? this.slabs : undefined;
    return new Promise((resolve, reject) => {
      let queue: Chunk[] = [];
      let unwritten = 0;
      let writing = false;
      let ended = false;
      let over = false;
      let paused = false;
      let flushScheduled = false;
      let cur: Slab | undefined;
      let flow: { pause(): void; resume(): void } = { pause: () => body.pause(), resume: () => body.resume() };
      const release = (chunks: Chunk[]): void => {
        for (const c of chunks) c.slab?.release();
      };
      const finishSlab = (): void => {
        cur?.release();
        cur = undefined;
      };
      const stop = (err: Error): void => {
        if (over) return;
        over = true;
        flow.pause();
        body.off('data', onData);
        release(queue);
        queue = [];
        finishSlab();
        reject(err);
      };
      const writeNext = (): void => {
        if (over) return;
        if (queue.length === 0) {
          writing = false;
          if (ended) {
            over = true;
            finishSlab();
            resolve();
          }
          return;
        }
        writing = true;
        const n = unwritten;
        const batch = queue;
        queue = [];
        this.callbacks.onBytes?.(n);
        const write = batch.length === 1 ? this.temp.write(batch[0]!.buf, this.written) : this.temp.writev(batch.map((c) => c.buf), this.written);
        write.then(() => {
          release(batch);
          unwritten -= n;
          this.written += n;
          this.wake();
          if (paused && unwritten < MAX_UNWRITTEN && !over) {
            paused = false;
            flow.resume();
          }
          writeNext();
        }, (err: NodeJS.ErrnoException) => {
          release(batch);
          stop(new FillError('disk', `cannot write to the store: ${err.code ?? err.message}`));
        });
      };
      /** Bytes [start, end) of `buf` arrived; a lent `buf` is valid during this call only. */
      const take = (buf: Buffer, start: number, end: number): void => {
        if (over) return;
        if (this.size !== undefined && this.received + (end - start) > this.size) {
          stop(new FillError('size', `upstream sent more than the announced ${this.size} bytes`));
          return;
        }
        const bytes = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
        this.hash.update(bytes);
        if (!slabs) {
          // Readers at the live edge take the chunk from memory, the file takes it from the queue.
          this.addRecent(this.received, bytes, undefined);
          queue.push({ offset: this.received, buf: bytes, slab: undefined });
          this.received += bytes.length;
          unwritten += bytes.length;
        }
        for (let s = start; slabs && s < end;) {
          if (!cur || cur.free === 0) {
            finishSlab();
            cur = slabs.take();
          }
          const at = cur.filled;
          const n = Math.min(cur.free, end - s);
          buf.copy(cur.buf, at, s, s + n);
          cur.filled += n;
          this.addRecent(this.received, cur.buf.subarray(at, at + n), cur);
          // The write queue takes one view per slab where the bytes are contiguous.
          const last = queue[queue.length - 1];
          if (last && last.slab === cur && last.buf.byteOffset + last.buf.length === cur.buf.byteOffset + at) {
            last.buf = cur.buf.subarray(last.buf.byteOffset - cur.buf.byteOffset, at + n);
          } else {
            cur.retain();
            queue.push({ offset: this.received, buf: cur.buf.subarray(at, at + n), slab: cur });
          }
          this.received += n;
          unwritten += n;
          s += n;
        }
        // ... while readers behind the window read the file only up to what was written.
        if (unwritten >= MAX_UNWRITTEN && !paused) {
          paused = true;
          flow.pause();
        }
        if (writing) return; // woken with the whole batch when the write in flight completes
        // Nothing in flight: the chunks of this turn of the event loop (libuv reads a socket up
        // to 32 times per poll) go out together, right after it.
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flush);
        }
      };
      const onData = (chunk: Buffer): void => take(chunk, 0, chunk.length);
      const flush = (): void => {
        flushScheduled = false;
        if (over || writing) return;
        this.wake();
        writeNext();
      };
      body.once('end', () => {
        ended = true;
        if (!writing && !flushScheduled) writeNext();
      });
      body.once('error', stop);
      body.once('close', () => {
        if (!ended) stop(new Error('upstream body closed before its end'));
      });
      if (slabs) flow = (body as SocketBody).lend({ data: take });
      else body.on('data', onData);
    });
  }

  /**
   * Adds bytes at `offset` to the memory window (a slab view extends the window's last
   * chunk when contiguous in the same slab) and drops what fell out of the window.
   */
  private addRecent(offset: number, buf: Buffer, slab: Slab | undefined): void {
    const r = this.recent;
    const last = r[r.length - 1];
    if (slab && last && last.slab === slab && last.buf.byteOffset + last.buf.length === buf.byteOffset) {
      last.buf = slab.buf.subarray(last.buf.byteOffset - slab.buf.byteOffset, buf.byteOffset - slab.buf.byteOffset + buf.length);
    } else {
      slab?.retain();
      r.push({ offset, buf, slab });
    }
    this.recentBytes += buf.length;
    while (this.recentBytes - r[0]!.buf.length >= RECENT_WINDOW) {
      const old = r.shift()!;
      this.recentBytes -= old.buf.length;
      old.slab?.release();
    }
  }

  private fail(err: Error): void {
    this.state = 'failed';
    this.error = err;
    void this.callbacks.discard(this.temp).catch(() => undefined);
    this.wake();
    // Readers held by their client (waiting for 'drain') learn it now, not when it reads again.
    for (const abort of [...this.aborts]) abort();
  }

  /** Calls every waiting reader once. A reader that waits again joins the next round. */
  private wake(): void {
    if (this.waiters.size === 0) return;
    const waiting = this.waiters;
    this.waiters = new Set();
    for (const w of waiting) w();
  }

  /**
   * Bytes at `pos` (up to `max`) from the in-memory window, or undefined if not there.
   * A slab view is valid as long as the window holds it: a reader that hands it to a
   * socket retains the slab until the write callback.
   */
  fromRecent(pos: number, max: number): RecentBytes | undefined {
    const r = this.recent;
    if (r.length === 0 || pos < r[0]!.offset) return undefined;
    for (let i = r.length - 1; i >= 0; i--) {
      const c = r[i]!;
      if (pos >= c.offset) {
        const from = pos - c.offset;
        if (from >= c.buf.length) return undefined;
        return { buf: c.buf.subarray(from, Math.min(c.buf.length, from + max)), slab: c.slab };
      }
    }
    return undefined;
  }

  private maybeCloseHandle(): void {
    if (this.handleClosed || this.readers > 0 || !this.settled) return;
    this.handleClosed = true;
    for (const c of this.recent) c.slab?.release();
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
   * The reader side, for the readers here and in fill-body.ts. A reader holds the temp file
   * open until it releases (exactly once); `onFail` runs once if the fill fails meanwhile.
   */
  hold(onFail?: () => void): () => void {
    this.readers++;
    if (onFail) this.aborts.add(onFail);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (onFail) this.aborts.delete(onFail);
      this.readers--;
      this.maybeCloseHandle();
    };
  }

  /** Calls `fn` once at the next progress of the fill. */
  wait(fn: () => void): void {
    this.waiters.add(fn);
  }

  unwait(fn: () => void): void {
    this.waiters.delete(fn);
  }

  /**
   * Where a reader of bytes up to `last` (inclusive; undefined: to the end of the blob) at
   * `pos` stands: 'end' when it has everything and the fill is verified, otherwise the offset it
   * may read up to now (exclusive; <= pos: nothing yet). Until verified the last byte of the
   * blob and of the range is held back.
   */
  limitFor(pos: number, end: number | undefined): number | 'end' {
    const last = end ?? (this.size !== undefined ? this.size - 1 : undefined);
    if (this.state === 'done' && pos > (last ?? this.received - 1)) return 'end';
    const limit = this.readable();
    if (last === undefined) return limit;
    return Math.min(limit, this.state === 'done' ? last + 1 : last);
  }

  /** Positional read of written bytes (callers stay below `written`). */
  readFile(into: Buffer, length: number, position: number): Promise<number> {
    return this.temp.read(into, 0, length, position);
  }

  /**
   * A stream of bytes [start, end] (inclusive; end undefined = to the end of the blob).
   * It ends only after the fill is verified, and errors if the fill fails.
   */
  createReader(start = 0, end?: number): Readable {
    const fill = this;
    let pos = start;
    let busy = false;
    let waiting = false;
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
    const release = this.hold(() => stream.destroy(fill.error));
    const wake = (): void => {
      waiting = false;
      void pump();
    };
    const unsubscribe = (): void => {
      if (!waiting) return;
      waiting = false;
      fill.unwait(wake);
    };
    const wait = (): void => {
      waiting = true;
      fill.wait(wake);
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
          const limit = fill.limitFor(pos, end);
          if (limit === 'end') {
            stream.push(null);
            release();
            return;
          }
          if (limit - pos <= 0) {
            wait();
            return;
          }
          const mem = fill.fromRecent(pos, limit - pos);
          if (mem) {
            pos += mem.buf.length;
            // A Readable keeps what it is given for as long as it likes: a slab view is copied.
            if (!stream.push(mem.slab ? Buffer.from(mem.buf) : mem.buf)) return;
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
          const bytesRead = await fill.readFile(buf, len, pos);
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
