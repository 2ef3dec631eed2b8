/**
 * Who may write the SQLite index now: the main thread or the index worker (index-worker.ts),
 * never both. SQLite has one write lock per database; with busy_timeout 0 on the main thread
 * (no wait ever blocks the event loop) a main-thread write that met the worker's transaction
 * would fail SQLITE_BUSY and look like a lock held by another process. The gate settles it
 * first, in shared memory, so a busy index always means another process.
 *
 * Two words of a SharedArrayBuffer: HOLDER (0 free, 1 main, 2 worker) and WANT (1 while the
 * main thread has a write waiting for the gate). The main thread never waits: tryEnter() fails
 * at once while the worker holds the gate, the write waits in memory (write-queue.ts) and is
 * applied when the worker, leaving, sees WANT and says so (`free`). The worker does not enter
 * while WANT is set, so a main-thread write waits for at most one worker transaction.
 * (Dekker-style: main sets WANT then tries again; the worker clears HOLDER then reads WANT;
 * with sequentially consistent atomics one of them sees the other.)
 */
export const HOLDER = 0;
export const WANT = 1;
const FREE = 0;
const MAIN = 1;
export const WORKER = 2;

export class WriteGate {
  readonly buffer = new SharedArrayBuffer(8);
  private readonly word = new Int32Array(this.buffer);
  private waiters: Array<() => void> = [];

  /** `onRelease`: the worker left the gate while a main-thread write waited (queued writes are tried then). */
  constructor(private readonly onRelease?: () => void) {}

  /**
   * Takes the gate for a synchronous write; false while the worker holds it. A caller that
   * will try again (`wait`, the default) sets WANT: the worker lets it go first and says
   * when it left. A probe that will not try again (`wait` false) leaves WANT alone.
   */
  tryEnter(wait = true): boolean {
    if (Atomics.compareExchange(this.word, HOLDER, FREE, MAIN) === FREE) return this.entered();
    if (!wait) return false;
    Atomics.store(this.word, WANT, 1);
    if (Atomics.compareExchange(this.word, HOLDER, FREE, MAIN) === FREE) return this.entered();
    return false;
  }

  private entered(): true {
    if (Atomics.load(this.word, WANT) !== 0) {
      Atomics.store(this.word, WANT, 0);
      // The worker may be waiting for this.
      Atomics.notify(this.word, WANT);
    }
    return true;
  }

  leave(): void {
    Atomics.store(this.word, HOLDER, FREE);
    Atomics.notify(this.word, HOLDER);
  }

  /** Whether the worker is in a transaction right now. */
  get heldByWorker(): boolean {
    return Atomics.load(this.word, HOLDER) === WORKER;
  }

  /** Resolves once the worker has left the gate (its `free`), or after `ms` at most. */
  freed(ms = 50): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  /** The worker left the gate while WANT was set (or it is gone). */
  released(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
    this.onRelease?.();
  }

  /** The worker died: the gate is the main thread's again, whatever it held. */
  reset(): void {
    Atomics.store(this.word, HOLDER, FREE);
    Atomics.store(this.word, WANT, 0);
    Atomics.notify(this.word, HOLDER);
    Atomics.notify(this.word, WANT);
    this.released();
  }
}
