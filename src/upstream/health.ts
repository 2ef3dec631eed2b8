/**
 * Upstream health in the max_fails / fail_timeout style: after `maxFails` consecutive
 * failures an upstream is marked down for `failTimeout`, during which requests fail fast
 * instead of each waiting for a timeout. After that one request is let through as a probe.
 */
/** Called when the upstream is marked down, and when a request succeeds again after that. */
export type HealthListener = (up: boolean, cause: string | undefined) => void;

export class UpstreamHealth {
  private fails = 0;
  private downUntil = 0;
  private probing = false;
  /** Marked down and not yet answered successfully (the admin view's up/down). */
  marked = false;
  /** When `marked` last changed (ms), for "down since". */
  since: number;
  /** The last failure counted, with its cause (no credentials: messages never carry them). */
  lastError: { at: number; cause: string } | undefined;
  onChange: HealthListener | undefined;

  constructor(
    private readonly maxFails: number,
    private readonly failTimeout: number,
    private readonly now: () => number = Date.now,
  ) {
    this.since = now();
  }

  /** Whether a request may be sent now. */
  allow(): boolean {
    if (this.downUntil === 0) return true;
    if (this.now() < this.downUntil) return false;
    if (this.probing) return false;
    this.probing = true;
    return true;
  }

  get isDown(): boolean {
    return this.downUntil !== 0 && this.now() < this.downUntil;
  }

  success(): void {
    this.fails = 0;
    this.downUntil = 0;
    this.probing = false;
    if (this.marked) this.mark(false, undefined);
  }

  failure(cause = 'failed'): void {
    this.fails++;
    this.lastError = { at: this.now(), cause };
    if (this.probing || this.fails >= this.maxFails) {
      this.downUntil = this.now() + this.failTimeout;
      this.probing = false;
      if (!this.marked) this.mark(true, cause);
    }
  }

  private mark(down: boolean, cause: string | undefined): void {
    this.marked = down;
    this.since = this.now();
    this.onChange?.(!down, cause);
  }
}
