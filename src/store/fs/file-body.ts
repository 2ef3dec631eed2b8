/**
 * A committed blob (or a byte range of it) on its way to a client. On a plain writable
 * (an HTTP/1.1 response) it writes itself with two reused buffers, reading the next chunk
 * while the previous one is being sent and reusing a buffer only after the socket has
 * taken it (the write callback): no allocation and no garbage per chunk. Measured in the
 * benchmark (scenario 3, warm pull by 20 clients), per-chunk buffers cost ~25% of the busy
 * time in allocation and GC. Anything else gets a stream with one small buffer.
 *
 * Per-response buffering is small and bounded (issue 10, item 4: 3,000 readers at 1 byte/s
 * held 0.8 MB each): a response starts with two RAMP_CHUNK buffers of its own and moves to two
 * pooled 512 KiB buffers only after the client has taken RAMP bytes, more than a paused
 * client's kernel socket buffers absorb (~4 MB on loopback), so a slow reader never holds
 * more than 2 x RAMP_CHUNK, and fast readers together never more than the pool.
 *
 * The ramp is where a warm pull spends its per-chunk overhead (a thread-pool read, a socket
 * write and its wake-ups per chunk): 60 concurrent responses of the bench's layers (20 clients
 * x 3 layers, 3.4 GB) cost 2.21-2.36 CPU-s with 32 KiB ramp chunks, 1.83-2.01 with 64 KiB, and
 * 1.56-1.66 with no ramp at all (2026-12-02). 64 KiB costs a stalled reader no more RSS than
 * 32 KiB did (dos-slow-readers.test.ts: ~150 KiB per reader either way; 128 KiB: 226-266).
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';

const CHUNK = 512 * 1024;
/** Buffer size of stream() (a stalled HTTP/2 stream holds about two of these). */
export const SMALL_CHUNK = 32 * 1024;
/** Buffer size of writeTo() until its client has proved to read fast (see the note above). */
const RAMP_CHUNK = 64 * 1024;
/** Bytes a client must have taken before its response may use the pooled buffers. */
const RAMP = 8 * 1024 * 1024;
/**
 * At most this many pooled 512 KiB buffers exist (in use or idle): 64 MiB, i.e. 64 responses at
 * full speed. Further concurrent responses get an ordinary 256 KiB-chunk stream, so memory
 * stays bounded however many clients pull at once.
 */
const POOL_BUDGET = 128;

/** The pooled send buffers of one blob store (no module-level state: each store owns its pool). */
export class BufferPool {
  private readonly idle: Buffer[] = [];
  private outstanding = 0;

  constructor(private readonly budget = POOL_BUDGET) {}

  /** Whether two more buffers may be handed out. */
  hasRoomForTwo(): boolean {
    return this.outstanding + 2 <= this.budget;
  }

  take(): Buffer {
    this.outstanding++;
    return this.idle.pop() ?? Buffer.allocUnsafe(CHUNK);
  }

  /** Returns a buffer the socket no longer references. */
  give(b: Buffer): void {
    this.idle.push(b);
  }

  /** A buffer that may still be referenced (the client went away mid-write) is left to the GC. */
  forget(): void {
    this.outstanding--;
  }
}

export class FileBody {
  private used = false;
  private closed = false;
  private readonly closeHooks: Array<() => void> = [];

  /** `end` is inclusive. */
  constructor(private readonly handle: FileHandle, readonly start: number, readonly end: number, private readonly pool: BufferPool) {}

  get length(): number {
    return this.end - this.start + 1;
  }

  discard(): void {
    if (this.used) return;
    this.used = true;
    void this.close();
  }

  /** Runs `fn` once the file is closed (sent, discarded or failed). */
  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeHooks.push(fn);
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close().catch(() => undefined);
    for (const fn of this.closeHooks.splice(0)) fn();
  }

  /** Always: writeTo starts with its own small buffers and takes pooled ones only when there are some. */
  canWritePooled(): boolean {
    return true;
  }

  /**
   * A stream of the bytes that reads SMALL_CHUNK only when its consumer wants more (so a stalled
   * HTTP/2 stream holds one chunk here), and fails instead of ending if the file is shorter
   * than its index row.
   */
  stream(): Readable {
    this.used = true;
    const start = this.start;
    const end = this.end;
    let pos = start;
    const handle = this.handle;
    const s = new Readable({
      highWaterMark: SMALL_CHUNK,
      read(): void {
        if (pos > end) {
          this.push(null);
          return;
        }
        const want = Math.min(SMALL_CHUNK, end - pos + 1);
        handle.read(Buffer.allocUnsafe(want), 0, want, pos).then(({ bytesRead, buffer }) => {
          if (bytesRead === 0) {
            this.destroy(new Error(`blob file gave ${pos - start} of ${end - start + 1} bytes`));
            return;
          }
          pos += bytesRead;
          this.push(bytesRead === want ? buffer : buffer.subarray(0, bytesRead));
        }, (err: Error) => this.destroy(err));
      },
    });
    s.once('close', () => void this.close());
    return s;
  }

  /**
   * Writes the bytes to `dest`; resolves with the bytes written when all were handed to it,
   * rejects when `dest` closes first or the file cannot be read.
   */
  async writeTo(dest: Writable): Promise<number> {
    if (this.used) throw new Error('FileBody used twice');
    this.used = true;
    let bufs: Buffer[] = [Buffer.allocUnsafe(Math.min(RAMP_CHUNK, this.length)), Buffer.allocUnsafe(Math.min(RAMP_CHUNK, this.length))];
    let pooled = false;
    const inflight: Array<Promise<void> | undefined> = [undefined, undefined];
    let closedEarly = false;
    const closed = new Promise<never>((_, reject) => {
      dest.once('close', () => {
        closedEarly = true;
        reject(new Error('client went away'));
      });
    });
    closed.catch(() => undefined);
    let pos = this.start;
    let sent = 0;
    let i = 0;
    try {
      while (pos <= this.end) {
        if (!pooled && sent >= RAMP && this.end - pos + 1 > RAMP && this.pool.hasRoomForTwo()) {
          // The client reads fast: swap to pooled buffers once both small ones are back.
          await Promise.race([Promise.all(inflight), closed]);
          bufs = [this.pool.take(), this.pool.take()];
          pooled = true;
        }
        if (inflight[i]) await Promise.race([inflight[i], closed]);
        if (closedEarly || dest.destroyed) throw new Error('client went away');
        const buf = bufs[i]!;
        const want = Math.min(buf.length, this.end - pos + 1);
        const { bytesRead } = await this.handle.read(buf, 0, want, pos);
        if (bytesRead === 0) throw new Error('blob file shorter than its index entry');
        pos += bytesRead;
        sent += bytesRead;
        inflight[i] = new Promise<void>((resolve, reject) => {
          dest.write(buf.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve()));
        });
        inflight[i]!.catch(() => undefined);
        if (dest.writableNeedDrain) {
          await Promise.race([new Promise<void>((resolve) => dest.once('drain', resolve)), closed]);
        }
        i ^= 1;
      }
      await Promise.race([Promise.all(inflight), closed]);
      // Every write completed: the socket holds no reference to the buffers any more.
      if (pooled) {
        this.pool.give(bufs[0]!);
        this.pool.give(bufs[1]!);
      }
      return sent;
    } finally {
      if (pooled) {
        this.pool.forget();
        this.pool.forget();
      }
      await this.close();
    }
  }
}
