/**
 * The body of an upstream answer read by socket-get.ts, whose socket reads land in one
 * reused buffer. Two ways to consume it:
 *
 * - lend(sink): the bytes are handed to `sink.data(buf, start, end)` as views of the read
 *   buffer, valid during the call only (the consumer copies what it keeps). No buffer is
 *   allocated per socket read: this is what the blob fill uses (fill.ts), and what makes a
 *   cold pull cost less CPU than with undici, whose every read is a new 64 KiB ArrayBuffer
 *   that V8 counts against the old generation until a scavenge frees it (docs/cache.md).
 * - as a Readable (anything else: discard(), readAtMost(), pipes): each piece is pushed as
 *   a copy, with the usual backpressure.
 *
 * The mode is fixed by the first use. Bytes that arrive before it are kept as copies (the
 * socket is paused meanwhile) and delivered first. 'end', 'error' and 'close' are the
 * Readable's in both modes; destroy() aborts the exchange and closes its connection.
 */
import { Readable } from 'node:stream';

export interface BodySink {
  /** Body bytes `buf[start, end)`, valid during the call only. */
  data(buf: Buffer, start: number, end: number): void;
}

/** What the connection side does for the body: flow control and abort. */
export interface BodySource {
  pause(): void;
  resume(): void;
  /** The consumer went away (destroy before the end): the connection cannot be reused. */
  abort(): void;
}

type Mode = 'undecided' | 'lent' | 'stream';

export class SocketBody extends Readable {
  private mode: Mode = 'undecided';
  private sink: BodySink | undefined;
  private early: Buffer[] = [];
  private ended = false;
  private finished = false;
  /** Lent mode: the consumer paused the flow. */
  private lentPaused = false;

  constructor(private readonly source: BodySource) {
    super({ highWaterMark: 256 * 1024 });
    // A failure of a body nobody has started reading (the pool closing under it) must not
    // be an uncaught 'error': its reader still sees it (errored, closed before 'end').
    this.on('error', () => undefined);
  }

  /** Whether lend() can still be used (nothing has read the body as a stream). */
  get lendable(): boolean {
    return this.mode === 'undecided' && !this.destroyed;
  }

  /**
   * Switches to lent mode: `sink.data` gets every byte from here on, starting after this call
   * returns (never from inside it). Returns the flow control: pause() stops the socket reads
   * and the sink is called no more until resume().
   */
  lend(sink: BodySink): { pause(): void; resume(): void } {
    if (!this.lendable) throw new Error('body already read as a stream');
    this.mode = 'lent';
    this.sink = sink;
    const flow = {
      pause: (): void => {
        if (this.lentPaused) return;
        this.lentPaused = true;
        // After the end the connection is no longer this body's.
        if (!this.ended) this.source.pause();
      },
      resume: (): void => {
        if (!this.lentPaused || this.destroyed) return;
        this.lentPaused = false;
        this.drainEarly();
      },
    };
    // 'end' is emitted only by a flowing Readable: nothing is ever pushed but the end.
    this.resume();
    queueMicrotask(() => this.drainEarly());
    return flow;
  }

  /** Lent mode: the bytes kept before (or while paused), in order; then the socket reads again. */
  private drainEarly(): void {
    while (this.early.length > 0 && !this.destroyed && !this.lentPaused) {
      const b = this.early.shift()!;
      this.sink!.data(b, 0, b.length);
    }
    if (this.destroyed || this.lentPaused || this.early.length > 0) return;
    if (this.ended) this.finish();
    else this.source.resume();
  }

  /** Called by the connection with body bytes (a view valid during the call only). */
  deliver(buf: Buffer, start: number, end: number): void {
    if (this.destroyed || end <= start) return;
    if (this.mode === 'lent' && this.early.length === 0 && !this.lentPaused) {
      this.sink!.data(buf, start, end);
      return;
    }
    const copy = Buffer.from(buf.subarray(start, end));
    if (this.mode === 'stream') {
      if (!this.push(copy)) this.source.pause();
      return;
    }
    // Not yet consumed, or lent but paused with bytes already read: kept, in order.
    this.early.push(copy);
    this.source.pause();
  }

  /** Called by the connection when the body is complete. */
  complete(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.mode === 'undecided') return; // delivered when the mode is chosen
    if (this.mode === 'lent' && (this.early.length > 0 || this.lentPaused)) return; // after the kept bytes
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.push(null);
  }

  override _read(): void {
    if (this.mode === 'lent') return;
    if (this.mode === 'undecided') {
      this.mode = 'stream';
      const early = this.early;
      this.early = [];
      for (const b of early) this.push(b);
      if (this.ended) {
        this.finish();
        return;
      }
    }
    this.source.resume();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.early = [];
    if (!this.finished) this.source.abort();
    cb(err);
  }
}
