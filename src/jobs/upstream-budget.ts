/**
 * What sync jobs may ask of one upstream, all jobs together (config `syncLimits.<host>`):
 * at most `concurrency` requests in flight, at most `perMinute` started in any 60 s. A
 * request waits for its turn; a cancelled run stops waiting at once. The limits follow a
 * config reload (`setLimits`) without dropping anyone who waits.
 */

export interface BudgetLimits {
  concurrency: number;
  perMinute?: number | undefined;
}

export interface BudgetClock {
  now(): number;
  /** Resolves after `ms`, or rejects when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const MINUTE = 60_000;

export class UpstreamBudget {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** Start times within the last minute, oldest first. */
  private readonly starts: number[] = [];

  constructor(private limits: BudgetLimits, private readonly clock: BudgetClock) {}

  setLimits(limits: BudgetLimits): void {
    this.limits = limits;
    this.wake();
  }

  get inFlight(): number {
    return this.active;
  }

  private wake(): void {
    while (this.active < this.limits.concurrency && this.waiting.length > 0) {
      this.active++;
      this.waiting.shift()!();
    }
  }

  private async slot(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.active < this.limits.concurrency && this.waiting.length === 0) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const go = (): void => {
        signal?.removeEventListener('abort', abort);
        resolve();
      };
      const abort = (): void => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal!.reason);
      };
      this.waiting.push(go);
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  private release(): void {
    this.active--;
    this.wake();
  }

  /** Runs `fn` as one request of the budget. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.slot(signal);
    try {
      // Woken after the run was stopped (a 429 seen by another request): send nothing.
      signal?.throwIfAborted();
      for (;;) {
        const per = this.limits.perMinute;
        const now = this.clock.now();
        while (this.starts.length > 0 && this.starts[0]! <= now - MINUTE) this.starts.shift();
        if (per === undefined || this.starts.length < per) {
          this.starts.push(now);
          break;
        }
        await this.clock.sleep(this.starts[0]! + MINUTE - now, signal);
      }
      return await fn();
    } finally {
      this.release();
    }
  }
}
