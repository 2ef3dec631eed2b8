/**
 * Admission of blob fills into the store (docs/retention.md): a fill may be kept when the
 * store stays under retention.maxSize (evicting least recently pulled images first, down to
 * a low watermark, so that not every fill evicts) and the disk keeps its reserve free. Bytes
 * promised to fills in flight are counted through reservations, each released exactly once.
 * The decision is a pure function (test/unit/admission.test.ts); evictions are coalesced:
 * fills that arrive while one runs wait for it and decide again.
 */

/** Free space kept on the store's filesystem; fills that would eat into it stream through instead. */
export const DISK_RESERVE = 256 * 1024 * 1024;
/** Eviction for a fill goes down to this fraction of maxSize. */
export const LOW_WATERMARK = 0.9;

export interface AdmissionInput {
  size: number | undefined;
  maxSize: number | undefined;
  /** Bytes in the store now. */
  used: number;
  /** Bytes reserved by other fills in flight. */
  reserved: number;
  /** Free and total bytes of the filesystem, when bounded. */
  disk: { free: number; total: number } | undefined;
}

export type AdmissionDecision =
  | { kind: 'admit' }
  | { kind: 'evict'; targetSize: number }
  | { kind: 'refuse'; reason: 'larger than maxSize' | 'store full' | 'disk reserve' };

export function decideAdmission(i: AdmissionInput, evicted: boolean): AdmissionDecision {
  const size = i.size ?? 0;
  if (i.maxSize !== undefined && i.size !== undefined) {
    if (i.size > i.maxSize) return { kind: 'refuse', reason: 'larger than maxSize' };
    if (i.used + i.reserved + size > i.maxSize) {
      if (evicted) return { kind: 'refuse', reason: 'store full' };
      return { kind: 'evict', targetSize: Math.max(0, Math.floor(i.maxSize * LOW_WATERMARK) - size - i.reserved) };
    }
  }
  if (i.disk) {
    // Keep 256 MiB (or 5% of a small filesystem) free for the index and everything else.
    const reserve = Math.min(DISK_RESERVE, i.disk.total * 0.05);
    if (i.disk.free - i.reserved - size <= reserve) return { kind: 'refuse', reason: 'disk reserve' };
  }
  return { kind: 'admit' };
}

export interface Reservation {
  readonly bytes: number;
  /** Returns the bytes; safe to call more than once. */
  release(): void;
}

export interface AdmissionDeps {
  used(): number;
  maxSize(): number | undefined;
  disk(): Promise<{ free: number; total: number } | undefined>;
  /** Evicts by size down to `targetSize`. */
  evict(targetSize: number): Promise<unknown>;
}

export class Admission {
  private reservedBytes = 0;
  private evicting: Promise<unknown> | undefined;

  constructor(private readonly d: AdmissionDeps) {}

  get reserved(): number {
    return this.reservedBytes;
  }

  /**
   * Whether a blob of `bytes` may be kept at all (not above retention.maxSize). A chunked
   * fill, admitted without a size, asks this as its bytes arrive.
   */
  mayKeep(bytes: number): boolean {
    const max = this.d.maxSize();
    return max === undefined || bytes <= max;
  }

  private reserve(bytes: number): Reservation {
    this.reservedBytes += bytes;
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        this.reservedBytes -= bytes;
      },
    };
  }

  /** A reservation when the fill may be stored, undefined when it must stream through. */
  async admit(size: number | undefined): Promise<Reservation | undefined> {
    // Reserve at once, so fills admitted in parallel see each other.
    const mine = this.reserve(size ?? 0);
    try {
      let evicted = false;
      for (;;) {
        const input: AdmissionInput = {
          size, maxSize: this.d.maxSize(), used: this.d.used(), reserved: this.reservedBytes - mine.bytes, disk: await this.d.disk(),
        };
        const decision = decideAdmission(input, evicted);
        if (decision.kind === 'admit') return mine;
        if (decision.kind === 'refuse') {
          mine.release();
          return undefined;
        }
        if (this.evicting) {
          await this.evicting.catch(() => undefined);
        } else {
          const p = this.d.evict(decision.targetSize);
          this.evicting = p;
          try {
            await p;
          } finally {
            this.evicting = undefined;
          }
        }
        evicted = true;
      }
    } catch (err) {
      mine.release();
      throw err;
    }
  }
}
