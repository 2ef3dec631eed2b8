/**
 * Admission of blob fills into the store (docs/retention.md). Two questions, asked at two
 * different times, so that no client ever waits for an eviction:
 *  - at the start of a fill, `admit()`: may it be kept at all (not larger than
 *    retention.maxSize) and does the disk keep its reserve? Answered at once. When the fill
 *    would cross maxSize, a sweep starts in the background (down to a low watermark, so that
 *    not every fill evicts) while the fill streams to its clients into a temp file.
 *  - at commit, after every reader has its verified bytes, `Reservation.room()`: does the
 *    store have room for it under maxSize? It waits for the sweep's next batch (not for the
 *    whole sweep), and answers false when a sweep it started ended without making room (the
 *    bytes were served; they are just not kept).
 * The store (committed bytes) never exceeds maxSize; temp files of fills in flight count
 * against the disk reserve. Bytes promised to fills in flight are counted through
 * reservations, each released exactly once. The decisions are pure functions
 * (test/unit/admission.test.ts); sweeps are coalesced.
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

/** At the start of a fill: kept at all, or streamed through (no eviction is waited for). */
export function decideStart(i: AdmissionInput): { kind: 'admit'; sweep: boolean } | { kind: 'refuse'; reason: 'larger than maxSize' | 'disk reserve' } {
  const size = i.size ?? 0;
  if (i.maxSize !== undefined && i.size !== undefined && i.size > i.maxSize) return { kind: 'refuse', reason: 'larger than maxSize' };
  if (i.disk) {
    // Keep 256 MiB (or 5% of a small filesystem) free for the index and everything else.
    const reserve = Math.min(DISK_RESERVE, i.disk.total * 0.05);
    if (i.disk.free - i.reserved - size <= reserve) return { kind: 'refuse', reason: 'disk reserve' };
  }
  return { kind: 'admit', sweep: i.maxSize !== undefined && i.used + i.reserved + size > i.maxSize };
}

/** At commit (and, with `disk`, the whole decision in one): room under maxSize, evict first, or not kept. */
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
  /**
   * Whether the store has room for the fill now (called before its commit, with the bytes
   * it has when its size was not known at the start): waits for evictions batch by batch;
   * false when they cannot make room. Never throws.
   */
  room(actual?: number): Promise<boolean>;
  /** Returns the bytes; safe to call more than once. */
  release(): void;
}

export interface AdmissionDeps {
  used(): number;
  maxSize(): number | undefined;
  disk(): Promise<{ free: number; total: number } | undefined>;
  /** Evicts by size down to `targetSize`, calling `progress` after each batch it removes. */
  evict(targetSize: number, progress: () => void): Promise<unknown>;
}

export class Admission {
  private reservedBytes = 0;
  private evicting: Promise<unknown> | undefined;
  /** Woken after each batch a sweep removes, and when it ends. */
  private waiters = new Set<() => void>();

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

  /**
   * A reservation when the fill may be kept (decided at once, see decideStart), undefined
   * when it must stream through. Starts a background sweep when the fill would cross maxSize.
   */
  async admit(size: number | undefined): Promise<Reservation | undefined> {
    // Reserve at once, so fills admitted in parallel see each other.
    const mine = this.reserve(size ?? 0);
    try {
      const decision = decideStart({ size, maxSize: this.d.maxSize(), used: this.d.used(), reserved: this.reservedBytes - mine.bytes, disk: await this.d.disk() });
      if (decision.kind === 'refuse') {
        mine.release();
        return undefined;
      }
      if (decision.sweep) this.startSweep(size ?? 0, this.reservedBytes - mine.bytes);
      return mine;
    } catch (err) {
      mine.release();
      throw err;
    }
  }

  private reserve(bytes: number): Reservation {
    this.reservedBytes += bytes;
    let released = false;
    const reservation: Reservation = {
      bytes,
      room: (actual) => this.room(reservation, actual ?? bytes),
      release: () => {
        if (released) return;
        released = true;
        this.reservedBytes -= bytes;
      },
    };
    return reservation;
  }

  private async room(r: Reservation, size: number): Promise<boolean> {
    // A sweep that was running before this check may have had an older target: only the end
    // of a sweep started here (for this fill's need) means there is no room to be made.
    let own: Promise<unknown> | undefined;
    let ownEnded = false;
    for (;;) {
      const decision = decideAdmission({ size, maxSize: this.d.maxSize(), used: this.d.used(), reserved: this.reservedBytes - r.bytes, disk: undefined }, ownEnded);
      if (decision.kind === 'admit') return true;
      if (decision.kind === 'refuse') return false;
      let sweep = this.evicting;
      if (!sweep) sweep = own = this.startSweep(size, this.reservedBytes - r.bytes, decision.targetSize);
      const next = new Promise<'batch'>((resolve) => this.waiters.add(() => resolve('batch')));
      await Promise.race([sweep, next]);
      if (sweep === own && this.evicting !== own) ownEnded = true;
    }
  }

  /** Starts a sweep unless one runs; returns the running one. Waiters wake per batch and at its end. */
  private startSweep(size: number, reservedOthers: number, target?: number): Promise<unknown> {
    if (this.evicting) return this.evicting;
    const max = this.d.maxSize() ?? 0;
    const targetSize = target ?? Math.max(0, Math.floor(max * LOW_WATERMARK) - size - reservedOthers);
    const wake = (): void => {
      const ws = [...this.waiters];
      this.waiters.clear();
      for (const w of ws) w();
    };
    // The deps log a failed sweep; here it only ends the wait (room() then decides again).
    const p = this.d.evict(targetSize, wake).catch(() => undefined).finally(() => {
      this.evicting = undefined;
      wake();
    });
    this.evicting = p;
    return p;
  }
}
