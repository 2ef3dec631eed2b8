/**
 * Reused buffers for the bytes of blob fills read from a lent upstream body
 * (upstream/socket-body.ts): the fill copies each socket read into the current slab, and
 * the slab's views serve as the fill's memory window, its temp file writes and the HTTP/1.1
 * readers' socket writes (fill.ts, fill-body.ts). No buffer is allocated per socket read,
 * so a cold pull makes no garbage for V8 to count (docs/cache.md, "Reading upstream blobs").
 *
 * A slab is counted: every holder (the fill's current slab, each window entry, each
 * pending file write, each socket write of a view) takes a reference and gives it back
 * exactly once, and the slab returns to the pool only at zero. A holder that never gives
 * it back (a socket write whose callback never runs) costs a slab to the garbage collector,
 * never a byte served from a reused slab. Bytes are only appended to a slab, so a view
 * never changes while anyone holds it.
 */
export class Slab {
  /** Bytes written into the slab so far; views cover [0, filled). */
  filled = 0;
  private refs = 1;
  /** A socket write's callback for a view of this slab (retained before the write). */
  readonly onWritten = (): void => this.release();

  constructor(readonly buf: Buffer, private readonly pool: SlabPool) {}

  get free(): number {
    return this.buf.length - this.filled;
  }

  retain(): void {
    if (this.refs <= 0) throw new Error('slab retained after its release');
    this.refs++;
  }

  release(): void {
    if (this.refs <= 0) throw new Error('slab released twice');
    if (--this.refs === 0) this.pool.recycle(this);
  }

  /** For the pool: a recycled slab starts empty, held by its next taker. */
  reset(): void {
    this.filled = 0;
    this.refs = 1;
  }
}

export class SlabPool {
  private readonly free: Slab[] = [];
  /** Slabs handed out and not yet back (for tests and the status). */
  outstanding = 0;

  /**
   * `slabSize`: bytes per slab; `maxFree`: slabs kept for reuse (beyond that a returned
   * slab is left to the garbage collector).
   */
  constructor(readonly slabSize = 256 * 1024, readonly maxFree = 64) {}

  /** An empty slab held once by the caller. */
  take(): Slab {
    this.outstanding++;
    const s = this.free.pop();
    if (s) {
      s.reset();
      return s;
    }
    return new Slab(Buffer.allocUnsafe(this.slabSize), this);
  }

  get idle(): number {
    return this.free.length;
  }

  /** Called by a slab whose last holder released it. */
  recycle(slab: Slab): void {
    this.outstanding--;
    if (this.free.length < this.maxFree) this.free.push(slab);
  }
}
