/**
 * The bytes of a fill in progress (or a byte range of them) on their way to one client, as a
 * BlobBody. On an HTTP/1.1 response, writeTo() writes the fill's shared window chunks straight
 * into it and waits for 'drain' when the socket is full: no Readable, no pipeline, no promise
 * per chunk (the cold path's per-chunk stream machinery showed in its CPU profile). Anything
 * else (HTTP/2) takes stream(), the fill's Readable reader.
 *
 * The safety rules are the fill's (fill.ts): the last byte of the blob and of the range goes out
 * only after verification (BlobFill.limitFor); if the fill fails, writeTo rejects at once, even
 * while it waits for a client that stopped reading, and the route aborts the response; a slow
 * client pins at most one batch the socket has not taken (and its one read-back buffer); a
 * client that leaves releases its hold and the fill goes on.
 */
import type { Readable, Writable } from 'node:stream';
import type { BlobBody } from '../../store/blob-store.js';
import { FillError, READ_CHUNK, type BlobFill } from './fill.js';

/**
 * Bytes handed to the response but not yet taken by its socket before a writer waits for
 * 'drain': SMALL_BATCH until RAMP bytes were sent (more than a stalled client's
 * kernel socket buffers absorb on loopback, as in file-body.ts), BATCH after. A client that
 * stops reading pins at most SMALL_BATCH plus one chunk of the fill's buffers.
 */
const SMALL_BATCH = 64 * 1024;
const BATCH = 512 * 1024;
const RAMP = 8 * 1024 * 1024;

export class FillBody implements BlobBody {
  private used = false;
  private closed = false;
  private readonly closeHooks: Array<() => void> = [];
  /** The hold taken at creation, so the temp file stays open until the body is used or dropped. */
  private readonly release: () => void;

  /** `end` is inclusive; the fill's size must be known (a chunked fill is served as a stream). */
  constructor(private readonly fill: BlobFill, readonly start: number, readonly end: number) {
    this.release = fill.hold();
  }

  get length(): number {
    return this.end - this.start + 1;
  }

  canWritePooled(): boolean {
    return true;
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeHooks.push(fn);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
    for (const fn of this.closeHooks.splice(0)) fn();
  }

  discard(): void {
    if (this.used) return;
    this.used = true;
    this.close();
  }

  stream(): Readable {
    if (this.used) throw new Error('FillBody used twice');
    this.used = true;
    const s = this.fill.createReader(this.start, this.end);
    // The reader holds the fill itself from here on.
    this.release();
    s.once('close', () => this.close());
    return s;
  }

  /**
   * Writes the bytes to `dest`; resolves with the bytes written when all were handed to it
   * (the fill verified), rejects when the fill fails, the temp file cannot be read, or `dest`
   * closes first.
   */
  writeTo(dest: Writable): Promise<number> {
    if (this.used) return Promise.reject(new Error('FillBody used twice'));
    this.used = true;
    const fill = this.fill;
    const end = this.end;
    let pos = this.start;
    let finished = false;
    let waiting = false;
    return new Promise<number>((resolve, reject) => {
      const finish = (err?: Error): void => {
        if (finished) return;
        finished = true;
        if (waiting) fill.unwait(step);
        dest.off('drain', step);
        dest.off('close', onClose);
        releaseWriter();
        this.close();
        if (err) reject(err);
        else resolve(pos - this.start);
      };
      const onClose = (): void => finish(new Error('client went away'));
      // One read-back buffer per body, reused once the socket has taken it (write callback):
      // readers behind the window make no garbage per chunk.
      let readBuf: Buffer | undefined;
      let readBufBusy = false;
      let waitingBuf = false;
      const onWritten = (): void => {
        readBufBusy = false;
        if (waitingBuf) step();
      };
      const onRead = (n: number): void => {
        if (finished) return;
        if (n === 0) return finish(new FillError('disk', 'temp file shorter than written'));
        if (dest.destroyed) return finish(new Error('client went away'));
        pos += n;
        readBufBusy = true;
        if (dest.write(readBuf!.subarray(0, n), onWritten)) step();
        else dest.once('drain', step);
      };
      let corked = false;
      const uncork = (): void => {
        if (!corked) return;
        corked = false;
        dest.uncork();
      };
      // Called to start, after 'drain', after a file read, and by the fill's progress.
      const step = (): void => {
        advance();
        uncork();
      };
      const advance = (): void => {
        waiting = false;
        waitingBuf = false;
        for (;;) {
          if (finished) return;
          if (dest.destroyed) return finish(new Error('client went away'));
          if (fill.state === 'failed') return finish(fill.error);
          const limit = fill.limitFor(pos, end);
          if (limit === 'end') return finish();
          if (limit - pos <= 0) {
            waiting = true;
            fill.wait(step);
            return;
          }
          const mem = fill.fromRecent(pos, limit - pos);
          if (mem) {
            // Everything at hand goes out in one writev (corked), up to a batch the socket has
            // not taken: the chunks are the fill's shared buffers, so this copies nothing.
            if (!corked) {
              corked = true;
              dest.cork();
            }
            pos += mem.buf.length;
            if (mem.slab) {
              // The socket holds the view until its write callback: so does the slab.
              mem.slab.retain();
              dest.write(mem.buf, mem.slab.onWritten);
            } else {
              dest.write(mem.buf);
            }
            if (dest.writableLength < (pos - this.start >= RAMP ? BATCH : SMALL_BATCH)) continue;
            uncork();
            if (dest.writableNeedDrain) {
              dest.once('drain', step);
              return;
            }
            continue;
          }
          uncork();
          // Behind the memory window: from the file, up to what is written.
          const avail = Math.min(limit, fill.written) - pos;
          if (avail <= 0) {
            waiting = true;
            fill.wait(step);
            return;
          }
          if (readBufBusy) {
            waitingBuf = true;
            return;
          }
          readBuf ??= Buffer.allocUnsafe(READ_CHUNK);
          fill.readFile(readBuf, Math.min(avail, READ_CHUNK), pos).then(onRead, (err: Error) => finish(err));
          return;
        }
      };
      // A hold that learns of a failure at once replaces the body's plain one.
      const releaseWriter = fill.hold(() => finish(fill.error));
      this.release();
      dest.once('close', onClose);
      step();
    });
  }
}
