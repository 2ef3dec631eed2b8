/**
 * Index writes that never wait on the event loop (issue 10, item 6). SQLite's busy timeout
 * is a synchronous sleep inside better-sqlite3: with another process holding the write lock
 * (`BEGIN EXCLUSIVE` for 30 s), every write froze the whole server for the timeout, health
 * checks included. So the connection runs with busy_timeout 0, and a write that finds the
 * database locked is queued here and retried on a timer, in order; the caller goes on at
 * once (the store answers reads of queued rows from memory meanwhile). A write that fails
 * for another reason (disk full) is thrown to its caller when tried first, so the caller
 * can undo what it did (blob-cache.ts removes the blob file); a queued write that later
 * fails that way is reported and dropped (recovery adopts an unindexed blob at the next
 * start).
 *
 * The same queue holds a write that found the write gate (write-gate.ts) held by the
 * store's own index worker: it waits in memory the same way, is applied as soon as the
 * worker leaves (`kick()`), and does not count as `blocked` (no other process holds the
 * index; the store stays healthy).
 */

export interface QueuedWrite {
  /** Runs the write in its own transaction; throws SQLITE_BUSY while the database is locked. */
  apply(): void;
  what: string;
  /**
   * A write the caller waits for (durable writes, sqlite-metadata-store.ts): called once
   * when a queued write was applied, failed for another reason than the lock (with that
   * error), or was still queued when the queue closed.
   */
  settle?: (err?: Error) => void;
}

export function isLocked(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

export interface WriteQueueOptions {
  /** First retry delay; doubles up to `maxRetryMs`. */
  retryMs?: number;
  maxRetryMs?: number;
  /** A queued write failed for a reason other than the lock, and was dropped. */
  onDropped?: (what: string, err: Error) => void;
  /** Called after the queue became empty (the store then forgets its in-memory overlay). */
  onDrained?: () => void;
  /** Most writes held (default 10,000); beyond, a write fails like a full disk: not kept. */
  maxQueued?: number;
  /** Taken around every write (the index worker's write gate); tryEnter() false: try again on kick(). */
  gate?: { tryEnter(): boolean; leave(): void };
}

/** While writes wait only for the store's own worker: how soon to try again if no kick() comes. */
const GATE_RETRY_MS = 20;

export class WriteQueue {
  private readonly queue: QueuedWrite[] = [];
  private timer: NodeJS.Timeout | undefined;
  private delay: number;
  /** When the oldest queued write was queued (ms since epoch), for status. */
  private since: number | undefined;
  private waiters: Array<() => void> = [];
  /** The last try met a lock held by another process (not the gate). */
  private elsewhere = false;

  constructor(private readonly opts: WriteQueueOptions = {}) {
    this.delay = opts.retryMs ?? 100;
  }

  get size(): number {
    return this.queue.length;
  }

  /** True while writes wait for a lock held by another process. */
  get blocked(): boolean {
    return this.queue.length > 0 && this.elsewhere;
  }

  get blockedSince(): number | undefined {
    return this.since;
  }

  /**
   * Runs `w` now when nothing is queued; queues it when the database is locked (or when
   * earlier writes still wait: order is kept). Throws only errors other than the lock.
   * Returns whether it was written now or queued (the caller then keeps it in memory).
   */
  submit(w: QueuedWrite): 'written' | 'queued' {
    if (this.queue.length === 0) {
      const gate = this.opts.gate;
      if (!gate || gate.tryEnter()) {
        try {
          w.apply();
          return 'written';
        } catch (err) {
          if (!isLocked(err)) throw err;
          this.lockedElsewhere();
        } finally {
          gate?.leave();
        }
      }
    }
    if (this.queue.length >= (this.opts.maxQueued ?? 10_000)) {
      throw Object.assign(new Error(`index locked by another process; ${this.queue.length} writes already wait`), { code: 'INDEX_QUEUE_FULL' });
    }
    this.queue.push(w);
    this.schedule();
    return 'queued';
  }

  private lockedElsewhere(): void {
    if (!this.elsewhere) this.since = Date.now();
    this.elsewhere = true;
  }

  /** Tries the queued writes now; returns true when the queue is empty. */
  drain(): boolean {
    const gate = this.queue.length > 0 ? this.opts.gate : undefined;
    if (gate && !gate.tryEnter()) return false;
    try {
      while (this.queue.length > 0) {
        const w = this.queue[0]!;
        try {
          w.apply();
        } catch (err) {
          if (isLocked(err)) {
            this.lockedElsewhere();
            return false;
          }
          this.opts.onDropped?.(w.what, err as Error);
          this.queue.shift();
          w.settle?.(err as Error);
          continue;
        }
        this.queue.shift();
        w.settle?.();
      }
    } finally {
      gate?.leave();
    }
    this.since = undefined;
    this.elsewhere = false;
    this.delay = this.opts.retryMs ?? 100;
    this.opts.onDrained?.();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
    return true;
  }

  /** The gate is free again (the worker left it): queued writes are tried now. */
  kick(): void {
    if (this.queue.length === 0 || this.elsewhere) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.drain()) this.schedule();
  }

  /** Resolves when the queue is empty (at once when it is). */
  idle(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.drain()) {
        if (this.elsewhere) this.delay = Math.min(this.delay * 2, this.opts.maxRetryMs ?? 1000);
        this.schedule();
      }
    }, this.elsewhere ? this.delay : Math.min(this.delay, GATE_RETRY_MS));
  }

  /**
   * Shutdown: keeps retrying until the queue is empty or `ms` have passed; returns the
   * writes left (reported by the caller: their rows are lost, recovery adopts the blobs).
   */
  async close(ms: number): Promise<QueuedWrite[]> {
    const until = Date.now() + ms;
    while (!this.drain() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const left = this.queue.splice(0);
    for (const w of left) w.settle?.(new Error(`not written: the index was still locked by another process at shutdown (${w.what})`));
    return left;
  }
}
